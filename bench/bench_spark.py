"""Spark (delta-spark) ÷ DuckDB on the same Delta snapshots, and Spark ingest ÷ streaming ingest.

* session start: a cold SparkSession with Delta (a fresh process: JVM + JARs) vs a DuckDB
  connection answering ``SELECT 1``;
* a tiny query (a selective filter on the smallest snapshot) and a GROUP BY (10,000 groups,
  COUNT/SUM/AVG) at each size: one delta-rs table, written once, whose versions hold 1M, 10M and
  50M rows; DuckDB scans the pinned version's Parquet files (the gate's fast path), Spark reads
  ``versionAsOf`` the same version — both engines see the same snapshot;
* ingest throughput: the same generated CSV landed by the streaming path (delta-rs) and by the
  Spark path (delta-spark), rows/s and MB/s, each into its own registered dataset.

The two engines are interleaved and medians reported; ratios are Spark ÷ DuckDB (above 1:
DuckDB is faster). ``python bench/run.py spark --spark-sizes 1000000,10000000,50000000``. The
generated table is kept under ``bench/out/spark-data`` so later runs skip generation.
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


def bench_spark(args: argparse.Namespace, tmp: Path) -> dict:
    import duckdb

    from sandbox.engines.spark import get_session
    from sandbox.tables import storage

    sizes = sorted(int(x) for x in str(getattr(args, "spark_sizes", None) or "1000000,10000000,50000000").split(","))
    path = HERE / "out" / "spark-data"
    t0 = time.perf_counter()
    versions = make_table(path, sizes)
    generate_s = time.perf_counter() - t0

    cold_spark_s = _cold_spark_start()
    duck_start = []
    for _ in range(5):
        t = time.perf_counter()
        with duckdb.connect() as con:
            con.execute("SELECT 1").fetchall()
        duck_start.append(time.perf_counter() - t)
    print(f"  session start: spark cold {cold_spark_s:.1f} s", file=sys.stderr, flush=True)
    spark = get_session()

    tiny = "SELECT COUNT(*), SUM(v) FROM t WHERE id < 100"
    group = "SELECT k, COUNT(*) AS n, SUM(v) AS s, AVG(v) AS a FROM t GROUP BY k"

    def duck(sql: str, version: int) -> list:
        files = storage.pin_snapshot(path, "bench", version).files
        src = "read_parquet([" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "])"
        with duckdb.connect() as con:
            return con.execute(sql.replace("FROM t", f"FROM {src}")).fetchall()

    def sparkq(sql: str, version: int) -> list:
        spark.read.format("delta").option("versionAsOf", version).load(str(path)).createOrReplaceTempView("t")
        return spark.sql(sql).collect()

    def timed(fn, *a) -> tuple[float, list]:
        t = time.perf_counter()
        res = fn(*a)
        return time.perf_counter() - t, res

    smallest = versions[sizes[0]]
    sparkq(tiny, smallest), duck(tiny, smallest)  # warm-up: Delta log, JIT, file cache
    tiny_d, tiny_s = [], []
    for _ in range(5):
        tiny_d.append(timed(duck, tiny, smallest)[0])
        tiny_s.append(timed(sparkq, tiny, smallest)[0])
    table = []
    for size in sizes:
        repeat = 3 if size <= 2_000_000 else 2 if size <= 20_000_000 else 1
        d, s = [], []
        for _ in range(repeat):
            td, rd = timed(duck, group, versions[size])
            ts, rs = timed(sparkq, group, versions[size])
            d.append(td)
            s.append(ts)
        assert len(rd) == len(rs) == GROUPS and sum(r[1] for r in rd) == sum(r[1] for r in rs) == size
        table.append({"rows": size, "duckdb_ms": _median_ms(d), "spark_ms": _median_ms(s),
                      "ratio_spark_over_duckdb": round(statistics.median(s) / statistics.median(d), 2),
                      "repeat": repeat})
        print(f"  group-by {size:,} rows: {table[-1]}", file=sys.stderr, flush=True)  # progress: 50M takes minutes
    ingest = _ingest(args, tmp)
    result = {
        "what": "Spark (delta-spark, local[*]) vs DuckDB on the same Delta snapshots; Spark ingest vs streaming",
        "cores": _cores(), "generate_s": round(generate_s, 1),
        "session_start_ms": {"spark_cold": round(cold_spark_s * 1000), "duckdb": _median_ms(duck_start)},
        "tiny_query_ms": {"duckdb": _median_ms(tiny_d), "spark": _median_ms(tiny_s),
                          "ratio_spark_over_duckdb": round(statistics.median(tiny_s) / statistics.median(tiny_d), 1)},
        "group_by": table, "ingest": ingest,
    }
    _print_table(result)
    return result


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def _print_table(r: dict) -> None:
    w = sys.stderr.write
    w(f"\nSpark vs DuckDB ({r['cores']} cores)                     DuckDB        Spark   Spark/DuckDB\n")
    s = r["session_start_ms"]
    w(f"  session start (cold)                      {s['duckdb']:>9.1f} ms {s['spark_cold']:>9} ms "
      f"{s['spark_cold'] / max(s['duckdb'], 1e-3):>10.0f}x\n")
    t = r["tiny_query_ms"]
    w(f"  tiny query                                {t['duckdb']:>9.1f} ms {t['spark']:>9.1f} ms "
      f"{t['ratio_spark_over_duckdb']:>10.1f}x\n")
    for g in r["group_by"]:
        w(f"  GROUP BY {GROUPS} groups, {g['rows']:>11,} rows  {g['duckdb_ms']:>9.1f} ms {g['spark_ms']:>9.1f} ms "
          f"{g['ratio_spark_over_duckdb']:>10.2f}x\n")
    i = r["ingest"]
    for label, k in (("streaming (delta-rs)", "streaming_delta_rs"), ("Spark (delta-spark)", "spark_delta_spark")):
        x = i[k]
        w(f"  ingest {i['file_mb']} MB / {i['rows']:,} rows, {label:<22} {x['seconds']:>7.1f} s  "
          f"{x['rows_per_s']:>9,} rows/s  {x['mb_per_s']:>6.1f} MB/s\n")
