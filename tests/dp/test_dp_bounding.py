"""Contribution bounding: integer count weights, and the light plan chosen when no unit is heavy."""

from __future__ import annotations

import duckdb
import pytest
from dp_fixtures import dp_policy, info, write_table

from sandbox.gate import plan_query, run_query
from sandbox.gate.dp_bounding import engine_sql, heavy_units
from sandbox.gate.engine import open_connection
from sandbox.snapshot import Snapshot

SQL = ("SELECT industry, COUNT(*) AS n, COUNT(amount) AS k, SUM(amount) AS s, MEDIAN(amount) AS m "
       "FROM loans WHERE industry <> 'G' GROUP BY industry")


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return write_table(tmp_path_factory.mktemp("dpb") / "loans", n=5_000, units=1_000)


def _rows(plan, snap: Snapshot, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    con = open_connection(plan, {"loans": snap})
    try:
        return sorted(con.execute(sql).fetchall(), key=lambda r: (str(r[0]), r[1] if r[1] is not None else -1))
    finally:
        con.close()


def test_integer_count_weights_bound_every_unit_exactly(snap: Snapshot) -> None:
    table = heavy_units(snap, "unit", 3)
    assert table.num_rows > 0
    for w, c in zip(table.column("w").to_pylist(), table.column("c").to_pylist()):
        assert c <= w * 1024 < c + 1  # c = floor(m * 1024 / N)
    # per unit, the weighted row count the engine sums never exceeds m * 1024 (no float slack)
    plan = plan_query("SELECT COUNT(*) AS n FROM loans", lambda _n: info(dp_policy(max_rows_per_unit=3)))
    assert plan.dp.stats[0].sensitivity == 3 * 1024
    con = open_connection(plan, {"loans": snap})
    try:
        worst = con.execute('SELECT MAX(t) FROM (SELECT SUM(COALESCE(h.c, 1024)) AS t FROM "loans" '
                            'LEFT JOIN "__twh_heavy_0" h ON hash("loans"."unit") = h.k GROUP BY "loans"."unit")'
                            ).fetchone()[0]
    finally:
        con.close()
    assert worst <= 3 * 1024


def test_light_plan_runs_only_when_no_unit_is_heavy_and_computes_the_same(snap: Snapshot) -> None:
    n_max = duckdb.sql(f"SELECT MAX(c) FROM (SELECT COUNT(*) AS c FROM read_parquet({list(snap.files)}) "
                       "GROUP BY unit)").fetchall()[0][0]
    roomy = plan_query(SQL, lambda _n: info(dp_policy(max_rows_per_unit=n_max)))
    assert roomy.dp.light_sql and "__twh_heavy" not in roomy.dp.light_sql and "HASH" not in roomy.dp.light_sql
    assert engine_sql(roomy, {"loans": snap}) == roomy.dp.light_sql
    # the two plans give the very same integers: the choice cannot change what is released
    assert _rows(roomy, snap, roomy.engine_sql) == _rows(roomy, snap, roomy.dp.light_sql)

    tight = plan_query(SQL, lambda _n: info(dp_policy(max_rows_per_unit=n_max - 1)))
    assert engine_sql(tight, {"loans": snap}) == tight.engine_sql  # a heavy unit exists: weights needed
    assert _rows(tight, snap, tight.engine_sql) != _rows(tight, snap, tight.dp.light_sql)
    r = run_query(roomy, {"loans": snap})
    assert [row[0] for row in r.rows] == ["C", "F", "G", "K"]  # every public key, G (filtered out) as noise
