"""The sandbox runner doing its ordinary job: run code, broker requests, collect outputs.

Attacks on it live in ``test_runner_attacks.py``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sandbox.isolation.mounts as mounts
import sandbox.isolation.runner as runner
from sandbox.errors import JobSpecInvalid, SandboxError
from sandbox.isolation.mounts import python_install
from sandbox.isolation.procs import kill_verified, processes_of_uid, reap_uid, uid_lease
from sandbox.isolation.runner import SandboxLimits, SandboxOutcome, check_sandbox_available, run_in_sandbox

JOBCLIENT = Path(runner.__file__).with_name("jobclient") / "twh_job.py"


def load_twh_job() -> ModuleType:
    """A fresh copy of the job client, as job code would import it (it is not a package)."""
    spec = importlib.util.spec_from_file_location("twh_job_under_test", JOBCLIENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def fake_broker(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("op") == "datasets":
        return {"ok": True, "datasets": [{"name": "sales", "columns": [{"name": "region"}]}]}
    if request.get("op") == "query" and "secret" in request.get("sql", ""):
        return {"ok": False, "error": {"code": "query_refused", "message": "too few rows", "rule": "threshold"}}
    if request.get("op") == "query":
        return {"ok": True, "columns": ["region", "n"], "rows": [["north", 12], ["south", 30]],
                "suppressed": 1, "notes": ["1 cell suppressed"], "query_id": "q1"}
    return {"ok": False, "error": {"code": "invalid_input", "message": "unknown op"}}


# -- plain runs --------------------------------------------------------------------------------

def test_empty_job_succeeds_and_overhead_is_small(run_job, capsys) -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = run_job("")
    boxed = time.perf_counter() - t0
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.reason
    assert result.exit_code == 0
    assert result.outputs == () and result.rejected == ()
    assert result.leftover_processes_killed == 0
    with capsys.disabled():
        print(f"\n[sandbox overhead] python -c pass: {bare * 1000:.0f} ms, "
              f"empty sandboxed job: {boxed * 1000:.0f} ms, overhead {(boxed - bare) * 1000:.0f} ms")
    assert boxed - bare < 1.0


def test_outputs_are_returned_with_hashes(run_job) -> None:
    result = run_job("""
        open("/out/b.json", "w").write('{"x": 1}')
        open("/out/a.csv", "w").write("k,v\\n1,2\\n")
        print("hello"); import sys; print("oops", file=sys.stderr)
    """)
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.reason
    assert [o.name for o in result.outputs] == ["a.csv", "b.json"]
    a = result.outputs[0]
    assert a.data == b"k,v\n1,2\n" and a.size == 8 and a.sha256 == hashlib.sha256(a.data).hexdigest()
    assert result.stdout == b"hello\n" and result.stderr == b"oops\n"


def test_nonzero_exit_is_failed_and_outputs_are_withheld(run_job) -> None:
    result = run_job("""
        open("/out/a.csv", "w").write("x\\n")
        raise SystemExit(3)
    """)
    assert result.outcome is SandboxOutcome.FAILED
    assert result.exit_code == 3
    assert result.outputs == ()
    assert "status 3" in result.reason


def test_entrypoint_and_helper_files_are_available_read_only(run_job) -> None:
    result = run_job(
        """
        import helper, os
        print(helper.VALUE, os.getcwd(), sorted(os.listdir("/job")))
        try:
            open("/job/new.txt", "w")
        except OSError as exc:
            print("ro", exc.errno)
        """,
        files={"helper.py": "VALUE = 42\n", "data/params.json": "{}"},
        entrypoint="main.py",
    )
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.stderr
    assert result.stdout == b"42 /job ['data', 'helper.py', 'main.py']\nro 30\n"


def test_third_party_libraries_import(run_job) -> None:
    result = run_job("import pandas, numpy; print(pandas.DataFrame({'a': [1, 2]})['a'].sum())")
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.stderr[-2000:]
    assert result.stdout.strip() == b"3"


def test_environment_is_exactly_what_the_runner_sets(run_job, monkeypatch) -> None:
    monkeypatch.setenv("HOST_ONLY_VARIABLE", "x")
    result = run_job("import os, json; print(json.dumps(dict(os.environ)))", env={"TWH_JOB_ID": "job_1"})
    env = json.loads(result.stdout)
    env.pop("PWD", None)
    env.pop("LC_CTYPE", None)  # set by Python itself when it coerces the C locale
    # plus what the interpreter needs at its neutral path (LD_LIBRARY_PATH=/opt/python/lib for a
    # shared build outside /usr, as pyenv's)
    assert env == {"PATH": "/usr/bin:/bin", "PYTHONPATH": "/twh", "TWH_BROKER_FD": "3", "HOME": "/tmp",
                   "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "TWH_JOB_ID": "job_1",
                   **dict(python_install().env)}
    assert all(v.startswith("/opt/") for v in dict(python_install().env).values())


@pytest.mark.parametrize("env", [{"TWH_BROKER_FD": "9"}, {"PYTHONPATH": "/x"}, {"A=B": "1"}, {"X": "a\0b"},
                                 {"LD_PRELOAD": "/tmp/x.so"}, {"LD_LIBRARY_PATH": "/tmp"}, {"PYTHONHOME": "/x"}])
def test_reserved_or_malformed_env_is_refused(run_job, env) -> None:
    with pytest.raises(JobSpecInvalid):
        run_job("", env=env)


def test_stdin_is_empty(run_job) -> None:
    result = run_job("import sys; print(repr(sys.stdin.read()))")
    assert result.stdout == b"''\n"


# -- the broker --------------------------------------------------------------------------------

def test_job_client_queries_through_the_broker(run_job) -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: dict[str, Any]) -> dict[str, Any]:
        seen.append(request)
        return fake_broker(request)

    result = run_job("""
        import twh_job
        print([d["name"] for d in twh_job.datasets()])
        res = twh_job.query("SELECT region, COUNT(*) AS n FROM sales GROUP BY region")
        print(res.columns, res.rows, res.suppressed, res.notes, res.raw["query_id"])
        print(res.to_dicts())
        res.to_csv("by_region.csv")
        twh_job.write_json("meta.json", {"suppressed": res.suppressed})
        try:
            twh_job.query("SELECT secret FROM sales")
        except twh_job.BrokerError as exc:
            print("refused", exc.code, exc.message, exc.details)
    """, handler=handler)
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == "['sales']"
    assert lines[1] == "['region', 'n'] [['north', 12], ['south', 30]] 1 ['1 cell suppressed'] q1"
    assert lines[2] == "[{'region': 'north', 'n': 12}, {'region': 'south', 'n': 30}]"
    assert lines[3] == "refused query_refused too few rows {'rule': 'threshold'}"
    assert result.broker_requests == 3 == len(seen)
    assert seen[1] == {"op": "query", "sql": "SELECT region, COUNT(*) AS n FROM sales GROUP BY region"}
    files = {o.name: o.data for o in result.outputs}
    assert files["by_region.csv"] == b"region,n\r\nnorth,12\r\nsouth,30\r\n"
    assert json.loads(files["meta.json"]) == {"suppressed": 1}


def test_handler_exception_never_reaches_the_job(run_job) -> None:
    def handler(request: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("db password is hunter2, row: alice 52000")

    result = run_job("""
        import twh_job
        try:
            twh_job.query("SELECT 1")
        except twh_job.BrokerError as exc:
            print(exc.code, "|", exc.message)
    """, handler=handler)
    assert result.stdout == b"internal_error | the broker failed\n"
    assert b"hunter2" not in result.stdout + result.stderr
    assert result.broker_requests == 1


def test_oversized_request_frame_ends_the_conversation(run_job) -> None:
    result = run_job("""
        import os, socket, struct
        s = socket.socket(fileno=int(os.environ["TWH_BROKER_FD"]))
        s.sendall(struct.pack(">I", 64 * 1024 * 1024) + b"{" * 1000)
        try:
            print("closed" if s.recv(10) == b"" else "answered")
        except ConnectionResetError:
            print("closed")
    """)
    assert result.stdout == b"closed\n", result.stderr  # no answer: the broker hung up
    assert "exceeds" in result.reason and result.broker_requests == 0


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"a": NaN}', b"\xff\xfe"])
def test_malformed_request_frame_is_recorded(run_job, body: bytes) -> None:
    result = run_job(f"""
        import os, socket, struct
        s = socket.socket(fileno=int(os.environ["TWH_BROKER_FD"]))
        body = {body!r}
        s.sendall(struct.pack(">I", len(body)) + body)
        try:
            print("closed" if s.recv(10) == b"" else "answered")
        except ConnectionResetError:
            print("closed")
    """)
    assert result.stdout == b"closed\n", result.stderr
    assert "broker:" in result.reason and result.broker_requests == 0


def test_oversized_response_is_replaced_by_an_error(run_job) -> None:
    result = run_job("""
        import twh_job
        try:
            twh_job.query("SELECT 1")
        except twh_job.BrokerError as exc:
            print(exc.code)
        print(twh_job.datasets())
    """, handler=lambda r: {"ok": True, "rows": [["x" * 1000]] * 5000} if r["op"] == "query"
                 else {"ok": True, "datasets": []})
    assert result.stdout == b"response_too_large\n[]\n"
    assert result.broker_requests == 2


# -- set-up errors -----------------------------------------------------------------------------

def test_symlink_in_job_folder_is_refused(sandbox_available, tmp_path: Path) -> None:
    job = tmp_path / "code"
    job.mkdir()
    (job / "job.py").write_text("")
    (job / "data.csv").symlink_to("/etc/passwd")
    scratch = tmp_path / "run"
    scratch.mkdir()
    with pytest.raises(JobSpecInvalid, match="symbolic link"):
        run_in_sandbox(job, scratch, lambda r: r)
    assert not (scratch / "out").exists()


@pytest.mark.parametrize("entrypoint", ["../job.py", "/job.py", "job.sh", "missing.py", "sub/job.py"])
def test_bad_entrypoint_is_refused(sandbox_available, tmp_path: Path, entrypoint: str) -> None:
    job = tmp_path / "code"
    (job / "sub").mkdir(parents=True)
    (job / "job.py").write_text("")
    (job / "sub" / "job.py").write_text("")
    scratch = tmp_path / "run"
    scratch.mkdir()
    with pytest.raises(JobSpecInvalid):
        run_in_sandbox(job, scratch, lambda r: r, entrypoint=entrypoint)


def test_world_writable_scratch_is_refused(sandbox_available, tmp_path: Path) -> None:
    job = tmp_path / "code"
    job.mkdir()
    (job / "job.py").write_text("")
    scratch = tmp_path / "run"
    scratch.mkdir()
    scratch.chmod(0o777)
    with pytest.raises(SandboxError, match="not writable by others"):
        run_in_sandbox(job, scratch, lambda r: r)


def test_sandbox_that_cannot_start_is_a_sandbox_error(run_job, monkeypatch) -> None:
    monkeypatch.setattr(mounts, "usr_args", lambda: ["--ro-bind", "/nonexistent-twh", "/usr"])
    with pytest.raises(SandboxError, match="the sandbox failed to start"):
        run_job("print('never runs')")


def test_missing_bubblewrap_is_reported_clearly(monkeypatch) -> None:
    monkeypatch.setattr(runner, "_available", False)
    monkeypatch.setattr(runner, "_SAFE_PATH", "/nonexistent")
    monkeypatch.setattr(runner.os, "geteuid", lambda: 0)
    with pytest.raises(SandboxError, match="bubblewrap is not installed: apt-get install bubblewrap"):
        check_sandbox_available()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        SandboxLimits(wall_seconds=0)
    with pytest.raises(ValueError):
        SandboxLimits(allowed_output_suffixes=("csv",))


# -- the job client outside the sandbox -------------------------------------------------------

def test_job_client_uses_an_injected_transport(tmp_path: Path, monkeypatch) -> None:
    twh_job = load_twh_job()
    monkeypatch.setattr(twh_job, "OUT_DIR", tmp_path)
    sent: list[dict[str, Any]] = []
    twh_job.set_transport(lambda req: (sent.append(req), fake_broker(req))[1])
    res = twh_job.query("SELECT region FROM sales")
    assert sent == [{"op": "query", "sql": "SELECT region FROM sales"}]
    assert res.to_csv("r.csv") == tmp_path / "r.csv"
    assert (tmp_path / "r.csv").read_bytes() == b"region,n\r\nnorth,12\r\nsouth,30\r\n"
    with pytest.raises(twh_job.BrokerError) as info:
        twh_job.query("SELECT secret")
    assert info.value.code == "query_refused"
    with pytest.raises(ValueError):
        twh_job.write_json("bad.json", {"x": float("nan")})


def test_job_client_without_broker_explains_itself(monkeypatch) -> None:
    monkeypatch.delenv("TWH_BROKER_FD", raising=False)
    monkeypatch.delenv("TWH_MOCK_DIR", raising=False)
    twh_job = load_twh_job()
    with pytest.raises(twh_job.BrokerError, match="not running inside"):
        twh_job.datasets()
    monkeypatch.setenv("TWH_MOCK_DIR", "/tmp/mock")
    with pytest.raises(twh_job.BrokerError, match="mock mode is provided by the `twh` CLI"):
        twh_job.datasets()


def test_job_client_has_no_dependencies_outside_the_stdlib() -> None:
    source = JOBCLIENT.read_text()
    imported = {line.split()[1].split(".")[0] for line in source.splitlines()
                if line.startswith(("import ", "from ")) and "__future__" not in line}
    assert imported <= set(sys.stdlib_module_names)


# -- teardown machinery ------------------------------------------------------------------------

def test_reap_kills_every_process_of_the_uid_and_nothing_else(sandbox_available) -> None:
    with uid_lease() as uid:
        victim = subprocess.Popen(
            ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
             "/bin/sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)
        bystander = subprocess.Popen(["/bin/sleep", "60"])
        try:
            deadline = time.monotonic() + 5
            while len(processes_of_uid(uid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert not kill_verified(bystander.pid, uid)  # not of this uid: never signalled
            killed = reap_uid(uid)
            assert len(killed) >= 2
            assert processes_of_uid(uid) == []
            assert bystander.poll() is None
        finally:
            bystander.kill()
            bystander.wait()
            victim.wait()


def test_private_tmp_is_mounted_before_the_binds_so_a_venv_under_tmp_stays_visible(tmp_path):
    """A checkout (and its venv) under /tmp, as CI clones are, must not be hidden by the job's /tmp."""
    from sandbox.isolation.runner import SandboxLimits, _command

    _spec, argv = _command(250000, SandboxLimits(), tmp_path / "job", "job.py", None)
    tmpfs = argv.index("/tmp", argv.index("--tmpfs"))
    binds = [i for i, a in enumerate(argv) if a in ("--ro-bind", "--bind")]
    assert binds and all(i > tmpfs for i in binds)
