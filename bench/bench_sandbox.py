"""Sandboxed empty job vs bare ``python -c pass`` (same interpreter, interleaved), seccomp on.

Three things run in turn, ``repeat`` times: the empty job in the sandbox as jobs run (every layer,
the seccomp allow-list included), the same with an allow-everything filter in its place (what
the allow-list itself costs), and bare ``python -c pass``. The added time is the paired
difference of each sandboxed run and the bare run next to it; its median and quartiles are
reported, so a noisy machine shows as spread rather than as a wrong number.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _quartiles_ms(xs: list[float]) -> dict[str, float]:
    q1, q2, q3 = statistics.quantiles(xs, n=4) if len(xs) > 1 else (xs[0],) * 3
    return {"p25": round(q1 * 1000, 1), "median": round(q2 * 1000, 1), "p75": round(q3 * 1000, 1)}


def _allow_all_program() -> bytes:
    import pyseccomp

    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ALLOW)
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        return f.read()


def bench_sandbox(args: argparse.Namespace, tmp: Path) -> dict:
    from sandbox.isolation import seccomp
    from sandbox.isolation.runner import SandboxLimits, SandboxOutcome, run_in_sandbox

    job = tmp / "empty_job"
    job.mkdir()
    (job / "job.py").write_text("pass\n")
    n = [0]
    t0 = time.perf_counter()
    policy = seccomp.bpf_program()  # once per process; every run below reuses it
    build_ms = (time.perf_counter() - t0) * 1000
    allow_all = _allow_all_program()

    def sandboxed(program: bytes) -> Callable[[], None]:
        def run() -> None:
            n[0] += 1
            scratch = tmp / f"scratch{n[0]}"
            scratch.mkdir()
            seccomp._program = program  # the per-process cache: the filter this run loads
            try:
                r = run_in_sandbox(job, scratch, lambda req: {"ok": True}, SandboxLimits(wall_seconds=30))
            finally:
                seccomp._program = policy
            assert r.outcome is SandboxOutcome.SUCCEEDED, r.reason
        return run

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    runs: dict[str, Callable[[], None]] = {"seccomp": sandboxed(policy), "allow_all": sandboxed(allow_all),
                                           "bare": bare}
    for fn in runs.values():  # warm the page cache once for all
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    added = [s - b for s, b in zip(times["seccomp"], times["bare"])]
    filter_cost = [s - a for s, a in zip(times["seccomp"], times["allow_all"])]
    result = {
        "what": "empty job in the bubblewrap sandbox (seccomp allow-list on) vs bare `python -c pass`",
        "sandboxed_ms": _quartiles_ms(times["seccomp"])["median"], "baseline_ms": _quartiles_ms(times["bare"])["median"],
        "added_ms": _quartiles_ms(added)["median"], "added_ms_spread": _quartiles_ms(added),
        "seccomp_filter_ms": _quartiles_ms(filter_cost)["median"],
        "seccomp_filter_ms_spread": _quartiles_ms(filter_cost),
        "allow_all_filter_sandboxed_ms": _quartiles_ms(times["allow_all"])["median"],
        "filter_build_ms_once_per_process": round(build_ms, 1), "policy_sha256": seccomp.policy_sha256()[:16],
        "ratio": round(statistics.median(times["seccomp"]) / statistics.median(times["bare"]), 2),
        "repeat": args.repeat,
    }
    print(f"sandbox: empty job +{result['added_ms']} ms over bare python (p25 {result['added_ms_spread']['p25']}, "
          f"p75 {result['added_ms_spread']['p75']}); the seccomp filter's share {result['seccomp_filter_ms']} ms",
          file=sys.stderr)
    return result
