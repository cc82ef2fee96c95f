"""The trusted feature-query path: declared columns only, joins on join keys, never identifiers."""

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
    FeatureInfo("other", {"uscc": "join_key", "x": "measure"}, "person_id"),
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
    assert f'l.uscc AS "{UNIT}"' in plan.engine_sql
    assert dict(plan.columns_read)["bank_loans"] == ("defaulted", "uscc")


@pytest.mark.parametrize(("sql", "why"), [
    ("SELECT l.loan_id AS k, l.defaulted FROM bank_loans l", "identifier"),
    ("SELECT l.uscc AS code, l.defaulted FROM bank_loans l", "join key"),
    ("SELECT * FROM bank_loans", "Star"),
    ("SELECT AVG(l.amount) AS a FROM bank_loans l", "GROUP BY the privacy unit"),
    ("SELECT AVG(l.amount) AS a FROM bank_loans l GROUP BY l.defaulted", "GROUP BY the privacy unit"),
    ("SELECT l.amount FROM bank_loans l JOIN enterprise_registry r ON l.amount = r.registered_capital", "join key"),
    ("SELECT l.amount FROM bank_loans l LEFT JOIN enterprise_registry r ON l.uscc = r.uscc", "inner joins"),
    ("SELECT x.amount FROM (SELECT amount FROM bank_loans) x", "Subquery"),
    ("SELECT l.amount AS a FROM read_csv('/etc/passwd') l", "ReadCSV"),
    ("SELECT l.amount FROM bank_loans l LIMIT 5", "(?i)limit"),
    ("SELECT l.amount FROM bank_loans l; SELECT 1", "one SELECT"),
    ("SELECT l.amount + r.x AS s FROM bank_loans l JOIN other r ON l.uscc = r.uscc", "one declared privacy unit"),
    ("SELECT l.amount FROM secrets l", "unknown dataset"),
])
def test_unsafe_feature_queries_are_refused(sql: str, why: str) -> None:
    with pytest.raises(QueryRefused, match=why):
        plan_features(sql, lookup)
