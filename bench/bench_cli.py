"""How long people wait for ``twh``: ``--help``, a local ``dataset list``, and ``job submit``'s
overhead over the sandboxed run itself, locally and against ``twh serve``.

Each command runs as a person runs it — a fresh ``twh`` process (the venv's console script, the
checkout's code) — interleaved with ``python -c pass`` (the interpreter's own start, for
reference), ``--repeat`` times (default 9) after a warm-up. Python may write bytecode here (the
warm-up compiles the checkout once; ``PYTHONDONTWRITEBYTECODE`` is dropped for these processes):
that is what every user's second command gets.

The submit figures subtract from each submit's wall time the wall time of that job's own sandbox
run, as the runner measured it (``wall_seconds`` in the job's ``job.gating`` audit record), when
the command waited for the run (local mode; the record's time is before the command's end): what
is left is the command's overhead — start-up, the catalog, the broker, the output gate, the
export. A remote submit does not wait (the service answers the submitter's view of a job that
needs review, final at once: ``awaiting_review``; the worker runs the job after the answer), so its
whole wall time — start-up, HTTP, the service's checks and queueing — is its overhead; the bench
then waits, untimed, until the service has run that job, so that its run does not overlap (and
slow) the next command timed. The job is an empty ``job.py``.

Local mode is timed as users get it: ``TWH_LOCAL_SERVER=auto`` (the default), so the warm-up's
submit starts the home's local server and the timed submits talk to it on its Unix socket
(``cli.submit_overhead_local_ms``); the same submit with ``TWH_LOCAL_SERVER=off`` (one process
opens the warehouse and runs the job) is reported beside it, without a goal
(``cli.submit_overhead_local_off_ms``). ``dataset list`` never uses the local server: local mode
reads the catalog file directly (``sandbox.catalog.readonly``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from timing import figure, interleaved_many

ROOT = Path(__file__).resolve().parents[1]
TWH = str(Path(sys.executable).with_name("twh"))


def _setup(home: Path) -> dict[str, str]:
    from sandbox.datasets.manifest import load_manifest
    from sandbox.demo.generate import generate
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    wh = Warehouse.open(Settings(home=home))
    _, admin_token = wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    tokens = {"admin": admin_token}
    for name, role, tenant in (("tax_steward", "steward", "tax_bureau"), ("bank_steward", "steward", "bank_a"),
                               ("analyst", "enterprise", "bank_a"), ("auditor", "auditor", "regulator")):
        tokens[name] = wh.users.add(admin, name, role, tenant)[1]
    files = generate(home.parent / "sample", n_enterprises=300, seed=3)
    manifests = ROOT / "sandbox" / "demo" / "manifests"
    for name, steward in (("enterprise_registry", "tax_steward"), ("bank_loans", "bank_steward")):
        wh.datasets.register(wh.users.principal(steward), load_manifest(manifests / f"{name}.yaml"))
        wh.ingest.ingest(wh.users.principal(steward), name, Path(files[name]))
    wh.close()
    return tokens


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("twh serve exited")
        try:
            urllib.request.urlopen(url + "/v1/health", timeout=1)
            return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP answer (404 or so): it is up
                return
            time.sleep(0.2)
    raise RuntimeError("twh serve did not come up")


def bench_cli(args: argparse.Namespace, tmp: Path) -> dict:
    repeat = args.repeat or 9
    home = tmp / "wh"
    tokens = _setup(home)
    job = tmp / "empty_job"
    job.mkdir()
    (job / "job.yaml").write_text("name: empty\npurpose: credit_risk\ndatasets: [enterprise_registry, bank_loans]\n")
    (job / "job.py").write_text("pass\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",) and not k.startswith("TWH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["TWH_HOME"] = str(home)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    serve = subprocess.Popen([TWH, "--home", str(home), "serve", "--port", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    jobs: dict[str, list[str]] = {"local": [], "local_off": [], "remote": []}

    env_off = {**env, "TWH_LOCAL_SERVER": "off"}
    ended: dict[str, float] = {}  # job id -> when its submit command returned (epoch seconds)

    def run(argv: list[str], *, keep: str | None = None, env: dict[str, str] = env) -> None:
        r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{argv[1:]} failed: {r.stderr[-500:]}")
        if keep:
            jobs[keep].append(json.loads(r.stdout)["id"])
            ended[jobs[keep][-1]] = time.time()

    arms = {
        "python": lambda: run([sys.executable, "-c", "pass"]),
        "help": lambda: run([TWH, "--help"]),
        "list": lambda: run([TWH, "--as", "analyst", "dataset", "list"]),
        "submit_local": lambda: run([TWH, "--as", "analyst", "--json", "job", "submit", str(job)], keep="local"),
        "submit_local_off": lambda: run([TWH, "--as", "analyst", "--json", "job", "submit", str(job)],
                                        keep="local_off", env=env_off),
        "submit_remote": lambda: run([TWH, "--url", url, "--token", tokens["analyst"], "--json", "job", "submit",
                                      str(job)], keep="remote"),
    }
    def remote_ran() -> None:
        """The service's worker runs a remote submit's job after the answer: wait (untimed) until it
        has, so that run is not billed to the next arm (on 2 cores it slowed the local submit)."""
        job_id = jobs["remote"][-1]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            req = urllib.request.Request(f"{url}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {tokens['admin']}"})
            with urllib.request.urlopen(req, timeout=10) as r:
                if json.loads(r.read())["state"] not in ("queued", "running", "gating"):
                    return
            time.sleep(0.02)
        raise RuntimeError(f"the service did not run {job_id} within 60 s")

    try:
        _wait_up(url, serve, time.monotonic() + 120)
        for fn in arms.values():  # warm-up: bytecode, page cache, the host's sandbox record, the service
            fn()
        remote_ran()
        jobs = {"local": [], "local_off": [], "remote": []}  # the timed runs' jobs only
        times = interleaved_many(arms, repeat, warmup=0, settle={"submit_remote": remote_ran})
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        subprocess.run([TWH, "local-server", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs, run_ends = _sandbox_walls(home)
    # Local mode waits for the run (the in-process command runs it; the local server's submit waits
    # for it): subtracted where it ended before the command returned. Remote: the service answers the
    # submitter's final view at once (awaiting_review) and the client returns; the worker runs the job
    # afterwards, at best beside the client's exit: nothing is subtracted.
    inside = {j: mode != "remote" and run_ends[j] <= ended[j] for mode in jobs for j in jobs[mode]}
    over = {mode: [(t - (runs[j] if inside[j] else 0.0)) * 1000
                   for t, j in zip(times[f"submit_{mode}"], jobs[mode], strict=True)]
            for mode in ("local", "local_off", "remote")}
    waited = {mode: sum(inside[j] for j in jobs[mode]) for mode in jobs}
    ms = {k: round(sorted(v)[len(v) // 2] * 1000, 1) for k, v in times.items()}
    ref = f"`python -c pass` as installed: median {ms['python']} ms"
    figures = [
        figure("cli.help_ms", "`twh --help`, a fresh process", [t * 1000 for t in times["help"]], unit="ms", digits=1,
               goal="<= 100", baseline=ref),
        figure("cli.dataset_list_ms", "`twh --as analyst dataset list`, local mode, a fresh process (reads the "
               "catalog file directly; no local server involved)",
               [t * 1000 for t in times["list"]], unit="ms", digits=1, goal="<= 150", baseline=ref),
        figure("cli.submit_overhead_remote_ms", "`twh --url … job submit` of an empty job against `twh serve`, minus "
               "nothing: the command does not wait for the run (the submitter's view of a job that needs review, "
               "awaiting_review, is final at once), so its whole wall time is overhead",
               over["remote"], unit="ms", digits=1, goal="<= 150",
               baseline=f"the job's own sandbox run (median {_median(runs, jobs['remote'])} ms)"),
        figure("cli.submit_overhead_local_ms", "`twh --as analyst job submit` of an empty job in local mode as users "
               "get it (TWH_LOCAL_SERVER=auto: the home's warm local server, started by the warm-up run, runs and "
               "gates the job; the command talks to it on its Unix socket), minus that job's sandboxed run",
               over["local"], unit="ms", digits=1, goal="<= 150",
               baseline=f"the job's own sandbox run (median {_median(runs, jobs['local'])} ms)"),
        figure("cli.submit_overhead_local_off_ms", "the same with TWH_LOCAL_SERVER=off (one fresh process imports and "
               "opens the warehouse, runs the job, gates it), minus that job's sandboxed run; no goal: shown so "
               "the cold path is not hidden", over["local_off"], unit="ms", digits=1,
               baseline=f"the job's own sandbox run (median {_median(runs, jobs['local_off'])} ms)"),
    ]
    return {"figures": figures, "medians_ms": ms, "repeat": repeat,
            "notes": ["bytecode written by the warm-up run (PYTHONDONTWRITEBYTECODE dropped for the timed processes)",
                      "local submits whose run ended before the command returned (their run subtracted): "
                      f"{waited['local']} of {len(jobs['local'])} (server), {waited['local_off']} of "
                      f"{len(jobs['local_off'])} (off)"]}


def _median(runs: dict[str, float], ids: list[str]) -> float:
    xs = sorted(runs[i] * 1000 for i in ids)
    return round(xs[len(xs) // 2], 1)


def _sandbox_walls(home: Path) -> tuple[dict[str, float], dict[str, float]]:
    """job id -> its sandbox run's wall seconds, and -> when that record was written (epoch seconds),
    from the job.gating / job.failed audit records."""
    from datetime import datetime

    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    wh = Warehouse.open(Settings(home=home))
    try:
        auditor = wh.users.principal("auditor")
        walls: dict[str, float] = {}
        ends: dict[str, float] = {}
        after = 0
        while True:
            page = wh.audit_records(auditor, after=after, limit=1000)
            if not page:
                return walls, ends
            for r in page:
                wall = (r.get("details") or {}).get("wall_seconds")
                if r["action"] in ("job.gating", "job.failed") and wall is not None:
                    walls.setdefault(r["object_id"], wall)
                    ends.setdefault(r["object_id"], datetime.fromisoformat(r["ts"]).timestamp())
            after = page[-1]["seq"]
    finally:
        wh.close()
