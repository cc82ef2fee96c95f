"""The gate end to end: plan, run on pinned Delta snapshots, release — checked against pandas."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from gate_fixtures import (
    LOANS_POLICY,
    REGISTRY_POLICY,
    REGISTRY_TYPES,
    Tables,
    snapshot_of,
    table_info,
    write_table,
)

from policies import SdcRules
from sandbox.errors import InternalError, QueryRefused
from sandbox.gate import GatedResult, TableInfo, open_connection, plan_query, run_query
from sandbox.gate.sdc import Cell, Contribution, assess
from sandbox.tables.snapshot import Snapshot

Agg = tuple[str, str | None]  # (func, column): ("count", None) is COUNT(*)


def expected(
    df: pd.DataFrame,
    by: Sequence[str],
    aggs: Sequence[Agg],
    *,
    unit: str | list[str] | None,
    threshold: int,
    rules: SdcRules | None = None,
) -> tuple[list[list[Any]], int]:
    """What the gate should release: sizes, per-unit contributions and values computed
    independently with pandas; the SDC decisions by :func:`sandbox.gate.sdc.assess` (checked
    against ACRO in ``test_gate_sdc.py``)."""
    rules = rules or SdcRules()
    units = [unit] if isinstance(unit, str) else list(unit or [])
    groups = [((), df)] if not by else list(df.groupby(list(by), sort=True))
    top_n = max(rules.dominance_n, 2)
    cells, values_of = [], []
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        sizes = [len(g)] + [g[u].nunique() for u in units]
        contributions = []
        for func, col in aggs:
            if col is not None:
                known = g[g[col].notna()]
                sizes += [known[u].nunique() for u in units] if units else [len(known)]
        for col in dict.fromkeys(c for f, c in aggs if f in ("sum", "avg")):
            per_unit = (g.groupby(units)[col].sum(min_count=1) if units else g[col]).dropna().abs()
            top = tuple(sorted((float(v) for v in per_unit), reverse=True)[:top_n])
            contributions.append(Contribution(float(per_unit.sum()), top))
        cells.append(Cell(key, min(sizes), tuple(contributions)))
        values: list[Any] = []
        for func, col in aggs:
            if func == "count":
                values.append(len(g) if col is None else int(g[col].count()))
            elif func == "sum":
                values.append(float(g[col].sum()))
            else:
                values.append(float(g[col].mean()))
        values_of.append([k.isoformat() if isinstance(k, dt.date) else k for k in key] + values)
    verdict = assess(cells, threshold, rules, [None] * len(by))
    suppressed = len(verdict.suppressed) + (verdict.zeros if rules.zeros_disclosive else 0)
    return [values_of[i] for i in verdict.released], suppressed


def assert_rows_match(got: GatedResult, want: list[list[Any]], want_suppressed: int) -> None:
    assert got.suppressed_groups == want_suppressed
    assert got.released_groups == len(want) == len(got.rows)
    key = lambda r: tuple(str(v) for v in r)  # noqa: E731 - order-insensitive comparison
    for g, w in zip(sorted(got.rows, key=key), sorted(want, key=key)):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            if isinstance(b, float):
                assert a == pytest.approx(b, rel=1e-9)
            else:
                assert a == b


def gated(tables: Tables, sql: str, **kwargs: Any) -> GatedResult:
    plan = plan_query(sql, tables.lookup)
    result = run_query(plan, tables.snapshots, **kwargs)
    assert result.columns == list(plan.output_columns)  # hidden counts never come back
    assert all(len(r) == len(plan.output_columns) for r in result.rows)
    json.dumps(result.to_dict(), allow_nan=False)  # the response body is strict JSON
    return result


# ------------------------------------------------------------------ allowed shapes vs pandas


def test_count_by_dimension(tables: Tables) -> None:
    got = gated(tables, "SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry")
    want, suppressed = expected(tables.frames["registry"], ["industry"], [("count", None)], unit="uscc", threshold=10)
    assert suppressed >= 1  # the data has a small group: this test exercises suppression
    assert_rows_match(got, want, suppressed)
    assert {"rule": "sdc", "threshold": 10, "suppressed": suppressed}.items() <= got.decisions[-6].items()
    by_rule = {d["rule"]: d["suppressed"] for d in got.decisions[-5:]}
    assert by_rule["min_group_size"] >= 1 and sum(by_rule.values()) >= suppressed
    assert got.mode == "sdc"


def test_sum_and_avg_by_two_dimensions(tables: Tables) -> None:
    got = gated(tables, "SELECT industry, district, SUM(capital) AS s, AVG(capital) AS a, AVG(employees) AS e "
                    "FROM registry GROUP BY industry, district")
    want, suppressed = expected(tables.frames["registry"], ["industry", "district"],
                                [("sum", "capital"), ("avg", "capital"), ("avg", "employees")],
                                unit="uscc", threshold=10)
    assert suppressed >= 1 and want
    assert_rows_match(got, want, suppressed)


def test_histogram_buckets_of_a_measure(tables: Tables) -> None:
    df = tables.frames["registry"].copy()
    capital = df["capital"]
    df["b"] = np.where(capital < 1e6, 0, np.where(capital >= 9e6, 9, np.floor((capital - 1e6) * 8 / 8e6) + 1))
    df["band"] = np.where(capital >= 1e7, 5, np.floor(capital / 2.5e6) + 1).astype(int)
    got = gated(tables, "SELECT WIDTH_BUCKET(capital, 1000000, 9000000, 8) AS b, COUNT(*) AS n, "
                        "AVG(employees) AS e FROM registry GROUP BY b")
    want, suppressed = expected(df.astype({"b": int}), ["b"], [("count", None), ("avg", "employees")],
                                unit="uscc", threshold=10)
    assert len(want) == 10  # every bucket, the under- and overflow ones too, holds 10 firms or more
    assert_rows_match(got, want, suppressed)
    # GROUP BY the select list's alias; small cells suppressed
    got = gated(tables, "SELECT industry, WIDTH_BUCKET(capital, 0, 10000000, 4) AS band, COUNT(*) AS n, "
                        "SUM(capital) AS s FROM registry GROUP BY industry, band")
    want, suppressed = expected(df, ["industry", "band"], [("count", None), ("sum", "capital")],
                                unit="uscc", threshold=10)
    assert suppressed >= 1 and want
    assert_rows_match(got, want, suppressed)


def test_count_column_counts_non_null(tables: Tables) -> None:
    got = gated(tables, "SELECT district, COUNT(employees) AS known, COUNT(*) AS n FROM registry GROUP BY district")
    want, suppressed = expected(tables.frames["registry"], ["district"], [("count", "employees"), ("count", None)],
                                unit="uscc", threshold=10)
    assert_rows_match(got, want, suppressed)


WHERE_CASES: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
    ("industry = 'C'", lambda d: d.industry == "C"),
    ("industry <> 'C' AND district != 'banan'", lambda d: (d.industry != "C") & (d.district != "banan")),
    ("industry = 'C' OR district = 'banan'", lambda d: (d.industry == "C") | (d.district == "banan")),
    ("NOT (industry = 'C' OR industry = 'F')", lambda d: ~d.industry.isin(["C", "F"])),
    ("industry IN ('C', 'G')", lambda d: d.industry.isin(["C", "G"])),
    ("industry NOT IN ('C', 'G')", lambda d: ~d.industry.isin(["C", "G"])),
    ("district LIKE 'j%'", lambda d: d.district.str.startswith("j")),
    ("district NOT LIKE '%e%'", lambda d: ~d.district.str.contains("e")),
    ("district ILIKE 'YU%'", lambda d: d.district.str.startswith("yu")),
    ("reg_date >= DATE '2015-01-01'", lambda d: d.reg_date >= dt.date(2015, 1, 1)),
    ("reg_date < '2014-06-30'", lambda d: d.reg_date < dt.date(2014, 6, 30)),
    ("reg_date BETWEEN DATE '2012-01-01' AND DATE '2018-12-31'",
     lambda d: (d.reg_date >= dt.date(2012, 1, 1)) & (d.reg_date <= dt.date(2018, 12, 31))),
    ("reg_date NOT BETWEEN '2012-01-01' AND '2018-12-31'",
     lambda d: ~((d.reg_date >= dt.date(2012, 1, 1)) & (d.reg_date <= dt.date(2018, 12, 31)))),
    ("active = TRUE AND industry IS NOT NULL", lambda d: d.active),
    ("active = FALSE OR industry IS NULL", lambda d: ~d.active),
    ("'G' >= industry", lambda d: d.industry <= "G"),
]


@pytest.mark.parametrize(("where", "mask"), WHERE_CASES, ids=[w for w, _ in WHERE_CASES])
def test_where_combinations(tables: Tables, where: str, mask: Callable[[pd.DataFrame], pd.Series]) -> None:
    got = gated(tables, f"SELECT district, COUNT(*) AS n, AVG(capital) AS c FROM registry WHERE {where} GROUP BY district")
    df = tables.frames["registry"]
    want, suppressed = expected(df[mask(df)], ["district"], [("count", None), ("avg", "capital")],
                                unit="uscc", threshold=10)
    assert_rows_match(got, want, suppressed)


def test_join_on_join_key(tables: Tables) -> None:
    got = gated(tables, "SELECT r.industry, l.term, COUNT(*) AS loans, AVG(l.defaulted) AS rate, SUM(l.amount) AS total "
                    "FROM loans AS l JOIN registry AS r ON l.uscc = r.uscc WHERE r.district <> 'banan' "
                    "GROUP BY r.industry, l.term ORDER BY r.industry, l.term")
    reg, loans = tables.frames["registry"], tables.frames["loans"]
    joined = loans.merge(reg, on="uscc")
    joined = joined[joined.district != "banan"]
    want, suppressed = expected(joined, ["industry", "term"],
                                [("count", None), ("avg", "defaulted"), ("sum", "amount")],
                                unit="uscc", threshold=20)  # the loans' stricter threshold
    assert suppressed >= 1 and want
    assert_rows_match(got, want, suppressed)
    assert got.rows == sorted(got.rows, key=lambda r: (r[0], r[1]))  # ORDER BY held


def test_no_group_by_is_one_thresholded_group(tables: Tables) -> None:
    got = gated(tables, "SELECT COUNT(*) AS n, AVG(capital) AS c FROM registry")
    df = tables.frames["registry"]
    assert got.rows == [[len(df), pytest.approx(df.capital.mean())]]
    small = gated(tables, "SELECT COUNT(*) AS n FROM registry WHERE industry = 'Z' AND district = 'banan'")
    assert (small.rows, small.suppressed_groups, small.released_groups) == ([], 1, 0)
    # zero rows: COUNT(*) = 0 is a small cell too
    empty = gated(tables, "SELECT COUNT(*) AS n FROM registry WHERE industry = 'nothing'")
    assert (empty.rows, empty.suppressed_groups) == ([], 1)


def test_order_by_alias_desc(tables: Tables) -> None:
    got = gated(tables, "SELECT industry AS 行业, COUNT(*) AS n FROM registry GROUP BY industry ORDER BY n DESC, 行业")
    assert got.columns == ["行业", "n"]
    counts = [r[1] for r in got.rows]
    assert counts == sorted(counts, reverse=True) and len(counts) >= 2


def test_output_values_are_json_safe(tables: Tables) -> None:
    got = gated(tables, "SELECT reg_date, active, COUNT(*) AS n FROM registry GROUP BY reg_date, active")
    assert got.suppressed_groups > 0  # one date per firm: all tiny, all suppressed
    got = gated(tables, "SELECT active, SUM(employees) AS e FROM registry GROUP BY active")
    assert all(isinstance(r[0], bool) and isinstance(r[1], int) for r in got.rows)
    body = got.to_dict()
    assert set(body) == {"columns", "rows", "suppressed_groups", "released_groups", "decisions", "mode"}


# ------------------------------------------------------------------ privacy units and thresholds


def _one_table(tmp_path: Path, name: str, df: pd.DataFrame, policy: dict[str, Any]) -> Tables:
    """One table under ``policy``, released exactly (these tests check the SDC rules' counts; the
    cell-key perturbation is tested in test_gate_cellkey.py) unless the policy says otherwise."""
    schema = pa.Schema.from_pandas(df, preserve_index=False)
    write_table(tmp_path / name, df, schema)
    policy = {**policy, "sdc": {"perturbation": "none", **policy.get("sdc", {})},
              "output": {"significant_digits": 17, **policy.get("output", {})}}
    info = table_info(name, policy, schema)
    return Tables({name: info}, {name: snapshot_of(tmp_path / name, name)}, {name: df}, tmp_path)


def test_units_not_rows_are_counted(tmp_path: Path) -> None:
    # 50 loans of one firm in group "A"; 12 loans of 12 firms in group "B".
    # C (20 loans of one firm) keeps A company: one suppressed group alone would be recoverable
    # from the total, and secondary suppression would take B too.
    df = pd.DataFrame({"firm": ["f0"] * 50 + [f"g{i}" for i in range(12)] + ["h0"] * 20,
                       "grp": ["A"] * 50 + ["B"] * 12 + ["C"] * 20, "amount": [1.0] * 82})
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "firm",
              "columns": {"firm": "identifier", "grp": "dimension", "amount": "measure"}}
    w = _one_table(tmp_path, "loans1", df, policy)
    got = gated(w, "SELECT grp, COUNT(*) AS n FROM loans1 GROUP BY grp")
    assert got.rows == [["B", 12]] and got.suppressed_groups == 2


def test_rows_are_counted_without_a_privacy_unit(tmp_path: Path) -> None:
    df = pd.DataFrame({"grp": ["A"] * 9 + ["B"] * 10 + ["C"] * 5, "m": [1] * 24})
    policy = {"tenants": ["*"], "purposes": ["x"], "columns": {"grp": "dimension", "m": "measure"}}
    w = _one_table(tmp_path, "stats", df, policy)
    got = gated(w, "SELECT grp, SUM(m) AS s FROM stats GROUP BY grp")
    assert got.rows == [["B", 10]] and got.suppressed_groups == 2


def test_aggregate_resting_on_few_units_is_suppressed(tmp_path: Path) -> None:
    # 30 firms in the group, but only 2 have a known revenue: SUM(revenue) would be their sum.
    df = pd.DataFrame({"firm": [f"f{i}" for i in range(30)], "grp": ["A"] * 30,
                       "revenue": [100.0, 200.0] + [None] * 28})
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "firm",
              "columns": {"firm": "join_key", "grp": "dimension", "revenue": "measure"}}
    w = _one_table(tmp_path, "rev", df, policy)
    assert gated(w, "SELECT grp, COUNT(*) AS n FROM rev GROUP BY grp").rows == [["A", 30]]
    got = gated(w, "SELECT grp, COUNT(*) AS n, SUM(revenue) AS s FROM rev GROUP BY grp")
    assert got.rows == [] and got.suppressed_groups == 1
    assert gated(w, "SELECT COUNT(revenue) AS n FROM rev").rows == []


def test_datasets_with_different_units_count_each(tmp_path: Path, tables: Tables) -> None:
    # Directors (unit: person) of registry firms (unit: uscc), joined on the firm's uscc: a group
    # must hold enough firms AND enough persons.
    rng = random.Random(5)
    reg = tables.frames["registry"]
    firms = list(reg.uscc)
    people = pd.DataFrame({"person": [f"p{rng.randrange(16)}" for _ in range(600)],
                           "uscc": [rng.choice(firms) for _ in range(600)],
                           "salary": [rng.choice([None, rng.uniform(1e3, 1e5)]) for _ in range(600)]})
    schema = pa.schema([("person", pa.string()), ("uscc", pa.string()), ("salary", pa.float64())])
    write_table(tmp_path / "directors", people, schema)
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "person",
              "output": {"min_group_size": 12, "significant_digits": 17}, "sdc": {"perturbation": "none"},
              "columns": {"person": "identifier", "uscc": "join_key", "salary": "measure"}}
    infos = {**tables.infos, "directors": table_info("directors", policy, schema)}
    snaps = {**tables.snapshots, "directors": snapshot_of(tmp_path / "directors", "directors")}
    w = Tables(infos, snaps, {}, tmp_path)
    plan = plan_query("SELECT r.industry, r.district, COUNT(*) AS n, AVG(d.salary) AS s FROM registry r "
                      "JOIN directors d ON r.uscc = d.uscc GROUP BY r.industry, r.district", w.lookup)
    assert len(plan.unit_columns) == 2 and plan.min_group_size == 12
    got = run_query(plan, snaps)
    joined = people.merge(reg, on="uscc")
    want, suppressed = expected(joined, ["industry", "district"], [("count", None), ("avg", "salary")],
                                unit=["uscc", "person"], threshold=12)
    assert want
    assert_rows_match(got, want, suppressed)
    # counting persons too suppresses more here than counting firms alone would
    by_threshold = next(d["suppressed"] for d in got.decisions if d["rule"] == "min_group_size" and "suppressed" in d)
    known = joined[joined.salary.notna()].groupby(["industry", "district"]).uscc.nunique()
    assert by_threshold > int((known < 12).sum())


@pytest.mark.parametrize("threshold", [1, 3, 7, 12, 40])
def test_threshold_boundary(tmp_path: Path, threshold: int) -> None:
    sizes = {"a": 1, "b": 3, "c": 6, "d": 7, "e": 12, "f": 39, "g": 40}
    df = pd.DataFrame({"grp": [g for g, n in sizes.items() for _ in range(n)]})
    df["firm"] = [f"u{i}" for i in range(len(df))]
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "firm", "output": {"min_group_size": threshold},
              "columns": {"firm": "identifier", "grp": "dimension"}}
    w = _one_table(tmp_path, "sizes", df, policy)
    got = gated(w, "SELECT grp, COUNT(*) AS n FROM sizes GROUP BY grp ORDER BY grp")
    want = [[g, n] for g, n in sizes.items() if n >= threshold]
    if len(want) == len(sizes) - 1:  # one small group alone: secondary suppression takes the next smallest
        want.remove(min(want, key=lambda r: r[1]))
    assert got.rows == want
    assert got.suppressed_groups == len(sizes) - len(want)


# ------------------------------------------------------------------ pinned versions and the delta-rs path


def test_pinned_versions(tmp_path: Path) -> None:
    path = tmp_path / "reg"
    v0 = pd.DataFrame({"uscc": [f"a{i}" for i in range(15)], "industry": ["C"] * 15})
    v1 = pd.DataFrame({"uscc": [f"b{i}" for i in range(25)], "industry": ["C"] * 25})
    schema = pa.schema([("uscc", pa.string()), ("industry", pa.string())])
    write_table(path, v0, schema)
    write_table(path, v1, schema, mode="append")
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "uscc",
              "columns": {"uscc": "join_key", "industry": "dimension"}}
    info = table_info("reg", policy, schema)
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM reg GROUP BY industry", lambda n: info)
    for version, delta_reader, want in [(0, False, 15), (1, False, 40), (0, True, 15), (1, True, 40)]:
        snap = snapshot_of(path, "reg", version, needs_delta_reader=delta_reader)
        assert snap.version == version
        assert run_query(plan, {"reg": snap}).rows == [["C", want]]


def test_partitioned_table_through_the_delta_reader(tmp_path: Path, tables: Tables) -> None:
    path = tmp_path / "reg_part"
    df = tables.frames["registry"]
    write_table(path, df, REGISTRY_TYPES, partition_by=["district"])
    info = table_info("reg_part", REGISTRY_POLICY, REGISTRY_TYPES)
    snap = snapshot_of(path, "reg_part", needs_delta_reader=True)
    plan = plan_query("SELECT district, industry, AVG(capital) AS c FROM reg_part WHERE district <> 'banan' "
                      "GROUP BY district, industry", lambda n: info)
    got = run_query(plan, {"reg_part": snap})
    want, suppressed = expected(df[df.district != "banan"], ["district", "industry"], [("avg", "capital")],
                                unit="uscc", threshold=10)
    assert want and {r[0] for r in got.rows} <= {"yubei", "jiangbei"}
    assert_rows_match(got, want, suppressed)


def test_empty_snapshot_reads_through_the_delta_reader(tmp_path: Path) -> None:
    path = tmp_path / "emptied"
    df = pd.DataFrame({"uscc": [f"a{i}" for i in range(20)], "industry": ["C"] * 20})
    schema = pa.schema([("uscc", pa.string()), ("industry", pa.string())])
    write_table(path, df, schema)
    DeltaTable(str(path)).delete()
    snap = snapshot_of(path, "emptied")
    assert snap.files == ()
    policy = {"tenants": ["*"], "purposes": ["x"], "privacy_unit": "uscc",
              "columns": {"uscc": "join_key", "industry": "dimension"}}
    info = table_info("emptied", policy, schema)
    got = run_query(plan_query("SELECT COUNT(*) AS n FROM emptied", lambda n: info), {"emptied": snap})
    assert (got.rows, got.suppressed_groups) == ([], 1)


# ------------------------------------------------------------------ the engine's lockdown


def _locked(tables: Tables) -> duckdb.DuckDBPyConnection:
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry", tables.lookup)
    return open_connection(plan, tables.snapshots)


@pytest.mark.parametrize(
    "attack",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM glob('/*')",
        "COPY (SELECT 1) TO '{out}/escape.csv'",
        "ATTACH '{out}/escape.db' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_paths = ['/etc/passwd']",
        "SET lock_configuration = false",
        "RESET enable_external_access",
    ],
)
def test_connection_is_locked_down(tables: Tables, attack: str, tmp_path: Path) -> None:
    con = _locked(tables)
    try:
        with pytest.raises(duckdb.Error):
            con.execute(attack.format(out=tmp_path)).fetchall()
        # and the views still read afterwards
        assert con.execute('SELECT COUNT(*) FROM "registry"').fetchone() == (len(tables.frames["registry"]),)
    finally:
        con.close()
    assert list(tmp_path.iterdir()) == []


def test_other_versions_files_are_not_readable(tmp_path: Path) -> None:
    path = tmp_path / "reg"
    schema = pa.schema([("uscc", pa.string()), ("industry", pa.string())])
    write_table(path, pd.DataFrame({"uscc": ["a"], "industry": ["C"]}), schema)
    write_table(path, pd.DataFrame({"uscc": ["b"], "industry": ["F"]}), schema, mode="overwrite")
    old = snapshot_of(path, "reg", 0).files
    new = snapshot_of(path, "reg", 1)
    assert set(old).isdisjoint(new.files)
    policy = {"tenants": ["*"], "purposes": ["x"], "columns": {"uscc": "join_key", "industry": "dimension"}}
    info = table_info("reg", policy, schema)
    con = open_connection(plan_query("SELECT COUNT(*) AS n FROM reg", lambda n: info), {"reg": new})
    try:
        assert con.execute('SELECT COUNT(*) FROM "reg"').fetchone() == (1,)
        with pytest.raises(duckdb.Error):
            con.execute(f"SELECT * FROM read_parquet('{old[0]}')").fetchall()
    finally:
        con.close()


def test_views_expose_only_the_columns_read(tables: Tables) -> None:
    con = _locked(tables)
    try:
        cols = [r[0] for r in con.execute('DESCRIBE "registry"').fetchall()]
        # no name, no capital: not read by this plan; the record keys are (the cell key), but no
        # query can name them (undeclared: unknown_column)
        assert cols == ["industry", "uscc", "__twh_rkey"]
    finally:
        con.close()


# ------------------------------------------------------------------ errors at the boundary


@pytest.mark.parametrize(
    ("where", "column_type"),
    [("industry = 5", "VARCHAR"), ("industry IN (1, 2)", "VARCHAR"), ("district > 5", "VARCHAR"),
     ("reg_date = 5", "DATE"), ("active = 'yes'", "BOOLEAN"), ("reg_date LIKE '2015%'", "DATE")],
)
def test_literal_types_must_match_columns(tables: Tables, where: str, column_type: str) -> None:
    # `industry = 5` would make DuckDB cast every industry to a number: its error quotes a value
    # and whether it fails depends on the data. Refused from the schema alone.
    with pytest.raises(QueryRefused) as e:
        gated(tables, f"SELECT COUNT(*) AS n FROM registry WHERE {where}")
    assert e.value.details["rule"] == "literal_type"
    assert e.value.details["column_type"] == column_type


def test_numeric_columns_take_numbers_only(tables: Tables) -> None:
    with pytest.raises(QueryRefused) as e:
        gated(tables, "SELECT COUNT(*) AS n FROM loans WHERE term = '12'")
    assert e.value.details["rule"] == "literal_type"
    assert gated(tables, "SELECT term, COUNT(*) AS n FROM loans WHERE term IN (12, 24.0) GROUP BY term").rows


@pytest.mark.parametrize("bucket", ["FLOOR(district / 2)", "WIDTH_BUCKET(district, 0, 9, 3)", "FLOOR(reg_date / 7)"])
def test_only_numeric_columns_are_bucketed(tables: Tables, bucket: str) -> None:
    # CAST(district AS DOUBLE) would fail or not depending on the values: refused from the schema
    with pytest.raises(QueryRefused) as e:
        gated(tables, f"SELECT {bucket} AS b, COUNT(*) AS n FROM registry GROUP BY b")
    assert e.value.details["rule"] == "literal_type" and "bucketed" in e.value.message
    assert gated(tables, "SELECT WIDTH_BUCKET(employees, 0, 500, 5) AS b, COUNT(*) AS n FROM registry GROUP BY b").rows


def test_engine_errors_do_not_echo_values(tables: Tables) -> None:
    with pytest.raises(QueryRefused) as e:
        gated(tables, "SELECT COUNT(*) AS n FROM registry WHERE reg_date = 'SECRET-NOT-A-DATE'")
    assert e.value.details["rule"] == "engine_rejected"
    assert "SECRET" not in e.value.message and "SECRET" not in str(e.value.details)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_timeout_interrupts_the_query(tables: Tables) -> None:
    plan = plan_query("SELECT COUNT(*) AS n FROM registry", tables.lookup)
    heavy = dataclasses.replace(plan, engine_sql=(
        'SELECT SUM(a.range * b.range) AS "n", COUNT(*) AS "__twh_rows", COUNT(*) AS "__twh_units" '
        "FROM range(200000000) a, range(1000) b"))
    with pytest.raises(QueryRefused) as e:
        run_query(heavy, tables.snapshots, timeout_s=0.3)
    assert e.value.details["rule"] == "timeout"


def test_missing_snapshot_is_a_bug(tables: Tables) -> None:
    plan = plan_query("SELECT COUNT(*) AS n FROM registry", tables.lookup)
    with pytest.raises(InternalError):
        run_query(plan, {})
    wrong = dataclasses.replace(tables.snapshots["loans"])
    with pytest.raises(InternalError):
        run_query(plan, {"registry": wrong})
    with pytest.raises(InternalError):
        run_query(plan, tables.snapshots, engine="no_such_engine")


def test_snapshot_lacking_a_declared_column_is_a_bug(tables: Tables) -> None:
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM registry GROUP BY industry", tables.lookup)
    snap = dataclasses.replace(tables.snapshots["registry"], columns=("uscc", "district", "__twh_rkey"))
    with pytest.raises(InternalError) as e:
        run_query(plan, {"registry": snap})
    assert e.value.details["columns"] == ["industry"]


def test_unopenable_delta_table_does_not_leak_paths(tables: Tables, tmp_path: Path) -> None:
    plan = plan_query("SELECT COUNT(*) AS n FROM registry", tables.lookup)
    snap = dataclasses.replace(tables.snapshots["registry"], table_path=str(tmp_path / "gone"), needs_delta_reader=True)
    with pytest.raises(InternalError) as e:
        run_query(plan, {"registry": snap})
    assert str(tmp_path) not in e.value.message and str(tmp_path) not in str(e.value.details)


# ------------------------------------------------------------------ property: random queries vs pandas


def test_random_queries_match_pandas(tables: Tables) -> None:
    rng = random.Random(20240601)
    df = tables.frames["registry"]
    dims = ["industry", "district", "active"]
    aggs: list[tuple[str, Agg]] = [("COUNT(*)", ("count", None)), ("SUM(capital)", ("sum", "capital")),
                                   ("AVG(capital)", ("avg", "capital")), ("COUNT(employees)", ("count", "employees")),
                                   ("AVG(employees)", ("avg", "employees"))]
    preds: list[tuple[str, Callable[[pd.DataFrame], pd.Series]]] = [
        ("industry = 'C'", lambda d: d.industry == "C"),
        ("district <> 'banan'", lambda d: d.district != "banan"),
        ("reg_date >= DATE '2015-01-01'", lambda d: d.reg_date >= dt.date(2015, 1, 1)),
        ("industry IN ('F', 'G', 'K')", lambda d: d.industry.isin(["F", "G", "K"])),
        ("active = TRUE", lambda d: d.active),
    ]
    for _ in range(25):
        by = rng.sample(dims, rng.randrange(0, 3))
        chosen = rng.sample(aggs, rng.randrange(1, 4))
        items = by + [f"{sql} AS a{i}" for i, (sql, _) in enumerate(chosen)]
        sql = f"SELECT {', '.join(items)} FROM registry"
        mask = pd.Series(True, index=df.index)
        if rng.random() < 0.6:
            (p1, m1), (p2, m2) = rng.sample(preds, 2)
            if rng.random() < 0.5:
                sql, mask = sql + f" WHERE {p1} AND {p2}", m1(df) & m2(df)
            else:
                sql, mask = sql + f" WHERE {p1} OR NOT ({p2})", m1(df) | ~m2(df)
        if by:
            sql += f" GROUP BY {', '.join(by)}"
        want, suppressed = expected(df[mask], by, [a for _, a in chosen], unit="uscc", threshold=10)
        got = gated(tables, sql)
        assert_rows_match(got, want, suppressed)
        for row in got.rows:
            assert all(not (isinstance(v, float) and math.isnan(v)) for v in row)


def test_table_info_roundtrip(tables: Tables) -> None:
    # The fixtures' policies are the real policies of the flagship scenario.
    assert isinstance(tables.lookup("loans"), TableInfo)
    assert tables.infos["loans"].policy.min_group_size == LOANS_POLICY["output"]["min_group_size"]
    assert isinstance(tables.snapshots["registry"], Snapshot)
