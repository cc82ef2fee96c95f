"""The sandbox's added time: an empty job, and the demo's real job, against plain Python.

Interleaved, ``--repeat`` times each (default 20), in one supervisor process (as a worker or the
service runs jobs: the launcher server is up, the seccomp program built):

1. **empty job** — ``job.py`` = ``pass`` in the sandbox (every layer, the seccomp allow-list on)
   vs bare ``python -c pass``. The bare interpreter is the one the job gets: the same Python and
   site-packages, *without* the warehouse's editable-install hook, which the sandbox masks (a
   development install's ``.pth`` finder costs ~12 ms of every start, see bench_cli). Where the
   venv has such a hook, the baseline runs from a view of the venv without it (symlinks); the
   as-installed ``python -c pass`` is reported beside it.
2. **demo job** — ``sandbox/demo/jobs/default_rate/job.py`` (lists its datasets, is refused a
   row-level query, asks the aggregate, writes a CSV) in the sandbox vs the same file run by plain
   Python against a local broker (a socketpair, the same ``Broker`` thread and handler, as
   ``twh job run-local`` does), so both sides pay the same broker answers and imports.
3. **the seccomp filter's share** — the empty job under an allow-everything filter instead.

Each figure is the median of the paired differences (sandboxed minus bare, run next to each
other) with their quartiles.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from timing import diff_ms_figure, figure, interleaved_many

ROOT = Path(__file__).resolve().parents[1]
DEMO_JOB = ROOT / "sandbox" / "demo" / "jobs" / "default_rate"

_DATASETS = [{"name": "enterprise_registry", "version": 1,
              "columns": [{"name": c, "role": r} for c, r in (("uscc", "join_key"), ("industry", "dimension"),
                                                               ("district", "dimension"))]},
             {"name": "bank_loans", "version": 1,
              "columns": [{"name": c, "role": r} for c, r in (("uscc", "join_key"), ("amount", "measure"),
                                                               ("defaulted", "measure"))]}]
_ROWS = [[ind, str(500103 + d), 40 + d, 0.05 + d / 100, 120.5 + d] for ind in "CEFGHIM" for d in range(7)]


def demo_handler(request: dict) -> dict:
    """Canned answers of the shape the broker gives the demo job (the same on both sides)."""
    if request.get("op") == "datasets":
        return {"ok": True, "datasets": _DATASETS}
    sql = str(request.get("sql", ""))
    if "SELECT *" in sql:
        return {"ok": False, "error": {"code": "query_refused", "message": "row-level query", "rule": "shape"}}
    return {"ok": True, "columns": ["industry", "district", "loans", "default_rate", "mean_amount"], "rows": _ROWS,
            "suppressed": None, "notes": [], "query_id": "q1"}


def job_python(tmp: Path) -> tuple[list[str], bool]:
    """The interpreter as the job gets it: this Python and site-packages without the warehouse's
    editable-install hook (``__editable__*``, masked in the sandbox). Returns (argv0, hook found)."""
    import site

    sites = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    hooks = [e for s in sites for e in s.iterdir() if e.name.startswith("__editable__")]
    if sys.prefix == sys.base_prefix or not hooks:
        return [sys.executable], False
    view = tmp / "job-python"
    lib = view / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    lib.mkdir(parents=True)
    for s in sites:
        for entry in s.iterdir():
            if not entry.name.startswith("__editable__") and not (lib / entry.name).exists():
                (lib / entry.name).symlink_to(entry)
    (view / "bin").mkdir()
    real = os.path.realpath(sys.executable)
    (view / "bin" / "python").symlink_to(real)
    (view / "pyvenv.cfg").write_text(f"home = {os.path.dirname(real)}\ninclude-system-site-packages = false\n")
    return [str(view / "bin" / "python")], True


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
    from sandbox.isolation.channel import Broker
    from sandbox.isolation.mounts import JOBCLIENT_DIR
    from sandbox.isolation.runner import SandboxLimits, SandboxOutcome, check_sandbox_available, run_in_sandbox

    repeat = args.repeat or 20
    check_sandbox_available()
    empty = tmp / "empty_job"
    empty.mkdir()
    (empty / "job.py").write_text("pass\n")
    demo = tmp / "demo_job"
    shutil.copytree(DEMO_JOB, demo)
    python, hooked = job_python(tmp)
    n = [0]
    policy = seccomp.bpf_program()
    allow_all = _allow_all_program()

    def sandboxed(job: Path, program: bytes, handler: Callable[[dict], dict]) -> Callable[[], None]:
        def run() -> None:
            n[0] += 1
            scratch = tmp / f"scratch{n[0]}"
            scratch.mkdir()
            seccomp._program = program  # the per-process cache: the filter this run loads
            try:
                r = run_in_sandbox(job, scratch, handler, SandboxLimits(wall_seconds=60))
            finally:
                seccomp._program = policy
                shutil.rmtree(scratch, ignore_errors=True)
            assert r.outcome is SandboxOutcome.SUCCEEDED, (r.reason, r.stderr[-500:])
        return run

    def bare() -> None:
        subprocess.run([*python, "-c", "pass"], check=True)

    def installed() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True)

    def plain_demo() -> None:
        """The demo job's code under plain Python, with a local broker (as `twh job run-local`)."""
        out = tmp / "plain-out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        parent, child = socket.socketpair()
        broker = Broker(parent, demo_handler)
        broker.start()
        env = {"PATH": "/usr/bin:/bin", "TWH_BROKER_FD": str(child.fileno()), "TWH_OUT_DIR": str(out),
               "PYTHONPATH": str(JOBCLIENT_DIR), "HOME": str(tmp), "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        try:
            subprocess.run([*python, "job.py"], cwd=demo, env=env, pass_fds=(child.fileno(),), check=True,
                           stdout=subprocess.DEVNULL)
        finally:
            child.close()
            broker.join(timeout=10)
        assert (out / "default_rate_by_industry_district.csv").is_file()

    arms: dict[str, Callable[[], None]] = {
        "empty": sandboxed(empty, policy, lambda _r: {"ok": True}), "bare": bare,
        "demo": sandboxed(demo, policy, demo_handler), "plain_demo": plain_demo,
        "allow_all": sandboxed(empty, allow_all, lambda _r: {"ok": True}), "installed": installed,
    }
    # warm the page cache and every first-time cost once, then every arm in turn
    times = interleaved_many(arms, repeat, warmup=1)
    ms = {k: round(sorted(v)[len(v) // 2] * 1000, 1) for k, v in times.items()}
    base = "bare `python -c pass` as the job's interpreter (no editable-install hook)" if hooked else \
        "bare `python -c pass`"
    figures = [
        diff_ms_figure("sandbox.empty_job_added_ms", "empty job in the sandbox (every layer, seccomp on) minus bare "
                       "Python", times["empty"], times["bare"], goal="<= 15", baseline=f"{base}, median {ms['bare']} ms"),
        diff_ms_figure("sandbox.demo_job_added_ms", "the demo job (default_rate) in the sandbox minus the same code "
                       "under plain Python against a local broker", times["demo"], times["plain_demo"], goal="<= 25",
                       baseline=f"plain Python + local broker, median {ms['plain_demo']} ms"),
        diff_ms_figure("sandbox.seccomp_filter_ms", "the seccomp allow-list's share (allow-list minus an "
                       "allow-everything filter)", times["empty"], times["allow_all"],
                       baseline=f"allow-everything filter, median {ms['allow_all']} ms"),
        figure("sandbox.editable_hook_ms", "as-installed `python -c pass` minus the job's interpreter (the "
               "development install's .pth finder, on every Python start outside the sandbox)",
               [(a - b) * 1000 for a, b in zip(times["installed"], times["bare"], strict=True)], unit="ms", digits=1,
               baseline=f"as installed: median {ms['installed']} ms"),
    ]
    return {"figures": figures, "medians_ms": ms, "repeat": repeat, "job_python": python[0],
            "editable_hook_masked_in_baseline": hooked, "policy_sha256": seccomp.policy_sha256()[:16]}
