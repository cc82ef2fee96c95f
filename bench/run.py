"""Benchmark runner: each benchmark prints one JSON line with its ratio to a same-run baseline.

    python bench/run.py                      # all, default sizes
    python bench/run.py sandbox --repeat 20  # one
    python bench/run.py gate --rows 1000000
    python bench/run.py ingest --size 100M,1G  # ingest ÷ plain write_deltalake, peak RSS per size
    python bench/run.py inference            # batch scores ÷ plain DuckDB + NumPy; verify p95 over the service

Machines here are noisy: every ratio compares against a baseline measured in the same run, with
the two interleaved, and medians are reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_differencing import bench_differencing  # noqa: E402
from bench_dp import bench_dp  # noqa: E402
from bench_gate import bench_gate  # noqa: E402
from bench_inference import bench_inference  # noqa: E402
from bench_ingest import bench_ingest  # noqa: E402
from bench_reconstruction import bench_reconstruction  # noqa: E402
from bench_sandbox import bench_sandbox  # noqa: E402
from bench_spark import bench_spark  # noqa: E402
from bench_training import bench_training  # noqa: E402

BENCHMARKS: dict[str, Callable[[argparse.Namespace, Path], dict]] = {
    "sandbox": bench_sandbox,
    "training": bench_training,
    "gate": bench_gate,
    "differencing": bench_differencing,
    "dp": bench_dp,
    "ingest": bench_ingest,
    "spark": bench_spark,
    "reconstruction": bench_reconstruction,
    "inference": bench_inference,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default all)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--units", type=int, default=1_000_000, help="privacy units (differencing)")
    ap.add_argument("--ingest-mb", type=int, default=100, help="size of the generated CSV for `ingest`")
    ap.add_argument("--spark-sizes", default="1000000,10000000,50000000", help="row counts for `spark` (comma list)")
    ap.add_argument("--spark-ingest-mb", type=int, default=100, help="size of the generated CSV for `spark` ingest")
    ap.add_argument("--size", help="`ingest`: CSV size(s), e.g. 10G or 100M,1G (overrides --ingest-mb)")
    ap.add_argument("--ingest-csv", help="`ingest`: an existing generated CSV (bench/govdata.py) to load instead")
    ap.add_argument("--ingest-via", choices=["api", "cli"], default="api", help="`ingest`: call the service or run "
                    "`twh ingest` (progress bar on stderr)")
    ap.add_argument("--no-baseline", action="store_true", help="`ingest`: skip the plain write_deltalake run")
    ap.add_argument("--pools", type=int, default=20, help="`reconstruction`: attacked pools of 40 firms per point")
    ap.add_argument("--firms", type=int, default=120_000, help="`inference`: demo enterprises generated")
    ap.add_argument("--subjects", type=int, default=100_000, help="`inference`: authorised subjects in the batch")
    ap.add_argument("--verify-calls", type=int, default=300, help="`inference`: single verifications over the service")
    ap.add_argument("--out", type=Path, default=HERE / "out" / "latest.jsonl")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="twh-bench-") as tmp:
        for name in args.names or list(BENCHMARKS):
            res = {"benchmark": name, **BENCHMARKS[name](args, Path(tmp))}
            print(json.dumps(res), flush=True)
            results.append(res)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
