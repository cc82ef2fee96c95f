"""The trusted feature-query path, planned by the gate's own planner: declared columns only, joins on
the privacy units only, never identifiers; one example is one unit's rows."""

from __future__ import annotations

import pytest

from sandbox.errors import QueryRefused
from sandbox.training.features import UNIT, FeatureInfo, plan_features

INFOS = {i.name: i for i in (
    FeatureInfo("enterprise_registry", {"uscc": "join_key", "industry": "dimension", "registered_capital": "measure"},
                "uscc"),
    FeatureInfo("bank_loans", {"loan_id": "identifier", "uscc": "join_key", "amount": "measure",
                               "defaulted": "measure"}, "uscc"),
    FeatureInfo("tax_payments", {"uscc": "join_key", "period": "dimension", "vat_paid": "measure"}, "uscc"),
    FeatureInfo("other", {"uscc": "join_key", "person_id": "join_key", "x": "measure"}, "person_id"),
    FeatureInfo("sectors", {"uscc": "join_key", "sector": "dimension", "revenue": "measure"}, "uscc"),
    FeatureInfo("codes", {"industry": "join_key", "label": "dimension"}, None),
)}


def lookup(name: str) -> FeatureInfo:
    if name not in INFOS:
        raise QueryRefused(f"unknown dataset {name}")
    return INFOS[name]


def test_a_joined_aggregated_feature_query_is_planned_with_a_hidden_unit_column() -> None:
    plan = plan_features("""SELECT r.industry, AVG(t.vat_paid) AS avg_vat, MAX(l.defaulted) AS defaulted
                            FROM bank_loans l JOIN enterprise_registry r ON l.uscc = r.uscc
                            JOIN tax_payments t ON t.uscc = l.uscc GROUP BY l.uscc, r.industry""", lookup)
    assert plan.output_columns == ("industry", "avg_vat", "defaulted")
    assert f'"bank_loans"."uscc" AS "{UNIT}"' in plan.engine_sql  # columns qualified by dataset, aliases gone
    assert dict(plan.columns_read)["bank_loans"] == ("defaulted", "uscc")


@pytest.mark.parametrize(("sql", "why"), [
    ("SELECT l.loan_id AS k, l.defaulted FROM bank_loans l", "identifier"),
    ("SELECT l.uscc AS code, l.defaulted FROM bank_loans l", "join key"),
    ("SELECT * FROM bank_loans", r"SELECT \*"),
    ("SELECT AVG(l.amount) AS a FROM bank_loans l", "GROUP BY the privacy unit"),
    ("SELECT AVG(l.amount) AS a FROM bank_loans l GROUP BY l.defaulted", "GROUP BY the privacy unit"),
    ("SELECT l.amount FROM bank_loans l JOIN enterprise_registry r ON l.amount = r.registered_capital", "join key"),
    ("SELECT l.amount FROM bank_loans l LEFT JOIN enterprise_registry r ON l.uscc = r.uscc", "only INNER JOIN"),
    ("SELECT x.amount FROM (SELECT amount FROM bank_loans) x", "subqueries"),
    ("SELECT l.amount AS a FROM read_csv('/etc/passwd') l", "ReadCSV"),
    ("SELECT l.amount FROM bank_loans l LIMIT 5", "(?i)limit"),
    ("SELECT l.amount FROM bank_loans l; SELECT 1", "one statement"),
    ("SELECT l.amount + r.x AS s FROM bank_loans l JOIN other r ON l.uscc = r.uscc", "privacy units"),
    ("SELECT r.label AS k, l.amount FROM bank_loans l JOIN codes r ON l.uscc = r.industry", "privacy unit"),
    ("SELECT l.amount FROM secrets l", "unknown dataset"),
])
def test_unsafe_feature_queries_are_refused(sql: str, why: str) -> None:
    with pytest.raises(QueryRefused, match=why):
        plan_features(sql, lookup)


# --------------------------------------------------------------------------- issue 14, family 6:
# the training path's own planner. One firm's confidential value must never land in another
# firm's example: the cross join and the "label from another unit" are refused, not trained on.

CROSS_JOIN = """SELECT AVG(l.amount) AS avg_loan,
                       MAX(CASE WHEN b.sector = 'Z9' THEN b.revenue END) AS label
                FROM bank_loans l JOIN sectors b ON l.uscc = l.uscc
                GROUP BY l.uscc"""


@pytest.mark.parametrize(("sql", "why"), [
    # a join key equal to itself: a cross join, every firm's rows in every example
    (CROSS_JOIN, "each ON equality must link"),
    # the same dataset twice (a self-join on anything) is refused by the gate's rule
    ("SELECT AVG(l.amount) AS a FROM bank_loans l JOIN bank_loans m ON l.uscc = m.uscc GROUP BY l.uscc",
     "appears twice"),
    # a join on another join key than the unit (here the unit of one side to a non-unit key)
    ("SELECT AVG(l.amount) AS a, MAX(o.x) AS label FROM bank_loans l JOIN other o ON l.uscc = o.uscc "
     "GROUP BY l.uscc", "privacy units"),
    # an ON that is not an equality of join keys (a measure: a value join)
    ("SELECT AVG(l.amount) AS a FROM bank_loans l JOIN sectors b ON l.amount = b.revenue GROUP BY l.uscc",
     "join_key"),
    # aggregates over every firm's rows: no GROUP BY the unit
    ("SELECT MAX(b.revenue) AS label FROM bank_loans l JOIN sectors b ON l.uscc = b.uscc GROUP BY b.sector",
     "GROUP BY the privacy unit"),
])
def test_a_firms_value_cannot_reach_another_firms_example(sql: str, why: str) -> None:
    with pytest.raises(QueryRefused, match=why):
        plan_features(sql, lookup)


def test_joined_on_the_units_every_example_is_one_units_rows() -> None:
    plan = plan_features("""SELECT AVG(l.amount) AS avg_loan, MAX(CASE WHEN b.sector = 'Z9' THEN b.revenue END) AS z9
                            FROM bank_loans l JOIN sectors b ON b.uscc = l.uscc GROUP BY l.uscc""", lookup)
    assert plan.output_columns == ("avg_loan", "z9")
    assert 'ON "sectors"."uscc" = "bank_loans"."uscc"' in plan.engine_sql


def test_the_cross_join_attack_trains_nothing_end_to_end(tmp_path) -> None:
    """Run what the attack would run, had the planner let it: one firm's revenue in every row."""
    import pandas as pd
    import pyarrow as pa
    from deltalake import write_deltalake

    from sandbox.tables.storage import pin_snapshot
    from sandbox.training.features import run_features

    loans = pd.DataFrame({"uscc": [f"f{i}" for i in range(50)], "loan_id": [f"L{i}" for i in range(50)],
                          "amount": [float(i) for i in range(50)], "defaulted": [0] * 50})
    sectors = pd.DataFrame({"uscc": [f"f{i}" for i in range(50)], "sector": ["Z9"] + ["A"] * 49,
                            "revenue": [123456.0] + [1.0] * 49})
    for name, df in (("bank_loans", loans), ("sectors", sectors)):
        write_deltalake(str(tmp_path / name), pa.Table.from_pandas(df, preserve_index=False))
    snaps = {n: pin_snapshot(tmp_path / n, n) for n in ("bank_loans", "sectors")}
    with pytest.raises(QueryRefused):
        run_features(plan_features(CROSS_JOIN, lookup), snaps)
    # the legitimate query: only f0's own example carries f0's revenue
    ok = plan_features("""SELECT AVG(l.amount) AS avg_loan, MAX(CASE WHEN b.sector = 'Z9' THEN b.revenue END) AS z9
                          FROM bank_loans l JOIN sectors b ON b.uscc = l.uscc GROUP BY l.uscc""", lookup)
    table = run_features(ok, snaps).table.to_pydict()
    assert sum(1 for v in table["z9"] if v == 123456.0) == 1 and table["z9"].count(None) == 49
