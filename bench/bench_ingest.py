"""Ingest (connector + declared types + data contract + Delta commit) ÷ a plain ``write_deltalake``
of the same CSV (pyarrow's CSV reader with the column types given), in the same run, plus wall
time, rows/s, MB/s and the peak RSS of each, for one or more file sizes::

    python bench/run.py ingest --size 100M,1G        # the flatness curve (generated CSVs)
    python bench/run.py ingest --size 10G --ingest-via cli --no-baseline \\
        --ingest-csv /work/big/registry.csv            # `twh ingest` on a 10 GB file, progress bar on

The data is a generated government registry (``bench/govdata.py``: Chinese names and addresses,
codes kept as text, dates, amounts) with its manifest's expectations (one of them runs in Great
Expectations, the rest natively on Arrow). Each side runs in its own subprocess, so peak memory is
its own (``getrusage(RUSAGE_SELF).ru_maxrss``; with ``--ingest-via cli`` the ``twh`` process's,
through ``RUSAGE_CHILDREN``). Peak RSS should not grow with the file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from govdata import MANIFEST, parse_size, write_registry_csv  # noqa: E402

_ARROW_TYPES = {"string": "string", "date": "date32", "float64": "float64", "int64": "int64"}


def _warehouse(home: Path):  # noqa: ANN202
    from sandbox.datasets.manifest import parse_manifest
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    wh = Warehouse.open(Settings(home=home))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    wh.users.add(admin, "steward", "steward", "bank_a")
    steward = wh.users.principal("steward")
    wh.datasets.register(steward, parse_manifest(MANIFEST))
    return wh, steward


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def _child(mode: str, csv: str, home: str) -> None:
    sys.path.insert(0, str(ROOT))
    if mode == "plain":
        import pyarrow as pa
        import pyarrow.csv as pa_csv
        from deltalake import write_deltalake

        types = {c["name"]: getattr(pa, _ARROW_TYPES[c["type"]])() for c in MANIFEST["schema"]}
        t0, c0 = time.perf_counter(), _cpu()
        reader = pa_csv.open_csv(csv, read_options=pa_csv.ReadOptions(block_size=4 << 20),
                                 convert_options=pa_csv.ConvertOptions(column_types=types))
        write_deltalake(f"{home}/plain", reader, mode="append", target_file_size=64 << 20)
        rows = None
    elif mode == "cli":  # the real command, progress bar included (on a terminal)
        _warehouse(Path(home) / "wh")
        env = {**os.environ, "TWH_HOME": str(Path(home) / "wh"), "TWH_USER": "steward"}
        t0 = time.perf_counter()
        # not --json: that turns the bar off; the bar goes to stderr, the summary line to stdout
        out = subprocess.run([str(Path(sys.executable).with_name("twh")), "ingest", "bench_registry", csv],
                             env=env, stdout=subprocess.PIPE, text=True, check=True)
        rows = int(re.search(r"\(([0-9]+) rows", out.stdout).group(1))  # type: ignore[union-attr]
        # the CLI's start-up (imports, Great Expectations) is inside the time: it is the real command
        seconds = time.perf_counter() - t0
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(json.dumps({"seconds": seconds, "rows": rows, "cpu_s": used.ru_utime + used.ru_stime,
                          "peak_rss_mb": used.ru_maxrss / 1024}))
        return
    else:
        wh, steward = _warehouse(Path(home) / "wh")
        from connectors import contracts  # warm Great Expectations outside the timed part

        contracts._gx()
        t0, c0 = time.perf_counter(), _cpu()
        rows = wh.ingest.ingest(steward, "bench_registry", Path(csv))["rows"]
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "rows": rows, "cpu_s": _cpu() - c0,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(mode: str, csv: Path, home: Path) -> dict:
    home.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, __file__, mode, str(csv), str(home)], stdout=subprocess.PIPE, text=True,
                         check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _one(args: argparse.Namespace, tmp: Path, size: str) -> dict:
    given = getattr(args, "ingest_csv", None)
    csv = Path(given) if given else tmp / f"registry-{size}.csv"
    rows = None
    if not csv.exists():
        rows = write_registry_csv(csv, size)
    via = getattr(args, "ingest_via", "api")
    ours = _run("cli" if via == "cli" else "ingest", csv, tmp / f"ours-{size}")
    plain = None if getattr(args, "no_baseline", False) else _run("plain", csv, tmp / f"plain-{size}")
    assert rows is None or ours["rows"] == rows, (ours, rows)
    mb = csv.stat().st_size / 1e6
    parts = [f.stat().st_size for f in (tmp / f"ours-{size}").rglob("*.parquet")]
    out = {"name": "ingest", "via": via, "size": size, "file_mb": round(mb, 1), "rows": ours["rows"],
           "ingest_s": round(ours["seconds"], 1), "ingest_rows_per_s": round(ours["rows"] / ours["seconds"]),
           "ingest_mb_per_s": round(mb / ours["seconds"], 1), "peak_rss_mb": {"ingest": round(ours["peak_rss_mb"])},
           "parquet_files": len(parts), "parquet_mb": round(sum(parts) / 1e6, 1)}
    if plain is not None:
        # wall time is the goal; CPU time is the steadier figure on a shared machine
        out.update({"plain_write_deltalake_s": round(plain["seconds"], 1),
                    "throughput_ratio_ingest_over_plain": round(plain["seconds"] / ours["seconds"], 2),
                    "cpu_s": {"ingest": round(ours["cpu_s"], 1), "plain": round(plain["cpu_s"], 1)},
                    "cpu_ratio_ingest_over_plain": round(plain["cpu_s"] / ours["cpu_s"], 2)})
        out["peak_rss_mb"]["plain"] = round(plain["peak_rss_mb"])
    out.setdefault("cpu_s", {"ingest": round(ours["cpu_s"], 1)})
    if not given:
        csv.unlink()
    return out


def bench_ingest(args: argparse.Namespace, tmp: Path) -> dict:
    """One result per size in ``--size`` (comma-separated, e.g. ``100M,1G``); the last is returned
    whole, the others under ``curve`` (the flatness of peak RSS over file size)."""
    sizes = str(getattr(args, "size", None) or f"{getattr(args, 'ingest_mb', None) or 100}M").split(",")
    for s in sizes:
        parse_size(s)  # refuse a bad size before generating anything
    results = []
    for s in sizes:
        results.append(_one(args, tmp, s))
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    last = dict(results[-1])
    if len(results) > 1:
        keys = ("size", "file_mb", "ingest_s", "ingest_mb_per_s", "peak_rss_mb", "throughput_ratio_ingest_over_plain",
                "cpu_ratio_ingest_over_plain")
        last["curve"] = [{k: r[k] for k in keys if k in r} for r in results]
    return last


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], sys.argv[3])
