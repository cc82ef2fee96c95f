"""Spark ≡ DuckDB: every query shape the gate allows gives the same engine rows on both engines.

Engine rows (output columns and every hidden column: sizes, top contributions, totals, keys,
unit lists) are compared before release, over the same pinned Delta versions: exact equality,
floats within 1e-9 relative, lists as multisets (aggregation order is the engine's). The dp
rewrite is compared before noise. One SparkSession for the run (the ``spark`` fixture).

Every test runs on the classic session (``local[2]`` in this process); a representative subset
(``kind="connect"``) runs again over Spark Connect, whose server drives the 2-worker standalone
cluster (tests/spark_cluster.py). The classic driver on the cluster runs the ``cluster_subset``
tests in a child pytest (tests/e2e/test_spark_cluster.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from gate_fixtures import Tables, snapshot_of, table_info, write_table
from spark_cluster import MASTER_ENV

from sandbox.errors import QueryRefused
from sandbox.gate import ENGINES, TableInfo, plan_query, run_query
from sandbox.gate.plan import QueryPlan
from sandbox.tables.snapshot import Snapshot

# The first test also starts the SparkSession (JVM + Ivy): minutes on a loaded 2-core box.
pytestmark = pytest.mark.timeout(900)

#: a table made to trip engines up: NULL keys, quotes and backslashes, unicode, a timestamp
#: dimension, BIGINT sums past 2**63, DECIMAL and DOUBLE measures with NULLs
PARITY_TYPES = pa.schema([
    ("unit", pa.string()), ("uscc", pa.string()), ("grp", pa.string()), ("day", pa.date32()),
    ("ts", pa.timestamp("us", tz="UTC")), ("flag", pa.bool_()), ("n", pa.int64()),
    ("qty", pa.int64()), ("price", pa.decimal128(12, 2)), ("score", pa.float64()),
])
GROUPS = [None, "a\\b", "O'Brien", "Ünïcode", "a_b", "a%b", "plain"]
PARITY_ROLES = {"unit": "join_key", "uscc": "join_key", "grp": "dimension", "day": "dimension", "ts": "dimension",
                "flag": "dimension", "n": "dimension", "qty": "measure", "price": "measure", "score": "measure"}


def parity_frame(rows: int = 420) -> pd.DataFrame:
    data = []
    for i in range(rows):
        data.append({
            "unit": f"U{i % 60:03d}",
            "uscc": f"91500000{(i * 7) % 300:010d}",
            "grp": GROUPS[i % len(GROUPS)],
            "day": dt.date(2020, 1, 1) + dt.timedelta(days=(i * 13) % 400),
            "ts": dt.datetime(2021, 3, 1, tzinfo=dt.timezone.utc) + dt.timedelta(hours=(i * 5) % 72),
            "flag": i % 3 == 0,
            "n": (i * 11) % 9 - 4,
            "qty": 2**61 + i if i % 4 else -(i * 1000),  # BIGINT sums overflow: DuckDB HUGEINT, Spark DECIMAL
            "price": Decimal(f"0.{(i * 37) % 100:02d}") if i % 5 else None,  # Spark AVG: decimal, 6-8 places
            "score": (i * 0.1) / 3 if i % 6 else None,
        })
    return pd.DataFrame(data)


def _policy(unit: str | None) -> dict[str, Any]:
    # the policy's defaults: the cell-key method, whose hidden columns (cell keys, top contributors'
    # keys) must match on both engines too; measures bucketed on public edges
    return {"tenants": ["bank_a"], "purposes": ["credit_risk"], "columns": PARITY_ROLES,
            **({"privacy_unit": unit} if unit else {}), "output": {"min_group_size": 2},
            "sdc": {"bucket_edges": {"score": [0, 2.5, 5, 7.5, 10], "price": [0, 0.25, 0.5, 0.75, 1]}}}


@pytest.fixture(scope="module")
def world(tables: Tables, tmp_path_factory: pytest.TempPathFactory, spark: Any) -> Tables:
    """The gate's registry/loans plus ``parity`` (unit ``unit``) and ``parity_rows`` (no unit)."""
    from sandbox.gate import spark_engine

    spark_engine.configure(spark.sparkContext.master)  # the `spark` fixture's
    root = tmp_path_factory.mktemp("parity")
    write_table(root / "parity", parity_frame(), PARITY_TYPES)
    infos = dict(tables.infos)
    snaps = dict(tables.snapshots)
    for name, unit in (("parity", "unit"), ("parity_rows", None)):
        infos[name] = table_info(name, _policy(unit), PARITY_TYPES)
        snaps[name] = snapshot_of(root / "parity", name)
    return Tables(infos, snaps, tables.frames, root)


@pytest.fixture
def kind(request: pytest.FixtureRequest, world: Tables) -> Any:
    """Which Spark the engine rows come from: ``classic`` (the default) or ``connect``."""
    from spark_cluster import connect_target

    from sandbox.gate import spark_engine

    which = getattr(request, "param", "classic")
    if os.environ.get(MASTER_ENV):  # the child pytest on the cluster: its classic driver runs the subset
        which = "classic"
    if which == "connect":
        spark_engine.configure(connect_target(request.getfixturevalue("spark_connect")))
    yield which
    spark_engine.configure(request.getfixturevalue("spark").sparkContext.master)


#: run on both kinds of session (the connect run costs ~1-2 s a test on this box)
BOTH = pytest.mark.parametrize("kind", ["classic", "connect"], indirect=True)


def _norm(value: Any) -> Any:
    if hasattr(value, "tolist"):  # a unit list: numpy uint64 hashes
        value = value.tolist()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (list, tuple)):
        return sorted((_norm(v) for v in value), key=repr)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def engine_rows(plan: QueryPlan, snaps: dict[str, Snapshot], engine: str) -> list[list[Any]]:
    rows = [[_norm(v) for v in row] for row in ENGINES[engine](plan, snaps, None)]
    return sorted(rows, key=lambda r: [(v is None, repr(v)) for v in r])


def assert_parity(world: Tables, sql: str) -> QueryPlan:
    plan = plan_query(sql, world.lookup)
    duck, spark = engine_rows(plan, world.snapshots, "duckdb"), engine_rows(plan, world.snapshots, "spark")
    assert len(duck) == len(spark), sql
    for d, s in zip(duck, spark):
        assert len(d) == len(s) and all(_same(x, y) for x, y in zip(d, s)), (sql, d, s)
    return plan


SHAPES = [
    # group-bys with 0-3 dimensions, every aggregate (unit-level two-step rewrite)
    "SELECT COUNT(*) AS n FROM registry",
    "SELECT industry, COUNT(*) AS n, COUNT(employees) AS c FROM registry GROUP BY industry",
    "SELECT industry, district, COUNT(*) AS n, SUM(capital) AS s, AVG(capital) AS a FROM registry "
    "GROUP BY industry, district",
    "SELECT grp, day, flag, COUNT(qty) AS c, SUM(qty) AS s, AVG(qty) AS a FROM parity GROUP BY grp, day, flag",
    "SELECT flag, SUM(qty) AS s, AVG(qty) AS a FROM parity GROUP BY flag",  # per unit and per group past 2**63
    # NULL keys, DECIMAL and DOUBLE measures with NULLs, timestamp keys
    "SELECT grp, SUM(price) AS s, AVG(price) AS a, SUM(score) AS t, AVG(score) AS m FROM parity GROUP BY grp",
    "SELECT ts, flag, COUNT(*) AS n, AVG(price) AS a FROM parity GROUP BY ts, flag",
    # WHERE: every comparison, IN, BETWEEN, LIKE/ILIKE, IS [NOT] NULL, AND/OR/NOT, typed literals
    "SELECT grp, COUNT(*) AS n FROM parity WHERE n = -4 OR n <> 2 AND n < 3 OR n <= -1 AND n > -3 OR n >= 4 "
    "GROUP BY grp",
    "SELECT grp, COUNT(*) AS n FROM parity WHERE grp IN ('a\\b', 'O''Brien', 'Ünïcode') OR NOT grp IN ('plain') "
    "GROUP BY grp",
    "SELECT flag, COUNT(*) AS n FROM parity WHERE day BETWEEN DATE '2020-03-01' AND '2020-09-30' "
    "AND ts >= TIMESTAMP '2021-03-02 06:00:00' GROUP BY flag",
    "SELECT grp, COUNT(*) AS n FROM parity WHERE grp LIKE 'a\\%' OR grp LIKE '%''%' OR grp ILIKE 'ü%' "
    "OR grp NOT LIKE '_\\_%' GROUP BY grp",
    "SELECT grp, COUNT(*) AS n FROM parity WHERE grp LIKE 'a_b' OR grp LIKE 'a%b' GROUP BY grp",
    "SELECT flag, COUNT(*) AS n FROM parity WHERE grp IS NULL OR grp IS NOT NULL AND flag = TRUE GROUP BY flag",
    "SELECT industry, COUNT(*) AS n FROM registry WHERE reg_date < DATE '2015-01-01' AND active = FALSE "
    "AND industry > 'C' GROUP BY industry",
    # row-level (no privacy unit): one GROUP BY with sizes, top-n and totals per measure
    "SELECT grp, n, COUNT(*) AS k, SUM(qty) AS s, AVG(score) AS a, SUM(price) AS p FROM parity_rows "
    "GROUP BY grp, n",
    # histogram buckets of measures and dimensions: doubles, decimals, integers, NULLs, labels
    "SELECT WIDTH_BUCKET(score, 0, 10, 4) AS b, COUNT(*) AS n, SUM(qty) AS s FROM parity GROUP BY b",
    "SELECT WIDTH_BUCKET(price, 0, 1, 4) AS band, grp, COUNT(*) AS n FROM parity GROUP BY band, grp",
    "SELECT FLOOR(n / 2) AS h, COUNT(*) AS c, AVG(score) AS a FROM parity_rows GROUP BY h",
    # declared joins: same unit on both sides; different units (COUNT DISTINCT, list of distinct units)
    "SELECT r.industry, l.term, COUNT(*) AS n, SUM(l.amount) AS s, AVG(l.defaulted) AS d "
    "FROM registry r JOIN loans l ON r.uscc = l.uscc GROUP BY r.industry, l.term",
    "SELECT r.district, p.flag, COUNT(*) AS n, SUM(p.qty) AS q, AVG(r.capital) AS c "
    "FROM registry r JOIN parity p ON r.uscc = p.uscc WHERE p.grp IS NOT NULL GROUP BY r.district, p.flag",
]


#: the shapes also run over Spark Connect on the cluster: aggregates past 2**63, decimals and doubles
#: with NULLs, quoting, LIKE escapes, row-level, a join of different units
CONNECT_SHAPES = (0, 2, 4, 5, 8, 10, 14, 19)


@pytest.mark.parametrize("sql, kind", [(q, "classic") for q in SHAPES]
                         + [pytest.param(SHAPES[i], "connect", marks=pytest.mark.cluster_subset) for i in CONNECT_SHAPES],
                         indirect=["kind"])
def test_engine_rows_match(world: Tables, sql: str, kind: str) -> None:
    assert_parity(world, sql)


@pytest.mark.parametrize("sql, kind", [
    ("SELECT grp, COUNT(*) AS n FROM parity_rows GROUP BY grp ORDER BY grp", "classic"),
    ("SELECT grp, COUNT(*) AS n FROM parity_rows GROUP BY grp ORDER BY grp DESC", "classic"),
    pytest.param("SELECT grp, COUNT(*) AS n FROM parity_rows GROUP BY grp ORDER BY grp DESC", "connect",
                 marks=pytest.mark.cluster_subset),
], indirect=["kind"])
def test_order_and_release_match(world: Tables, sql: str, kind: str) -> None:
    """Released results (threshold, dominance, secondary suppression) and ORDER BY with NULL keys."""
    plan = plan_query(sql, world.lookup)
    duck = run_query(plan, world.snapshots, engine="duckdb").to_dict()
    spark = run_query(plan, world.snapshots, engine="spark").to_dict()
    assert duck == spark
    assert None in [row[0] for row in duck["rows"]]  # the NULL key is ordered, not only present


def test_released_populations_match(world: Tables) -> None:
    plan = plan_query("SELECT grp, SUM(price) AS s FROM parity GROUP BY grp", world.lookup)
    duck = run_query(plan, world.snapshots, engine="duckdb")
    spark = run_query(plan, world.snapshots, engine="spark")
    key = lambda r: repr(r[0])  # noqa: E731
    assert sorted(duck.rows, key=key) == sorted(spark.rows, key=key)
    assert (duck.suppressed_groups, duck.decisions) == (spark.suppressed_groups, spark.decisions)
    assert sorted(sorted(p[0]) for p in duck.populations) == sorted(sorted(p[0]) for p in spark.populations)


@pytest.mark.parametrize("sql, rule, kind", [
    ("SELECT grp, COUNT(*) AS n FROM parity WHERE grp = 5 GROUP BY grp", "literal_type", "classic"),
    ("SELECT grp, COUNT(*) AS n FROM parity WHERE grp LIKE 'x%' AND day > 3 GROUP BY grp", "literal_type", "classic"),
    ("SELECT grp, COUNT(*) AS n FROM parity WHERE day = 'not a date' GROUP BY grp", "engine_rejected", "classic"),
    pytest.param("SELECT grp, COUNT(*) AS n FROM parity WHERE grp = 5 GROUP BY grp", "literal_type", "connect",
                 marks=pytest.mark.cluster_subset),
    pytest.param("SELECT grp, COUNT(*) AS n FROM parity WHERE day = 'not a date' GROUP BY grp", "engine_rejected",
                 "connect", marks=pytest.mark.cluster_subset),
], indirect=["kind"])
def test_refusals_match(world: Tables, sql: str, rule: str, kind: str) -> None:
    plan = plan_query(sql, world.lookup)
    for engine in ("duckdb", "spark"):
        with pytest.raises(QueryRefused) as e:
            run_query(plan, world.snapshots, engine=engine)
        assert e.value.details["rule"] == rule, engine
        assert "not a date" not in e.value.message and str(world.root) not in e.value.message


@BOTH
@pytest.mark.cluster_subset
def test_spark_time_limit_refuses(world: Tables, kind: str) -> None:
    plan = plan_query("SELECT r.industry, COUNT(*) AS n FROM registry r JOIN loans l ON r.uscc = l.uscc "
                      "GROUP BY r.industry", world.lookup)
    with pytest.raises(QueryRefused) as e:
        run_query(plan, world.snapshots, engine="spark", timeout_s=0.05)
    assert e.value.details["rule"] == "timeout"


@BOTH
@pytest.mark.cluster_subset
def test_spark_reads_the_pinned_version(world: Tables, tmp_path: Path, kind: str) -> None:
    """A later version exists; the engines read the pinned one (versionAsOf), and agree on it."""
    path = tmp_path / "parity"
    frame = parity_frame(60)
    write_table(path, frame, PARITY_TYPES)
    pinned = snapshot_of(path, "parity")
    write_table(path, frame, PARITY_TYPES, mode="append")
    plan = plan_query("SELECT flag, COUNT(*) AS n FROM parity_rows GROUP BY flag", world.lookup)
    snaps = {"parity_rows": dataclasses.replace(pinned, dataset="parity_rows")}
    duck, spark = engine_rows(plan, snaps, "duckdb"), engine_rows(plan, snaps, "spark")
    assert duck == spark and sum(r[1] for r in spark) == 60


@BOTH
def test_warm_views_never_serve_another_version(world: Tables, tmp_path: Path, kind: str) -> None:
    """The pinned version's view is kept warm across queries, keyed by version and files: a commit
    after the view was made does not leak into it, the new version gets its own view, and a table
    dropped and created again at the same path (version 0 again) is not served the old view."""
    import re
    import shutil

    from sandbox.gate import spark_views
    from sandbox.tables import storage

    path = tmp_path / "parity"
    write_table(path, parity_frame(60), PARITY_TYPES)
    plan = plan_query("SELECT flag, COUNT(*) AS n, SUM(qty) AS s FROM parity_rows GROUP BY flag", world.lookup)

    def rows(snap: Snapshot) -> list[list[Any]]:
        snaps = {"parity_rows": dataclasses.replace(snap, dataset="parity_rows")}
        duck, spark = engine_rows(plan, snaps, "duckdb"), engine_rows(plan, snaps, "spark")
        assert duck == spark
        return spark

    v0 = snapshot_of(path, "parity")
    first = rows(v0)
    names = set(spark_views.SNAPSHOTS.names())
    write_table(path, parity_frame(90), PARITY_TYPES, mode="append")  # commits while v0's view is warm
    assert rows(v0) == first and sum(r[1] for r in first) == 60
    assert set(spark_views.SNAPSHOTS.names()) == names, "the warm view was not reused"
    v1 = storage.pin_snapshot(path, "parity")
    assert v1.version == v0.version + 1 and sum(r[1] for r in rows(v1)) == 150
    # names come from a hash of the key, never from the dataset or its path
    assert all(re.fullmatch(r"__twh_s_[0-9a-f]{24}_[0-9a-f]{8}", n) for n in spark_views.SNAPSHOTS.names())

    shutil.rmtree(path)  # the same path, version 0 again, other rows
    write_table(path, parity_frame(30), PARITY_TYPES)
    again = snapshot_of(path, "parity")
    assert again.version == v0.version and sum(r[1] for r in rows(again)) == 30

    # a version that needs the Delta reader (deletion vectors, ...) is viewed through versionAsOf
    other = tmp_path / "delta"
    write_table(other, parity_frame(40), PARITY_TYPES)
    pinned = snapshot_of(other, "parity", needs_delta_reader=True)
    write_table(other, parity_frame(40), PARITY_TYPES, mode="append")
    assert sum(r[1] for r in rows(pinned)) == 40 and sum(r[1] for r in rows(pinned)) == 40


@pytest.mark.parametrize("kind", ["connect"], indirect=True)
def test_a_warm_query_over_connect_is_one_round_trip(world: Tables, tmp_path: Path, kind: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Over Connect a warm gated query sends one request: no eager ``spark.sql`` command (its own
    round trip and analysis) before the collect, and no conf writes when the conf is already right."""
    from sandbox.gate import spark_engine

    path = tmp_path / "parity"
    write_table(path, parity_frame(30), PARITY_TYPES)
    snaps = {"parity_rows": dataclasses.replace(snapshot_of(path, "parity"), dataset="parity_rows")}
    plan = plan_query("SELECT flag, COUNT(*) AS n FROM parity_rows GROUP BY flag", world.lookup)
    assert sum(r[1] for r in engine_rows(plan, snaps, "spark")) == 30  # warms the view
    client = spark_engine.session().client
    sent: list[str] = []
    for name in ("execute_command", "to_table", "_analyze", "config"):
        real = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _n=name, _r=real, **k: (sent.append(_n), _r(*a, **k))[1])
    assert sum(r[1] for r in engine_rows(plan, snaps, "spark")) == 30
    assert sent == ["config", "to_table"]  # the conf check (one read), then the query itself


@BOTH
def test_warm_views_are_bounded(world: Tables, tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An LRU: past its bound the least recently used view is dropped from the session's catalog."""
    from sandbox.gate import spark_engine, spark_views
    from sandbox.tables import storage

    spark_views.SNAPSHOTS.clear()
    monkeypatch.setattr(spark_views, "MAX_CACHED_SNAPSHOTS", 2)
    path = tmp_path / "parity"
    plan = plan_query("SELECT flag, COUNT(*) AS n FROM parity_rows GROUP BY flag", world.lookup)
    made: list[str] = []
    for i in range(4):
        write_table(path, parity_frame(10), PARITY_TYPES, mode="append" if i else "error")
        snap = dataclasses.replace(storage.pin_snapshot(path, "parity"), dataset="parity_rows")
        assert sum(r[1] for r in engine_rows(plan, {"parity_rows": snap}, "spark")) == 10 * (i + 1)
        made += [n for n in spark_views.SNAPSHOTS.names() if n not in made]
    assert len(spark_views.SNAPSHOTS) == 2 and len(made) == 4
    session = spark_engine.session()
    assert [session.catalog.tableExists(n) for n in made] == [False, False, True, True]


# --------------------------------------------------------------------------- dp, before noise


DP_COLUMNS = ("unit", "industry", "amount", "flag")


def _dp_policy(unit: str | None = "unit", **dp: Any) -> TableInfo:
    from policies import load_policy

    rules = {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]}, "budget": {"epsilon": 10, "delta": 1e-6},
             "epsilon_per_query": 0.5, "delta_per_query": 1e-7, "public_keys": {"industry": ["C", "F", "G", "K"]},
             **dp}
    return load_policy({"tenants": ["*"], "purposes": ["x"], "privacy_unit": unit, "release_mode": "dp", "dp": rules,
                        "columns": {"unit": "join_key", "industry": "dimension", "amount": "measure",
                                    "flag": "measure"}})


def _dp_table(path: Path, name: str, n: int, units: int, seed: int) -> Snapshot:
    import numpy as np
    from deltalake import write_deltalake

    from sandbox.tables import storage

    rng = np.random.default_rng(seed)
    amount = rng.lognormal(4, 1.5, n)
    write_deltalake(str(path), pa.table({
        "unit": [f"U{i}" for i in rng.integers(0, units, n)] + ["LONER"] * 9,
        "industry": list(np.array(list("CFG"))[rng.integers(0, 3, n)]) + ["Z"] * 9,
        "amount": [float(a) if i % 17 else None for i, a in enumerate(amount)] + [-3.0, None, 900.0] * 3,
        "flag": list(rng.integers(0, 2, n)) + [1] * 9,
    }))
    return storage.pin_snapshot(path, name)


DP_SHAPES = [
    "SELECT industry, COUNT(*) AS n, SUM(amount) AS s, AVG(amount) AS a, COUNT(flag) AS f FROM loans "
    "GROUP BY industry",  # public keys, one heavy-unit table
    "SELECT COUNT(*) AS n, AVG(amount) AS a FROM loans WHERE industry IN ('C', 'Z')",
    "SELECT a.industry, COUNT(*) AS n, SUM(b.amount) AS s FROM loans a JOIN other b ON a.unit = b.unit "
    "GROUP BY a.industry",  # two heavy-unit tables, weights multiplied
    "SELECT industry, COUNT(*) AS n, SUM(amount) AS s FROM rowlevel GROUP BY industry",  # no unit; selection
    "SELECT industry, MEDIAN(amount) AS m, COUNT(amount) AS k FROM loans GROUP BY industry",  # quantile bins
    "SELECT WIDTH_BUCKET(amount, 0, 400, 8) AS b, COUNT(*) AS n, SUM(amount) AS s FROM loans GROUP BY b",
    "SELECT FLOOR(amount / 50) * 50 AS band, industry, COUNT(*) AS n FROM loans GROUP BY band, industry",
]


@pytest.mark.parametrize("sql, kind", [(q, "classic") for q in DP_SHAPES]
                         + [pytest.param(DP_SHAPES[2], "connect", marks=pytest.mark.cluster_subset)],
                         indirect=["kind"])
def test_dp_contribution_bounding_matches_before_noise(world: Tables, tmp_path_factory: pytest.TempPathFactory,
                                                       sql: str, kind: str) -> None:
    root = tmp_path_factory.getbasetemp() / "dp_parity"
    if not root.exists():
        root.mkdir()
        _dp_table(root / "loans", "loans", 4_000, 400, 0)
        _dp_table(root / "other", "other", 2_000, 300, 1)
    from sandbox.tables import storage

    infos = {"loans": TableInfo("loans", _dp_policy(), DP_COLUMNS),
             "other": TableInfo("other", _dp_policy(max_rows_per_unit=3, bounds={"amount": [-10, 100]}), DP_COLUMNS),
             "rowlevel": TableInfo("rowlevel", _dp_policy(None, public_keys={}), DP_COLUMNS)}
    snaps = {"loans": storage.pin_snapshot(root / "loans", "loans"),
             "other": storage.pin_snapshot(root / "other", "other"),
             "rowlevel": storage.pin_snapshot(root / "other", "rowlevel")}
    plan = plan_query(sql, lambda n: infos[n])
    assert plan.release_mode == "dp"
    duck = engine_rows(plan, snaps, "duckdb")
    spark = engine_rows(plan, snaps, "spark")
    assert duck == spark, sql
    if plan.dp.heavy:
        assert any(isinstance(v, int) and v % 1024 for row in spark for v in row[len(plan.group_columns):]), \
            "no unit was down-weighted: the heavy-unit join did not bite"


def test_spark_sql_is_transpiled_not_duckdb(world: Tables) -> None:
    from sandbox.gate.spark_engine import transpile

    plan = plan_query("SELECT grp, AVG(qty) AS a FROM parity WHERE grp LIKE 'a\\%' GROUP BY grp ORDER BY grp",
                      world.lookup)
    sql = transpile(plan.engine_sql, {"parity": "__twh_x_0"}, {("parity", "qty")})
    assert "`__twh_x_0` AS `parity`" in sql and "ESCAPE '!'" in sql and "NULLS LAST" in sql
    assert "SORT_ARRAY(COLLECT_LIST(" in sql and "DECIMAL(38, 0)" in sql and " AS DOUBLE) / " in sql
    assert "'a\\\\%'" in sql  # Spark string literals take backslash escapes
