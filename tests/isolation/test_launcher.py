"""The pre-forked launcher: one server per supervisor, but every run still gets its own isolation.

The server (``stage.py --serve``) forks a child per run; these tests check what a pre-forked
launcher could get wrong: runs sharing a uid, a namespace or a cgroup; a dead server leaving the
supervisor unable to run jobs; a supervisor that dies leaving the server or a sandbox behind; a
job reaching the server (root, outside the sandbox).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from sandbox.isolation import launcher
from sandbox.isolation.procs import processes_of_uid
from sandbox.isolation.runner import SandboxOutcome
from tests.isolation.test_runner_attacks import report

_IDENTITY = """
    import json, os
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    print(json.dumps({
        "uid": os.getuid(),
        "ns": {n: os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup")},
        "cgroup": open("/proc/self/cgroup").read(),
        "nnp": status["NoNewPrivs"].strip(),
        "groups": status["Groups"].strip(),
        "ids": [status["Uid"].split(), status["Gid"].split()],
    }))
"""


def test_runs_share_the_server_but_no_uid_namespace_or_cgroup(run_job) -> None:
    first = report(run_job(_IDENTITY))
    server = launcher.launcher_pid()
    second = report(run_job(_IDENTITY))
    assert server is not None and launcher.launcher_pid() == server  # one server, forked per run
    assert first["uid"] != second["uid"]
    for run in (first, second):
        # real, effective, saved and filesystem ids all the run's uid; no groups; no_new_privs
        assert run["ids"] == [[str(run["uid"])] * 4] * 2 and run["groups"] == "" and run["nnp"] == "1"
    for name, ns in first["ns"].items():
        assert second["ns"][name] != ns, name  # fresh namespaces each run
    host_ns = {n: os.readlink(f"/proc/{server}/ns/{n}") for n in first["ns"]}
    assert not set(first["ns"].values()) & set(host_ns.values())


def test_the_server_is_out_of_reach_of_the_job(run_job) -> None:
    run_job("pass")  # the server exists
    server = launcher.launcher_pid()
    assert server is not None
    result = run_job(f"""
        import json, os
        out = {{"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
        try:
            os.kill({server}, 0)
            out["kill"] = "reachable"
        except ProcessLookupError:
            out["kill"] = "no such process"
        print(json.dumps(out))
    """)
    seen = report(result)
    assert seen["kill"] == "no such process" and server not in seen["pids"]
    assert launcher.launcher_pid() == server  # and it is still serving


def test_a_dead_server_is_replaced(run_job) -> None:
    run_job("pass")
    server = launcher.launcher_pid()
    assert server is not None
    os.kill(server, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while launcher._server is not None and launcher._server.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    result = run_job("print('after')")
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.reason
    assert result.stdout == b"after\n"
    assert launcher.launcher_pid() not in (None, server)


_SUPERVISOR = """
import sys, tempfile
from pathlib import Path
from sandbox.isolation import launcher
from sandbox.isolation.runner import SandboxLimits, run_in_sandbox

def handler(request):
    print(f"{request['uid']} {launcher.launcher_pid()}", flush=True)
    return {"ok": True}

tmp = Path(tempfile.mkdtemp())
job, scratch = tmp / "job", tmp / "run"
job.mkdir()
scratch.mkdir()
(job / "job.py").write_text(
    "import os, time, twh_job\\n"
    "if os.fork() == 0:\\n"
    "    os.setsid()\\n"
    "    time.sleep(120)\\n"
    "twh_job.request({'op': 'hello', 'uid': os.getuid()})\\n"
    "time.sleep(120)\\n")
run_in_sandbox(job, scratch, handler, SandboxLimits(wall_seconds=120))
"""


def test_a_killed_supervisor_takes_the_server_and_the_sandbox_with_it(sandbox_available, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    sup = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_SUPERVISOR)], stdout=subprocess.PIPE, env=env,
                           cwd=tmp_path)
    try:
        assert sup.stdout is not None
        line = sup.stdout.readline().split()
        assert len(line) == 2, "the job never reached the broker"
        uid, server = int(line[0]), int(line[1])
        assert len(processes_of_uid(uid)) >= 3  # init, the job, its setsid'd child
        sup.kill()  # no clean-up of any kind runs in the supervisor
        sup.wait()
        deadline = time.monotonic() + 10
        while (processes_of_uid(uid) or _alive(server)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert processes_of_uid(uid) == [], "a sandbox process outlived its supervisor"
        assert not _alive(server), "the launcher server outlived its supervisor"
    finally:
        if sup.poll() is None:
            sup.kill()
            sup.wait()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            state = next(line for line in f if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]


def test_a_malformed_request_is_dropped_and_the_server_keeps_serving(run_job) -> None:
    run_job("pass")
    server = launcher._current()
    # A request without the run's fds gets no answer (there is no report socket to trust) and
    # must not take the server down.
    server.ctl.send(b"not marshal")
    time.sleep(0.05)
    assert server.alive()
    assert json.loads(run_job("import json; print(json.dumps({'ok': 1}))").stdout) == {"ok": 1}
