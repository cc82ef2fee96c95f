"""Spark (delta-spark) ÷ DuckDB on the same Delta snapshots, and Spark ingest ÷ streaming ingest.

Four ways to answer a GROUP BY (10,000 groups, COUNT/SUM/AVG) on one delta-rs table whose versions
hold each size (default 10M, 50M, 100M rows; ``--spark-sizes``): DuckDB over the pinned version's
Parquet files (the gate's fast path); a classic SparkSession ``local[*]`` in this process; a classic
driver on a 2-worker standalone cluster (master and workers separate JVMs on loopback, a child
process: one SparkContext per process); and Spark Connect — a long-lived server on that cluster —
warm. Every engine reads the same pinned version: DuckDB its Parquet files, Spark the gate's warm view
of it (:mod:`sandbox.gate.spark_views`: made on a version's first query, reused after).

* cold fixed costs: a fresh process's first answer (DuckDB; a SparkSession's JVM; a driver joining
  the cluster; the Connect server's start, once per deployment; a fresh Connect client process);
* warm fixed costs: a 100-row filter on the smallest version, the gate's way (the version's warm view)
  — the figure ``spark.connect_warm_fixed_s`` has the goal ≤ 0.5 s; ``spark.connect_warm_uncached_s``
  reads the Delta table at ``versionAsOf`` on every query instead;
* the crossover (where Spark's fitted line passes DuckDB's) on this box, and an extrapolation to
  clusters, labelled as such (``notes``);
* with ``--spark-ingest-mb N`` (N > 0), ingest throughput of delta-rs vs delta-spark on a CSV.

DuckDB, local and Connect are interleaved (``--repeat``, default 3); medians reported. The generated
table is kept under ``bench/out/spark-data`` so later runs skip generation.
``python bench/run.py spark --spark-sizes 1000000,2000000 --repeat 3 --spark-ingest-mb 0`` is a quick run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
GROUPS = 10_000
CHUNK = 2_000_000


def _chunk(start: int, n: int, rng: np.random.Generator) -> pa.RecordBatch:
    return pa.record_batch({
        "id": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "k": pa.array(rng.integers(0, GROUPS, n)),
        "g": pa.array(np.array(list("CEFGHIM"))[rng.integers(0, 7, n)]),
        "v": pa.array(rng.lognormal(4, 1, n)),
    })


def make_table(path: Path, sizes: list[int]) -> dict[int, int]:
    """One Delta table whose version i holds sizes[i] rows (delta-rs appends); {size: version}."""
    from deltalake import DeltaTable, write_deltalake

    marker = path / "_twh_sizes.json"
    if marker.exists() and json.loads(marker.read_text()) == sizes:
        return {n: i for i, n in enumerate(sizes)}
    import shutil

    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(7)
    done = 0
    for size in sizes:
        schema = _chunk(0, 1, rng).schema

        def batches(lo: int = done, hi: int = size):
            for s in range(lo, hi, CHUNK):
                yield _chunk(s, min(CHUNK, hi - s), rng)

        write_deltalake(str(path), pa.RecordBatchReader.from_batches(schema, batches()), mode="append",
                        target_file_size=128 << 20)
        done = size
    assert DeltaTable(str(path)).version() == len(sizes) - 1
    marker.write_text(json.dumps(sizes))
    return {n: i for i, n in enumerate(sizes)}


def _median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 1)


def _cold_spark_start() -> float:
    code = ("import sys, time; sys.path.insert(0, %r); t = time.perf_counter(); "
            "from sandbox.engines.spark import get_session; s = get_session(); s.sql('SELECT 1').collect(); "
            "print(time.perf_counter() - t)") % str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


MANIFEST = {
    "name": "bench_loans", "provider_kind": "market", "title": "bench", "stewards": ["steward"],
    "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
               {"name": "industry", "type": "string", "role": "dimension", "categories": list("CEFGHIM")},
               {"name": "day", "type": "date", "role": "dimension"},
               {"name": "amount", "type": "float64", "role": "measure", "min": 0},
               {"name": "term", "type": "int64", "role": "measure"}],
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "industry", "value_set": list("CEFGHIM")}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 10}},
}


def make_csv(path: Path, mb: int) -> int:
    """A generated loans CSV of about ``mb`` MiB; returns its row count."""
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(0)
    rows, chunk = 0, 250_000
    schema = pa.schema([("uscc", pa.string()), ("industry", pa.string()), ("day", pa.date32()),
                        ("amount", pa.float64()), ("term", pa.int64())])
    with pa_csv.CSVWriter(str(path), schema) as w:
        while not path.exists() or path.stat().st_size < mb * (1 << 20):
            ids = rng.integers(0, 10**17, chunk)
            w.write_table(pa.table({
                "uscc": pa.array([f"9{i:017d}" for i in ids]),
                "industry": pa.array(np.array(list("CEFGHIM"))[rng.integers(0, 7, chunk)]),
                "day": pa.array(rng.integers(18000, 20000, chunk).astype("int32")).cast(pa.date32()),
                "amount": pa.array(np.round(rng.lognormal(8, 1, chunk), 2)),
                "term": pa.array(rng.integers(1, 60, chunk))}, schema=schema))
            rows += chunk
    return rows


def _ingest(args: argparse.Namespace, tmp: Path) -> dict:
    from sandbox.datasets.manifest import parse_manifest
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    mb = getattr(args, "spark_ingest_mb", None) or 100
    csv = tmp / "spark-loans.csv"
    rows = make_csv(csv, mb)
    size_mb = csv.stat().st_size / (1 << 20)
    wh = Warehouse.open(Settings(home=tmp / "spark-wh", engine="spark"))
    try:
        wh.users.bootstrap_admin()
        wh.users.add(wh.users.principal("admin"), "steward", "steward", "bank_a")
        steward = wh.users.principal("steward")
        for name in ("bench_rs", "bench_spark"):
            wh.datasets.register(steward, parse_manifest({**MANIFEST, "name": name}))
        from connectors import contracts

        contracts._gx()  # warm Great Expectations outside the timed part (as bench_ingest does)
        out = {}
        for name, engine in (("bench_rs", "duckdb"), ("bench_spark", "spark")):
            t0 = time.perf_counter()
            r = wh.ingest.ingest(steward, name, csv, engine=engine)
            seconds = time.perf_counter() - t0
            assert r["rows"] == rows, (r, rows)
            out[engine] = {"seconds": round(seconds, 2), "rows_per_s": round(rows / seconds),
                           "mb_per_s": round(size_mb / seconds, 1)}
    finally:
        wh.close()
    return {"file_mb": round(size_mb, 1), "rows": rows, "streaming_delta_rs": out["duckdb"],
            "spark_delta_spark": out["spark"],
            "ratio_spark_over_streaming_s": round(out["spark"]["seconds"] / out["duckdb"]["seconds"], 2)}


#: the child that times the classic driver on the standalone cluster (one SparkContext per process:
#: this process's is local[*]); prints one JSON line {"tiny": [s...], "group": {size: [s...]}}
_CLUSTER_CHILD = """
import json, os, sys, time
sys.path.insert(0, {root!r})
from sandbox.engines.spark import get_session
conf = json.loads(os.environ["BENCH_DRIVER_CONF"])
t = time.perf_counter()
spark = get_session(os.environ["BENCH_MASTER"], conf, auth_secret=os.environ["BENCH_SECRET"])
spark.sql("SELECT 1").collect()
cold = time.perf_counter() - t
from sandbox.gate import spark_views
from sandbox.tables import storage
snaps = {{}}
def q(sql, v):  # the gate's way: the pinned version's warm view (bench_spark.on)
    snap = snaps.setdefault(v, storage.pin_snapshot({path!r}, "bench", v))
    view = spark_views.snapshot_view(spark, snap)
    try:
        return spark.sql(sql.replace("FROM t", "FROM " + view.name)).collect()
    finally:
        spark_views.SNAPSHOTS.release(view)
def timed(sql, v):
    t = time.perf_counter(); q(sql, v); return time.perf_counter() - t
versions = {versions!r}
q({tiny!r}, versions[0][1])
out = {{"cold": cold, "tiny": [timed({tiny!r}, versions[0][1]) for _ in range({repeat})], "group": {{}}}}
for size, v in versions:
    q({group!r}, v) if size == versions[0][0] else None
    out["group"][str(size)] = [timed({group!r}, v) for _ in range({repeat})]
print(json.dumps(out))
"""


def _linear(xs: list[int], ys: list[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b·x`` (fixed cost a in s, per-row cost b in s/row)."""
    b, a = (np.polyfit(np.array(xs, dtype=float), np.array(ys), 1) if len(xs) > 1 else (ys[0] / xs[0], 0.0))
    return float(a), float(b)


def _crossover(sizes: list[int], duck: list[float], spark: list[float], cores: int, workers: int) -> list[str]:
    a_d, b_d = _linear(sizes, duck)
    a_s, b_s = _linear(sizes, spark)
    notes = [f"measured on this box ({cores} cores): DuckDB ≈ {a_d * 1000:.0f} ms + {b_d * 1e9:.1f} ns/row, "
             f"Spark local ≈ {a_s * 1000:.0f} ms + {b_s * 1e9:.1f} ns/row (least squares over {len(sizes)} sizes)"]
    if b_s <= 0 or b_d <= 0:  # small sizes on a loaded box: the fixed costs and their noise dominate
        notes.append("no crossover estimate: the per-row costs could not be fitted at these sizes (times are "
                     "dominated by fixed costs and load); run the default sizes (10M, 50M, 100M)")
        return notes
    if b_s < b_d and a_s > a_d:
        notes.append(f"crossover on this box: Spark local beats DuckDB above ≈ {(a_s - a_d) / (b_d - b_s):,.0f} rows")
    else:
        notes.append("no crossover on this box: Spark's per-row cost is not below DuckDB's here")
    # EXTRAPOLATION, not a measurement: Spark's per-row cost divided by the executor cores of a cluster
    # (perfect scaling, no shuffle or network cost), DuckDB's fixed at this box's
    for total in (cores * workers, 64, 256):
        b_c = b_s * cores / total
        where = (f"above ≈ {(a_s - a_d) / (b_d - b_c):,.0f} rows" if b_c < b_d and a_s > a_d
                 else "at every size" if b_c < b_d else "at no size")
        notes.append(f"extrapolation (assumes per-row cost scales with executor cores; not measured): a cluster of "
                     f"{total} executor cores would beat DuckDB on this box {where}")
    return notes


def bench_spark(args: argparse.Namespace, tmp: Path) -> dict:
    """GROUP BY at each size on DuckDB, Spark local[*], a 2-worker standalone cluster (classic driver)
    and Spark Connect (a long-lived server on that cluster, warm); cold and warm fixed costs."""
    import os

    import duckdb
    from timing import figure, interleaved_many

    from sandbox.engines.spark import get_remote_session, get_session, query_arrow, query_frame, stop_remote_sessions
    from sandbox.engines.spark_cluster import ConnectServer, StandaloneCluster
    from sandbox.gate import spark_engine, spark_views
    from sandbox.tables import storage

    sizes = sorted(int(x) for x in str(getattr(args, "spark_sizes", None) or "10000000,50000000,100000000")
                   .split(","))
    repeat = getattr(args, "repeat", None) or 3
    path = HERE / "out" / "spark-data"
    t0 = time.perf_counter()
    versions = make_table(path, sizes)
    generate_s = time.perf_counter() - t0
    cores = _cores()

    tiny = "SELECT COUNT(*) AS n, SUM(v) AS s FROM t WHERE id < 100"
    group = "SELECT k, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS a FROM t GROUP BY k"

    def duck(sql: str, version: int) -> list:
        files = storage.pin_snapshot(path, "bench", version).files
        src = "read_parquet([" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "])"
        with duckdb.connect() as con:
            return con.execute(sql.replace("FROM t", f"FROM {src}")).fetchall()

    snaps = {v: storage.pin_snapshot(path, "bench", v) for v in versions.values()}

    def on(session):  # noqa: ANN001, ANN202
        """The gate's way (sandbox.gate.spark_engine): its conf check, then the pinned version's warm
        view (made on the first query of a version, spark_views), then the query."""
        def q(sql: str, version: int) -> list:
            spark_engine._require_conf(session)
            view = spark_views.snapshot_view(session, snaps[version])
            try:
                table = query_arrow(session, sql.replace("FROM t", f"FROM {view.name}"))
                return list(zip(*(c.to_pylist() for c in table.columns)))
            finally:
                spark_views.SNAPSHOTS.release(view)
        return q

    def uncached(session):  # noqa: ANN001, ANN202
        """The Delta read at versionAsOf on every query (the engine's way before the warm views)."""
        def q(sql: str, version: int) -> list:
            session.read.format("delta").option("versionAsOf", version).load(str(path)).createOrReplaceTempView("t")
            return session.sql(sql).collect()
        return q

    # -- cold fixed costs: a fresh process's first answer ---------------------------------------
    duck_cold = []
    for _ in range(5):
        t = time.perf_counter()
        with duckdb.connect() as con:
            con.execute("SELECT 1").fetchall()
        duck_cold.append(time.perf_counter() - t)
    local_cold = _cold_spark_start()
    print(f"  cold: spark local session {local_cold:.1f} s", file=sys.stderr, flush=True)

    cluster = StandaloneCluster.start(tmp / "cluster", workers=2, cores=2, memory="2g")
    server = None
    try:
        t = time.perf_counter()
        server = ConnectServer.start(tmp / "connect", master=cluster.master_url, conf=cluster.driver_conf(),
                                     auth_secret=cluster.auth_secret)
        connect_server_cold = time.perf_counter() - t
        connect_client_cold = []
        for _ in range(3):  # a fresh client process: Python + pyspark.connect import + the first answer
            code = ("import sys, time; sys.path.insert(0, %r); t = time.perf_counter(); "
                    "from sandbox.engines.spark import get_remote_session; "
                    "get_remote_session(%r, %r).sql('SELECT 1').collect(); print(time.perf_counter() - t)"
                    ) % (str(ROOT), server.url, server.token)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
            connect_client_cold.append(float(out.stdout.strip().splitlines()[-1]))
        print(f"  cold: connect server {connect_server_cold:.1f} s, client {statistics.median(connect_client_cold):.2f} s",
              file=sys.stderr, flush=True)

        # -- the classic driver on the cluster, in a child (one SparkContext per process) ----------
        vlist = [(n, versions[n]) for n in sizes]
        env = {**os.environ, "BENCH_MASTER": cluster.master_url, "BENCH_SECRET": cluster.auth_secret,
               "BENCH_DRIVER_CONF": json.dumps(cluster.driver_conf())}
        child = subprocess.run([sys.executable, "-c", _CLUSTER_CHILD.format(
            root=str(ROOT), path=str(path), versions=vlist, tiny=tiny, group=group, repeat=repeat)],
            capture_output=True, text=True, cwd=ROOT, env=env)
        if child.returncode != 0:
            raise RuntimeError("the cluster driver failed: " + child.stderr[-3000:])
        on_cluster = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"  cluster (classic driver): {on_cluster['group']}", file=sys.stderr, flush=True)

        # -- DuckDB, Spark local and Connect, interleaved in this process ---------------------------
        local, remote = on(get_session()), on(get_remote_session(server.url, server.token))
        smallest = versions[sizes[0]]
        connect = get_remote_session(server.url, server.token)
        remote_uncached = uncached(connect)
        warm = interleaved_many({"duckdb": lambda: duck(tiny, smallest), "local": lambda: local(tiny, smallest),
                                 "connect": lambda: remote(tiny, smallest),
                                 "connect_uncached": lambda: remote_uncached(tiny, smallest),
                                 "connect_rpc": lambda: query_frame(connect, "SELECT 1").collect()}, max(repeat, 5))
        rows = []
        group_t: dict[str, dict[int, list[float]]] = {"duckdb": {}, "local": {}, "connect": {}}
        for size in sizes:
            v = versions[size]
            res = {"duckdb": duck(group, v), "local": local(group, v), "connect": remote(group, v)}
            assert all(len(r) == GROUPS and sum(x[1] for x in r) == size for r in res.values())
            t = interleaved_many({"duckdb": lambda v=v: duck(group, v), "local": lambda v=v: local(group, v),
                                  "connect": lambda v=v: remote(group, v)}, repeat, warmup=0)
            for arm, xs in t.items():
                group_t[arm][size] = xs
            cl = on_cluster["group"][str(size)]
            rows.append([size, _median_ms(t["duckdb"]), _median_ms(t["local"]), _median_ms(cl),
                         _median_ms(t["connect"])])
            print(f"  group-by {size:,} rows (ms): duckdb/local/cluster/connect {rows[-1][1:]}", file=sys.stderr,
                  flush=True)
    finally:
        stop_remote_sessions()
        if server is not None:
            server.stop()
        cluster.stop()

    figures = [
        figure("spark.connect_warm_fixed_s", "warm query over Connect fixed cost: a 100-row filter on the smallest "
               "version the gate's way (conf check, the pinned version's warm view, plan, collect) through "
               "a long-lived Connect server", warm["connect"], unit="s", goal="<= 0.5",
               baseline=f"DuckDB {_median_ms(warm['duckdb'])} ms"),
        figure("spark.connect_warm_uncached_s", "the same query over Connect reading the Delta table at versionAsOf "
               "on every query (log replay, listing, analysis: the engine's way before its warm views)",
               warm["connect_uncached"], unit="s"),
        figure("spark.connect_warm_rpc_s", "warm round trip over Connect: SELECT 1 (no table): the part of the "
               "fixed cost that is the Connect protocol and planning, not the Delta read", warm["connect_rpc"], unit="s"),
        figure("spark.local_warm_fixed_s", "warm query fixed cost, classic SparkSession local[*] (same query)",
               warm["local"], unit="s"),
        figure("spark.cluster_warm_fixed_s", "warm query fixed cost, classic driver on the 2-worker cluster",
               on_cluster["tiny"], unit="s"),
        figure("spark.duckdb_warm_fixed_s", "warm query fixed cost, DuckDB over the pinned Parquet files",
               warm["duckdb"], unit="s", digits=4),
        figure("spark.local_cold_s", "cold fixed cost, Spark local: a fresh process's SparkSession with Delta "
               "and its first answer (JVM start)", [local_cold], unit="s"),
        figure("spark.cluster_cold_s", "cold fixed cost, classic driver joining the 2-worker cluster (JVM + "
               "executors) and its first answer", [on_cluster["cold"]], unit="s"),
        figure("spark.connect_server_cold_s", "cold fixed cost, starting the Spark Connect server (once per "
               "deployment, not per query)", [connect_server_cold], unit="s"),
        figure("spark.connect_client_cold_s", "cold fixed cost, a fresh client process's first answer over "
               "Connect (no JVM in the client)", connect_client_cold, unit="s"),
        figure("spark.duckdb_cold_s", "cold fixed cost, a DuckDB connection's first answer", duck_cold, unit="s",
               digits=5),
    ]
    for size in sizes:
        figures.append(figure(f"spark.group_by_{size // 1_000_000}m.local_over_duckdb",
                              f"GROUP BY {GROUPS:,} groups over {size:,} rows: Spark local ÷ DuckDB (per pair)",
                              [a / b for a, b in zip(group_t["local"][size], group_t["duckdb"][size], strict=True)],
                              unit="×", baseline=f"DuckDB {_median_ms(group_t['duckdb'][size])} ms"))
        figures.append(figure(f"spark.group_by_{size // 1_000_000}m.connect_over_duckdb",
                              f"GROUP BY over {size:,} rows: Spark Connect on the 2-worker cluster ÷ DuckDB",
                              [a / b for a, b in zip(group_t["connect"][size], group_t["duckdb"][size], strict=True)],
                              unit="×", baseline=f"DuckDB {_median_ms(group_t['duckdb'][size])} ms"))
    notes = _crossover(sizes, [statistics.median(group_t["duckdb"][n]) for n in sizes],
                       [statistics.median(group_t["local"][n]) for n in sizes], cores, workers=2)
    ingest_mb = getattr(args, "spark_ingest_mb", None)
    result = {
        "figures": figures, "notes": notes,
        "what": "GROUP BY on the same Delta snapshots: DuckDB, Spark local[*], a 2-worker standalone cluster "
                "(classic driver) and Spark Connect on it (warm); cold and warm fixed costs",
        "cores": cores, "generate_s": round(generate_s, 1), "repeat": repeat,
        "table": {"title": f"GROUP BY {GROUPS:,} groups, median ms ({cores} cores, 2 workers × 2 cores on loopback)",
                  "columns": ["rows", "DuckDB", "Spark local", "cluster (classic)", "Connect (cluster, warm)"],
                  "rows": rows},
    }
    if ingest_mb:  # Spark ingest ÷ streaming ingest (--spark-ingest-mb 0 skips it)
        result["ingest"] = _ingest(args, tmp)
    for fig in figures:
        print(f"  {fig['id']}: {fig['value']} {fig['unit']}" + (f" (goal {fig['goal']})" if fig["goal"] else ""),
              file=sys.stderr)
    for note in notes:
        print(f"  {note}", file=sys.stderr)
    return result


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
