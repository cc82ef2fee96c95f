"""Contribution bounding: integer count weights, the light plan chosen when no unit is heavy, and the
bounded copy read instead of the heavy-unit join."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from dp_fixtures import COLUMNS, dp_policy, info, write_table

from sandbox.gate import TableInfo, dp_bounding, plan_query, run_query
from sandbox.gate.dp_bounding import DpRun, choose, engine_sql, heavy_units
from sandbox.gate.engine import open_connection
from sandbox.tables import storage
from sandbox.tables.snapshot import Snapshot

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


BOUNDED_SQL = ("SELECT industry, COUNT(*) AS n, COUNT(amount) AS k, SUM(amount) AS s, AVG(amount) AS a, "
               "MEDIAN(amount) AS m FROM loans WHERE industry IN ('C', 'F') GROUP BY industry")


def _bounded_rows(plan, snap: Snapshot, copies: Path) -> tuple[list[tuple], DpRun]:  # type: ignore[no-untyped-def]
    run = choose(plan, {"loans": snap}, copies)
    con = open_connection(plan, {"loans": snap}, run)
    try:
        rows = con.execute(run.sql).fetchall()
    finally:
        con.close()
    return sorted(rows, key=lambda r: (str(r[0]), r[1] if r[1] is not None else -1)), run


def test_bounded_copy_gives_the_join_plans_integers_without_the_unit(snap: Snapshot, tmp_path: Path) -> None:
    plan = plan_query(BOUNDED_SQL, lambda _n: info(dp_policy(max_rows_per_unit=3)))
    assert plan.dp.bounded_sql and "__twh_heavy" not in plan.dp.bounded_sql and "HASH" not in plan.dp.bounded_sql
    rows, run = _bounded_rows(plan, snap, tmp_path)
    assert run.sql == plan.dp.bounded_sql and not run.joins_heavy
    (path,) = run.copies.values()
    assert Path(path).parent.parent == tmp_path
    # the very integers of the heavy-unit join: the choice cannot change what is released
    assert rows == _rows(plan, snap, plan.engine_sql)
    assert rows != _rows(plan, snap, plan.dp.light_sql)  # heavy units exist: the weights matter
    # the copy holds the dimensions and measures and a weight per row, never the privacy unit
    schema = pq.read_schema(path)
    assert schema.names == ["industry", "amount", "flag", "__twh_c"]
    assert pq.read_metadata(path).num_rows == sum(pq.read_metadata(f).num_rows for f in snap.files)
    weights = pq.read_table(path, columns=["__twh_c"]).column(0).to_pylist()
    assert max(weights) == 1024 and min(weights) < 1024 and len(set(weights)) > 2


def test_bounded_copy_is_written_once_and_reused(snap: Snapshot, tmp_path: Path) -> None:
    plan = plan_query(BOUNDED_SQL, lambda _n: info(dp_policy(max_rows_per_unit=3)))
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        choose(plan, {"loans": snap}, tmp_path).copies["loans"])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1
    written = Path(results[0]).stat().st_ino
    files = list(tmp_path.rglob("*"))
    assert [f.name for f in files if f.is_file()] == [Path(results[0]).name]  # no temporary file left
    r = run_query(plan, {"loans": snap}, copies_dir=tmp_path)  # through the gate: same copy, noised release
    assert [row[0] for row in r.rows] == ["C", "F", "G", "K"]
    assert Path(results[0]).stat().st_ino == written
    # another m is another copy (the weights differ); no unit heavy: no copy at all
    other = plan_query(BOUNDED_SQL, lambda _n: info(dp_policy(max_rows_per_unit=4)))
    assert choose(other, {"loans": snap}, tmp_path).copies["loans"] != results[0]
    n_max = duckdb.sql(f"SELECT MAX(c) FROM (SELECT COUNT(*) AS c FROM read_parquet({list(snap.files)}) "
                       "GROUP BY unit)").fetchall()[0][0]
    roomy = plan_query(BOUNDED_SQL, lambda _n: info(dp_policy(max_rows_per_unit=n_max)))
    assert choose(roomy, {"loans": snap}, tmp_path) == DpRun(roomy.dp.light_sql, {}, joins_heavy=False)


def test_joined_datasets_keep_the_join_plan(snap: Snapshot, tmp_path: Path) -> None:
    policy = dp_policy(max_rows_per_unit=3)
    plan = plan_query("SELECT a.industry, COUNT(*) AS n FROM loans a JOIN other b ON a.unit = b.unit "
                      "GROUP BY a.industry", lambda n: TableInfo(n, policy, COLUMNS))
    snaps = {"loans": snap, "other": dataclasses.replace(snap, dataset="other")}
    assert not plan.dp.bounded_sql
    assert choose(plan, snaps, tmp_path) == DpRun(plan.engine_sql)
    run_query(plan, snaps, copies_dir=tmp_path)
    assert not list(tmp_path.iterdir())
    one = plan_query(BOUNDED_SQL, lambda _n: info(policy))
    assert choose(one, {"loans": snap}, None) == DpRun(one.engine_sql)  # no copies directory: the join


def test_stale_copies_of_old_versions_are_pruned(tmp_path: Path) -> None:
    table = tmp_path / "t" / "loans"
    snaps = [write_table(table, n=2_000, units=200)]
    for _ in range(3):
        write_deltalake(str(table), pa.table({"unit": ["U1"] * 10, "industry": ["C"] * 10,
                                              "amount": [1.0] * 10, "flag": [0] * 10}), mode="append")
        snaps.append(storage.pin_snapshot(table, "loans"))
    plan = plan_query(BOUNDED_SQL, lambda _n: info(dp_policy(max_rows_per_unit=3)))
    copies = tmp_path / "copies"
    paths = []
    for s in snaps[:3]:
        paths.append(Path(choose(plan, {"loans": s}, copies).copies["loans"]))
    old = time.time() - dp_bounding.STALE_COPY_S - 10
    os.utime(paths[0], (old, old))  # version 0: unused for over an hour
    newest = Path(choose(plan, {"loans": snaps[3]}, copies).copies["loans"])
    assert not paths[0].exists()  # neither of the two newest versions, and stale
    assert paths[1].exists()  # not among the two newest, but used lately: a job may still read it
    assert paths[2].exists() and newest.exists()
