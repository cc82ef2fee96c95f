"""Benchmark runner: every figure is a ratio (or difference) against a baseline run in the same run,
interleaved, with its spread; each run's raw numbers go to ``bench/out/<name>-<timestamp>.json``.

    python bench/run.py                                  # the default set (what `make bench` runs)
    python bench/run.py sandbox --repeat 30              # one benchmark
    python bench/run.py gate --rows 10000000 --repeat 7  # the sdc gate at 10M rows
    python bench/run.py ingest --size 1G                 # ingest ÷ plain write_deltalake on a 1 GB CSV
    python bench/run.py --results bench/RESULTS.md       # run the default set, then rewrite the table
    python bench/run.py --results bench/RESULTS.md --no-run   # only rewrite it from the latest JSON
    python bench/run.py inference                        # batch scores ÷ plain DuckDB + NumPy; verify p95

``bench/RESULTS.md`` is written by ``--results`` from the newest JSON of each benchmark in
``bench/out/``: the command, the machine (cores, memory, CPU model), the load average before and
after, and for each figure its value, goal, spread and baseline. Nobody edits it by hand.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from timing import loadavg, machine, speed_probe  # noqa: E402

#: name -> (module, function); imported when run, so one benchmark's dependencies never slow another
BENCHMARKS: dict[str, tuple[str, str]] = {
    "cli": ("bench_cli", "bench_cli"),
    "sandbox": ("bench_sandbox", "bench_sandbox"),
    "training": ("bench_training", "bench_training"),
    "ingest": ("bench_ingest", "bench_ingest"),
    "dp": ("bench_dp", "bench_dp"),
    "gate": ("bench_gate", "bench_gate"),
    "reconstruction": ("bench_reconstruction", "bench_reconstruction"),
    # not in the default set (slow, or not a figure of issue 16): ask for them by name
    "utility": ("bench_training", "bench_utility"),
    "differencing": ("bench_differencing", "bench_differencing"),
    "spark": ("bench_spark", "bench_spark"),
    "inference": ("bench_inference", "bench_inference"),
}
DEFAULT = ["cli", "sandbox", "training", "ingest", "dp", "gate", "reconstruction"]
OUT = HERE / "out"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"benchmarks to run: {', '.join(BENCHMARKS)} "
                                             f"(default: {' '.join(DEFAULT)})")
    ap.add_argument("--repeat", type=int, help="interleaved repeats per figure (at least 3; each benchmark has its "
                    "own default: cli 9, sandbox 20, training 5, ingest 15 (3 above 256 MiB), dp 5, gate 7)")
    ap.add_argument("--rows", type=int, help="`gate` (default 10M), `dp` (default 2M): rows of the generated table")
    ap.add_argument("--units", type=int, default=1_000_000, help="privacy units (differencing)")
    ap.add_argument("--ingest-mb", type=int, default=100, help="size of the generated CSV for `ingest`")
    ap.add_argument("--spark-sizes", default="10000000,50000000,100000000",
                    help="row counts for `spark` (comma list)")
    ap.add_argument("--spark-ingest-mb", type=int, default=100, help="size of the generated CSV for `spark` ingest "
                    "(0: skip it)")
    ap.add_argument("--size", help="`ingest`: CSV size(s), e.g. 10G or 100M,1G (overrides --ingest-mb)")
    ap.add_argument("--ingest-csv", help="`ingest`: an existing generated CSV (bench/govdata.py) to load instead")
    ap.add_argument("--ingest-via", choices=["api", "cli"], default="api", help="`ingest`: call the service or run "
                    "`twh ingest` (progress bar on stderr)")
    ap.add_argument("--no-baseline", action="store_true", help="`ingest`: skip the plain write_deltalake run")
    ap.add_argument("--pools", type=int, default=20, help="`reconstruction`: attacked pools of 40 firms per point")
    ap.add_argument("--firms", type=int, default=120_000, help="`inference`: demo enterprises generated")
    ap.add_argument("--subjects", type=int, default=100_000, help="`inference`: authorised subjects in the batch")
    ap.add_argument("--verify-calls", type=int, default=300, help="`inference`: single verifications over the service")
    ap.add_argument("--out", type=Path, default=OUT, help="folder of the raw JSON (default bench/out)")
    ap.add_argument("--results", type=Path, help="rewrite this Markdown table (bench/RESULTS.md) from the newest JSON")
    ap.add_argument("--no-run", action="store_true", help="with --results: only rewrite the table")
    return ap


def command_line(argv: list[str]) -> str:
    return "python bench/run.py " + " ".join(shlex.quote(a) for a in argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = _parser()

    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        ap.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}")
    if args.repeat is not None and args.repeat < 3:
        ap.error("--repeat must be at least 3 (a spread needs repeats)")
    command = command_line(argv)
    print(f"# {command}", flush=True)
    if not args.no_run:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in args.names or DEFAULT:
            record = run_one(name, args, command)
            path = args.out / f"{name}-{record['started'].replace(':', '').replace('-', '')[:15]}.json"
            path.write_text(json.dumps(record, indent=1, default=str) + "\n")
            for fig in record["result"].get("figures", []):
                print(_line(fig), flush=True)
            print(f"# wrote {path}", flush=True)
    if args.results:
        from results import write_results

        write_results(args.out, args.results)
        print(f"# wrote {args.results}", flush=True)
    return 0


def run_one(name: str, args: argparse.Namespace, command: str) -> dict:
    import importlib

    module, function = BENCHMARKS[name]
    fn: Callable[[argparse.Namespace, Path], dict] = getattr(importlib.import_module(module), function)
    started = datetime.now(timezone.utc)
    probe_before = speed_probe()
    before, t0 = loadavg(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"twh-bench-{name}-") as tmp:
        result = fn(args, Path(tmp))
    return {"benchmark": name, "command": command, "started": started.isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 1), "machine": machine(), "load_before": before,
            "load_after": loadavg(), "probe_ms_before": probe_before, "probe_ms_after": speed_probe(),
            "args": {k: v for k, v in vars(args).items() if k not in ("out", "results")}, "result": result}


def _line(fig: dict) -> str:
    s = fig["spread"]
    verdict = "" if fig.get("met") is None else ("  MET" if fig["met"] else "  NOT MET")
    goal = f" (goal {fig['goal']})" if fig.get("goal") else ""
    return (f"{fig['id']}: {fig['value']} {fig['unit']}{goal}{verdict}  [p25 {s['p25']}, p75 {s['p75']}; "
            f"min {s['min']}, max {s['max']}; n={fig['n']}]  {fig['what']}")


if __name__ == "__main__":
    raise SystemExit(main())
