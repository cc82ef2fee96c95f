"""Ingest (connector + declared types + Great Expectations per batch + Delta commit) ÷ a plain
``write_deltalake`` of the same CSV (pyarrow's CSV reader with the column types given), in the
same run, plus the peak RSS of each.

Each side runs in its own subprocess (so peak memory is its own: the child reports
``getrusage(RUSAGE_SELF).ru_maxrss`` and the parent cross-checks ``RUSAGE_CHILDREN``). Run with
``python bench/run.py ingest --ingest-mb 1000``; peak RSS should not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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
    """A generated CSV of about ``mb`` MiB; returns its row count."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(0)
    rows, chunk = 0, 500_000
    with pa_csv.CSVWriter(str(path), pa.schema([("uscc", pa.string()), ("industry", pa.string()),
                                                ("day", pa.date32()), ("amount", pa.float64()),
                                                ("term", pa.int64())])) as w:
        while path.stat().st_size < mb * (1 << 20) if path.exists() else True:
            ids = rng.integers(0, 10**17, chunk)
            t = pa.table({"uscc": pa.array([f"9{i:017d}" for i in ids]),
                          "industry": pa.array(np.array(list("CEFGHIM"))[rng.integers(0, 7, chunk)]),
                          "day": pa.array(rng.integers(18000, 20000, chunk).astype("int32")).cast(pa.date32()),
                          "amount": pa.array(np.round(rng.lognormal(8, 1, chunk), 2)),
                          "term": pa.array(rng.integers(1, 60, chunk))})
            w.write_table(t)
            rows += chunk
    return rows


def _child(mode: str, csv: str, home: str) -> None:
    sys.path.insert(0, str(ROOT))
    t0 = time.perf_counter()
    if mode == "plain":
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        from deltalake import write_deltalake

        types = {"uscc": pa.string(), "industry": pa.string(), "day": pa.date32(), "amount": pa.float64(),
                 "term": pa.int64()}
        reader = pa_csv.open_csv(csv, read_options=pa_csv.ReadOptions(block_size=4 << 20),
                                 convert_options=pa_csv.ConvertOptions(column_types=types))
        write_deltalake(f"{home}/plain", reader, mode="append", target_file_size=64 << 20)
        rows = None
    else:
        from sandbox.manifest import parse_manifest
        from sandbox.settings import Settings
        from sandbox.warehouse import Warehouse

        wh = Warehouse.open(Settings(home=Path(home) / "wh"))
        wh.users.bootstrap_admin()
        admin = wh.users.principal("admin")
        wh.users.add(admin, "steward", "steward", "bank_a")
        steward = wh.users.principal("steward")
        wh.datasets.register(steward, parse_manifest(MANIFEST))
        from connectors import contracts  # warm Great Expectations outside the timed part

        contracts._gx()
        t0 = time.perf_counter()
        rows = wh.ingest.ingest(steward, "bench_loans", Path(csv))["rows"]
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": rows,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(mode: str, csv: Path, home: Path) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, __file__, mode, str(csv), str(home)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["children_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result


def bench_ingest(args: argparse.Namespace, tmp: Path) -> dict:
    mb = getattr(args, "ingest_mb", None) or 100
    csv = tmp / "loans.csv"
    rows = make_csv(csv, mb)
    plain = _run("plain", csv, tmp / "plain")
    ours = _run("ingest", csv, tmp / "ours")
    assert ours["rows"] == rows, (ours, rows)
    size = csv.stat().st_size / (1 << 20)
    return {"name": "ingest", "file_mb": round(size, 1), "rows": rows,
            "plain_write_deltalake_s": round(plain["seconds"], 2), "ingest_s": round(ours["seconds"], 2),
            "ratio_ingest_over_plain": round(ours["seconds"] / plain["seconds"], 2),
            "throughput_ratio_plain_over_ingest": round(plain["seconds"] / ours["seconds"], 2),
            "ingest_mb_per_s": round(size / ours["seconds"], 1),
            "peak_rss_mb": {"plain": round(plain["peak_rss_mb"]), "ingest": round(ours["peak_rss_mb"])}}


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])
