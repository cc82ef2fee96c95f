"""The dp release mode end to end over a Delta snapshot: rewrite, bounds, keys, noise, grid."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import duckdb
import pytest
import sqlglot
from dp_fixtures import dp_policy, info, write_table

from sandbox.errors import QueryRefused
from sandbox.gate import plan_query, run_query
from sandbox.gate.cellkey import round_significant
from sandbox.tables.snapshot import Snapshot

SQL = "SELECT industry, COUNT(*) AS n, SUM(amount) AS s, AVG(amount) AS a FROM loans GROUP BY industry"


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    # One extra unit, alone in industry "Z", with 3 rows.
    return write_table(tmp_path_factory.mktemp("dp") / "loans",
                       extra={"unit": ["LONER"] * 3, "industry": ["Z"] * 3, "amount": [1.0] * 3, "flag": [1] * 3})


def test_rewrite_bounds_contributions_inside_the_sql() -> None:
    plan = plan_query(SQL, lambda _n: info(dp_policy()))
    sql = plan.engine_sql
    x = 'CAST("loans"."amount" AS DOUBLE)'
    assert f"CASE WHEN {x} < 0.0 THEN 0.0 WHEN {x} > 500.0 THEN 500.0 ELSE {x} END" in sql
    assert "__twh_heavy_0" in sql and "HASH(\"loans\".\"unit\")" in sql
    assert "ORDER BY" not in sql  # ordering happens on noisy values, never in the engine
    # It transpiles to Spark SQL (the plan's engine will change; the rewrite must not).
    spark = sqlglot.transpile(sql, read="duckdb", write="spark")[0]
    assert "CASE WHEN" in spark
    assert plan.dp.epsilon == Fraction(1, 2) and plan.dp.rows_per_unit == 5


def test_sum_without_declared_bounds_is_refused() -> None:
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT SUM(flag) AS s FROM loans", lambda _n: info(dp_policy()))
    assert e.value.details["rule"] == "dp_bounds"


def test_unknown_keys_without_delta_are_refused() -> None:
    policy = dp_policy(public_keys={}, delta_per_query=0)
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT industry, COUNT(*) AS n FROM loans GROUP BY industry", lambda _n: info(policy))
    assert e.value.details["rule"] == "dp_keys"


def test_public_keys_release_every_key_and_only_those(snap: Snapshot) -> None:
    r = run_query(plan_query(SQL, lambda _n: info(dp_policy())), {"loans": snap})
    assert r.columns == ["industry", "n", "s", "a"]
    assert sorted(row[0] for row in r.rows) == ["C", "F", "G", "K"]  # K: empty, still released; Z: not public
    d = r.decisions[-1]
    assert d["rule"] == "differential_privacy" and d["epsilon"] == "1/2" and d["keys"] == "public"
    assert {n["column"] for n in d["noise"]} == {"n", "s", "a"}
    assert all(n["scale"] > 0 and n["ci95_halfwidth"] > 0 for n in d["noise"])


def test_partition_selection_never_releases_a_single_units_key(snap: Snapshot) -> None:
    policy = dp_policy(public_keys={})
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM loans GROUP BY industry", lambda _n: info(policy))
    for _ in range(20):
        r = run_query(plan, {"loans": snap})
        keys = {row[0] for row in r.rows}
        assert "Z" not in keys and keys <= {"C", "F", "G"}
        assert r.decisions[-1]["keys"] == "partition_selection" and r.decisions[-1]["delta"] == "1/10000000"


def test_heavy_units_weigh_at_most_max_rows(snap: Snapshot) -> None:
    # The engine's exact weighted count (before noise) is at most 5 rows per unit.
    plan = plan_query("SELECT COUNT(*) AS n FROM loans", lambda _n: info(dp_policy()))
    from sandbox.gate.engine import open_connection

    con = open_connection(plan, {"loans": snap})
    (weighted,) = con.execute(plan.engine_sql).fetchone()
    units = duckdb.sql(f"SELECT COUNT(DISTINCT unit) FROM read_parquet({list(snap.files)})").fetchall()[0][0]
    assert weighted / 1024 <= 5 * units
    assert weighted / 1024 >= 0.95 * 5 * units  # ~10 rows per unit: nearly every unit is heavy


@pytest.mark.parametrize("repeat", range(20))
def test_released_values_lie_on_their_grid(snap: Snapshot, repeat: int) -> None:
    """With every digit kept (17 significant digits round-trip a double), a noisy sum is exactly
    k * grid: its low bits carry nothing but the integer k (no float noise to attack). The
    public key K has no rows, so its sum is pure noise near 0, where decimal rounding would show."""
    r = run_query(plan_query(SQL, lambda _n: info(dp_policy(output={"significant_digits": 17}))), {"loans": snap})
    d = {n["column"]: n for n in r.decisions[-1]["noise"]}
    assert [row[0] for row in r.rows] == ["C", "F", "G", "K"]
    for row in r.rows:
        assert isinstance(row[1], int)
        k = Fraction(row[2]) / Fraction(d["s"]["grid"])
        assert k.denominator == 1  # exactly k * grid
        assert row[3] is None or 0 <= row[3] <= 500


@pytest.mark.parametrize("repeat", range(20))
def test_rounding_to_the_policys_digits_is_a_function_of_the_grid_value_alone(snap: Snapshot, repeat: int) -> None:
    """At the default 4 significant digits a small sum (K's, near 0) is a decimal such as 233.7, off
    the binary grid; it must still be the rounding of the grid value next to it (post-processing of
    k alone), never of a value with other low bits."""
    plan = plan_query(SQL, lambda _n: info(dp_policy()))
    assert plan.significant_digits == 4
    r = run_query(plan, {"loans": snap})
    grid = Fraction({n["column"]: n for n in r.decisions[-1]["noise"]}["s"]["grid"])
    for row in r.rows:
        k = round(Fraction(row[2]) / grid)
        assert round_significant(float(k * grid), 4) == row[2]


def test_order_by_sorts_noisy_values(snap: Snapshot) -> None:
    r = run_query(plan_query(SQL + " ORDER BY n DESC", lambda _n: info(dp_policy())), {"loans": snap})
    counts = [row[1] for row in r.rows]
    assert counts == sorted(counts, reverse=True)


def test_row_level_policy_needs_no_unit(tmp_path: Path) -> None:
    snap = write_table(tmp_path / "loans", n=2000)
    from dp_fixtures import COLUMNS, ROLES  # noqa: F401

    from policies import load_policy
    policy = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": ROLES, "release_mode": "dp",
                          "dp": {"bounds": {"amount": [0, 500]}, "budget": {"epsilon": 1},
                                 "public_keys": {"industry": ["C", "F", "G"]}}})
    plan = plan_query("SELECT industry, COUNT(*) AS n FROM loans GROUP BY industry", lambda _n: info(policy))
    assert "__twh_heavy" not in plan.engine_sql and plan.dp.stats[0].sensitivity == 1
    r = run_query(plan, {"loans": snap})
    assert sum(row[1] for row in r.rows) == pytest.approx(2000, abs=200)
    assert math.isclose(r.decisions[-1]["noise"][0]["scale"], 10.0)


def test_a_join_both_policies_do_not_allow_is_refused() -> None:
    from sandbox.gate import TableInfo

    a = TableInfo("loans", dp_policy(), ("unit", "industry", "amount", "flag"))
    b_policy = dp_policy().model_copy(update={"allowed_joins": ["someone_else"]})
    b = TableInfo("other", b_policy, ("unit", "industry", "amount", "flag"))
    tables = {"loans": a, "other": b}
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT COUNT(*) AS n FROM loans l JOIN other o ON l.unit = o.unit", lambda n: tables[n])
    assert e.value.details["rule"] == "join_condition" and "does not allow" in e.value.message
    ok = {"loans": a, "other": TableInfo("other", dp_policy().model_copy(update={"allowed_joins": ["loans"]}),
                                         b.columns)}
    plan = plan_query("SELECT COUNT(*) AS n FROM loans l JOIN other o ON l.unit = o.unit", lambda n: ok[n])
    assert plan.dp.rows_per_unit == 25  # 5 rows in each dataset: 25 joined rows per unit at most


def test_dp_join_on_other_than_the_unit_is_refused() -> None:
    from policies import load_policy
    from sandbox.gate import TableInfo

    roles = {"unit": "join_key", "other_key": "join_key", "industry": "dimension", "amount": "measure"}
    pol = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": roles, "privacy_unit": "unit",
                       "release_mode": "dp", "dp": {"budget": {"epsilon": 1}, "bounds": {"amount": [0, 1]}}})
    t = {n: TableInfo(n, pol, tuple(roles)) for n in ("a", "b")}
    with pytest.raises(QueryRefused) as e:
        plan_query("SELECT COUNT(*) AS n FROM a JOIN b ON a.other_key = b.other_key", lambda n: t[n])
    assert e.value.details["rule"] == "dp_unit"
