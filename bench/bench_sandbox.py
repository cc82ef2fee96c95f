"""Sandboxed empty job ÷ bare ``python -c pass`` (same interpreter, interleaved)."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def bench_sandbox(args: argparse.Namespace, tmp: Path) -> dict:
    from timing import interleaved, median_ms

    from sandbox.isolation.runner import SandboxLimits, SandboxOutcome, run_in_sandbox

    job = tmp / "empty_job"
    job.mkdir()
    (job / "job.py").write_text("pass\n")
    n = [0]

    def sandboxed() -> None:
        n[0] += 1
        scratch = tmp / f"scratch{n[0]}"
        scratch.mkdir()
        r = run_in_sandbox(job, scratch, lambda req: {"ok": True}, SandboxLimits(wall_seconds=30))
        assert r.outcome is SandboxOutcome.SUCCEEDED, r.reason

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    sandboxed()  # warm the page cache once for both
    bare()
    t_box, t_bare = interleaved(sandboxed, bare, args.repeat)
    box, base = median_ms(t_box), median_ms(t_bare)
    return {"what": "empty job in the bubblewrap sandbox vs bare `python -c pass`",
            "sandboxed_ms": box, "baseline_ms": base, "added_ms": round(box - base, 3),
            "ratio": round(box / base, 2), "repeat": args.repeat}
