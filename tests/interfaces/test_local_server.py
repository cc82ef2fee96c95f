"""The per-home local server (sandbox.interfaces.api.local, sandbox.interfaces.cli.local_server):
who may act through it (attacks: the act-as header over TCP, a peer of another uid on the socket,
the socket's and folder's modes), and its life (start once, fingerprint, stale socket, idle exit,
stop, fall back in-process without failing the command)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from demo_homes import demo_home, empty_job
from fastapi.testclient import TestClient

from sandbox.datasets.manifest import load_manifest
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.api.local import allowed_uids, peer_uid, serve_local
from sandbox.interfaces.cli import local_server as ls
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
TWH = [sys.executable, "-m", "sandbox.interfaces.cli"]
NOBODY = 65534


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return demo_home(tmp_path / "wh")


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWH_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**env, "TWH_HOME": str(home), "TWH_LOCAL_SERVER": "auto", **extra}


def _twh(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TWH, *args], env=env, capture_output=True, text=True, timeout=120)


def _pid(home: Path) -> int | None:
    try:
        return json.loads((home / ls.FOLDER / ls.SERVER_FILE).read_text())["pid"]
    except (OSError, ValueError):
        return None


def _gone(pid: int, within: float = 15) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _reap(home: Path) -> None:
    pid = _pid(home)
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# -- who may act ------------------------------------------------------------------------------


def test_the_act_as_header_over_tcp_authenticates_nobody(settings: Settings, admin) -> None:
    """Attack (a): `twh serve`'s TCP API with the local server's act-as header, with no token and
    next to a valid one — even on an app that honours act-as on its socket (a TCP request has no
    peer uid): refused, never an identity."""
    app = create_app(settings.model_copy(update={"run_worker": False}))
    with TestClient(app) as http:
        r = http.get("/v1/me", headers={"X-Twh-Act-As": "admin"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated", r.text
        app.state.act_as_uids = allowed_uids()  # the local server's setting, reached over TCP
        r = http.get("/v1/me", headers={"X-Twh-Act-As": "admin"})
        assert r.status_code == 401, r.text
        token = app.state.warehouse.users.issue(admin, "admin")[1]
        r = http.get("/v1/me", headers={"X-Twh-Act-As": "admin", "Authorization": f"Bearer {token}"})
        assert r.status_code == 401, "the header must be refused, not ignored in favour of the token"
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["name"] == "admin"


def test_peer_uid_is_the_kernels_record_of_who_connected() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peer_uid(a) == os.getuid() == peer_uid(b)
    assert peer_uid(object()) is None  # not a socket: unknown, and unknown is refused
    assert allowed_uids(1000) == {1000, 0}


class _Server:
    """serve_local in a thread of this process, on ``folder``."""

    def __init__(self, settings: Settings, folder: Path, uids: frozenset[int] | None = None) -> None:
        self.folder = folder
        ready = threading.Event()
        self.halt = threading.Event()
        self.thread = threading.Thread(target=serve_local, args=(settings, folder, "test-fp"),
                                       kwargs={"ready": ready, "uids": uids, "stop": self.halt}, daemon=True)
        self.thread.start()
        assert ready.wait(60)

    def stop(self) -> None:
        try:
            ls._client(self.folder, None)._call("POST", "/v1/local/stop")
        finally:
            self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture
def quiet(settings: Settings) -> Settings:
    return settings.model_copy(update={"run_worker": False})


def test_the_socket_acts_for_its_owner_and_refuses_another_uid(quiet: Settings, admin, tmp_path: Path) -> None:
    """Attack (b), the uid faked: a server that allows only another uid (as a server of another
    user would) closes this process's connection before any request is read."""
    folder = ls.private_folder(quiet.home)
    server = _Server(quiet, folder)
    try:
        assert ls._client(folder, "admin").whoami()["name"] == "admin"  # the owner acts as --as
    finally:
        server.stop()
    assert not (folder / ls.SOCKET_NAME).exists() and not (folder / ls.SERVER_FILE).exists()
    other = _Server(quiet, folder, uids=frozenset({os.getuid() + 4242}))
    try:
        with pytest.raises(Exception, match="cannot reach the local server") as exc:
            ls._client(folder, "admin").whoami()
        assert exc.value.details == {"unreachable": True}
        with pytest.raises(Exception, match="cannot reach the local server"):
            ls._client(folder, None)._call("POST", "/v1/local/stop")  # nor stop it
        assert other.thread.is_alive()
    finally:
        other.halt.set()
        other.thread.join(30)
    assert not other.thread.is_alive()


_PROBE = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect:", exc.errno); sys.exit(0)
data = b""
try:
    s.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Twh-Act-As: admin\r\nConnection: close\r\n\r\n")
    while chunk := s.recv(65536):
        data += chunk
except OSError:
    pass
print("answer:", data[:200])
"""


def _as_nobody(sock: Path) -> str:
    r = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c",
                        _PROBE, str(sock)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


needs_root = pytest.mark.skipif(os.getuid() != 0 or not shutil.which("setpriv"),
                                reason="running a peer as another uid needs root and setpriv")


@needs_root
def test_a_peer_of_another_uid_is_refused_even_where_the_modes_let_it_in(quiet: Settings, admin) -> None:
    """Attack (b), a real other uid: `nobody` reaches the socket (its folder and mode opened on
    purpose, as a careless chmod would) and asks to act as admin: the connection is closed with
    no answer."""
    folder = Path(tempfile.mkdtemp(prefix="twh-ls-"))
    try:
        folder.chmod(0o755)
        server = _Server(quiet, folder)
        try:
            (folder / ls.SOCKET_NAME).chmod(0o777)
            assert _as_nobody(folder / ls.SOCKET_NAME) == "answer: b''"
            assert ls._client(folder, "admin").whoami()["name"] == "admin"  # the owner still is served
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_folder_and_socket_are_private(home: Path) -> None:
    """Attack (c): the socket (0600) in its folder (0700); a folder others could enter is never
    used (the command runs in-process and says so); as `nobody` (when root) the socket cannot
    even be reached."""
    env = _env(home)
    try:
        r = _twh(env, "--as", "analyst", "whoami")
        assert r.returncode == 0 and "analyst" in r.stdout, r.stderr
        assert r.stderr == ""
        folder = home / ls.FOLDER
        assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
        for name in (ls.SOCKET_NAME, ls.SERVER_FILE, "server.log", "start.lock"):
            assert stat.S_IMODE(os.lstat(folder / name).st_mode) == 0o600, name
        assert stat.S_ISSOCK(os.lstat(folder / ls.SOCKET_NAME).st_mode)
        if os.getuid() == 0 and shutil.which("setpriv"):
            home.chmod(0o755)  # even with the home open, the folder is not
            assert _as_nobody(folder / ls.SOCKET_NAME) == "connect: 13"  # EACCES
            home.chmod(0o700)
        pid = _pid(home)
        folder.chmod(0o755)
        r = _twh(env, "--as", "analyst", "whoami")
        assert r.returncode == 0 and "analyst" in r.stdout
        assert "not a private folder" in r.stderr and "running in this process" in r.stderr
        assert r.stderr.count("\n") == 1
        assert _pid(home) == pid  # nothing was started or stopped through an open folder
    finally:
        (home / ls.FOLDER).chmod(0o700)
        _twh(env, "local-server", "stop")
        _reap(home)


def test_the_one_request_submit_answers_what_submit_then_wait_answer(settings: Settings, admin) -> None:
    """Local mode's submit is one request (``POST /v1/local/jobs``): the answer is the submitter's
    own view once the job has run, field for field what ``POST /v1/jobs`` + ``/wait`` answered; it
    checks the role as ``/v1/jobs`` does; and ``twh serve``'s TCP API has no such route, so a
    remote submitter still learns nothing of the run (not even when it ended)."""
    wh = Warehouse.open(settings)
    wh.users.add(admin, "tax_steward", "steward", "tax_bureau")
    wh.users.add(admin, "analyst", "enterprise", "bank_a")
    wh.datasets.register(wh.users.principal("tax_steward"),
                         load_manifest(ROOT / "sandbox" / "demo" / "manifests" / "enterprise_registry.yaml"))
    job = empty_job(settings.home.parent / "job", ["enterprise_registry"])
    folder = ls.private_folder(settings.home)
    server = _Server(settings, folder)  # with its worker
    try:
        one = ls._client(folder, "analyst").submit_job(job)
        c = ls._client(folder, "analyst")
        queued = c._call("POST", "/v1/jobs", json={"files": {n: base64.b64encode((job / n).read_bytes()).decode()
                                                             for n in ("job.yaml", "job.py")}})
        two = c._call("POST", f"/v1/local/jobs/{queued['id']}/wait", params={"timeout": 60})
        assert one["state"] == "awaiting_review" and one["export"] is None and one["queries"] is None, one
        differ = {"id", "created_at", "updated_at"}
        assert {k: v for k, v in one.items() if k not in differ} == {k: v for k, v in two.items() if k not in differ}
        assert wh.jobs.get(admin, one["id"])["state"] not in ("queued", "running", "gating")  # it had run
        with pytest.raises(Exception, match="needs the role enterprise") as exc:
            ls._client(folder, "tax_steward").submit_job(job)
        assert exc.value.code == "forbidden"
    finally:
        server.stop()
    assert len(wh.jobs.list(admin)) == 2  # the refused submit queued nothing
    app = create_app(settings.model_copy(update={"run_worker": False}))
    token = app.state.warehouse.users.issue(admin, "analyst")[1]
    with TestClient(app) as http:
        body = {"files": {n: base64.b64encode((job / n).read_bytes()).decode() for n in ("job.yaml", "job.py")}}
        r = http.post("/v1/local/jobs", json=body, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 404, r.text
    wh.close()


# -- its life -------------------------------------------------------------------------------


def test_one_server_per_home_replaced_when_the_code_or_settings_change(home: Path) -> None:
    env = _env(home)
    job = home.parent / "job"
    job.mkdir()
    (job / "job.yaml").write_text("name: empty\npurpose: credit_risk\ndatasets: [enterprise_registry]\n")
    (job / "job.py").write_text("pass\n")
    try:
        # two commands at once: one server (the start lock)
        procs = [subprocess.Popen([*TWH, "--as", "analyst", "--json", "whoami"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert all(json.loads(o)["name"] == "analyst" and e == "" for o, e in outs), outs
        first = _pid(home)
        assert first and _servers(home) == [first]

        # the submit returns once the job has run (as in one process): the steward's next command sees it
        r = _twh(env, "--as", "analyst", "--json", "job", "submit", str(job))
        assert r.returncode == 0, r.stderr
        jid = json.loads(r.stdout)["id"]
        seen = json.loads(_twh(env, "--as", "tax_steward", "--json", "job", "show", jid).stdout)
        assert seen["state"] not in ("queued", "running", "gating"), seen
        assert _pid(home) == first

        status = json.loads(_twh(env, "--json", "local-server", "status").stdout)
        assert status["running"] and status["current"] and status["pid"] == first

        # another setting that matters: that server is stopped, a fresh one serves
        changed = {**env, "TWH_JOB_MEMORY_MB": "3072"}
        assert _twh(changed, "--as", "analyst", "whoami").returncode == 0
        second = _pid(home)
        assert second != first and _gone(first)
        assert not json.loads(_twh(env, "--json", "local-server", "status").stdout)["current"]

        # a dead server's socket is cleaned up and replaced
        os.kill(second, signal.SIGKILL)
        assert _gone(second)
        assert (home / ls.FOLDER / ls.SOCKET_NAME).exists()
        r = _twh(changed, "--as", "analyst", "whoami")
        assert r.returncode == 0 and r.stderr == "", r.stderr
        third = _pid(home)
        assert third not in (first, second)

        assert json.loads(_twh(changed, "--json", "local-server", "stop").stdout)["stopped"]
        assert _gone(third)
        assert not (home / ls.FOLDER / ls.SOCKET_NAME).exists()
        assert not json.loads(_twh(env, "--json", "local-server", "stop").stdout)["stopped"]
    finally:
        _reap(home)


def _servers(home: Path) -> list[int]:
    """The pids of local servers of ``home`` (their command lines)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"local-server" in argv and b"run" in argv and str(home).encode() in argv:
                found.append(int(entry.name))
    return found


def test_a_server_that_cannot_start_never_fails_the_command(home: Path) -> None:
    env = _env(home, TWH_LOCAL_SERVER_IDLE_MINUTES="not-a-number")  # the server's settings refuse it
    r = _twh(env, "--as", "analyst", "whoami")
    assert r.returncode == 2 and "local_server_idle_minutes" in r.stderr  # the command's own settings do too
    (home / ls.FOLDER).mkdir(mode=0o700, exist_ok=True)
    (home / ls.FOLDER / ls.SOCKET_NAME).mkdir()  # the server cannot bind its socket there
    env = _env(home)
    try:
        r = _twh(env, "--as", "analyst", "whoami")
        assert r.returncode == 0 and "analyst" in r.stdout, r.stderr
        assert "local server is not available (it exited with status 1" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
    finally:
        _reap(home)
    assert _twh({**env, "TWH_LOCAL_SERVER": "sometimes"}, "--as", "analyst", "whoami").returncode == 2


def test_the_server_exits_when_idle_and_removes_its_socket(quiet: Settings, wh, admin) -> None:
    """...but not while its worker runs a job (a `--no-wait` submit that nobody asks about)."""
    from sandbox.catalog.db import Job

    settings = quiet.model_copy(update={"local_server_idle_minutes": 0.04, "worker_id": "local-server@test"})
    folder = ls.private_folder(quiet.home)
    server = _Server(settings, folder)
    # it answers: its start-up (which ends the jobs its identity held before) is over
    assert ls._client(folder, None)._call("GET", "/v1/local/status")["pid"] == os.getpid()
    with wh.ctx.db.transaction() as s:
        s.add(Job(id="job_running", tenant="t", submitted_by="analyst", purpose="p", datasets=[], state="running",
                  code_sha256="0" * 64, spec={}, worker_id="local-server@test"))
    server.thread.join(5)  # past its idle time (2.4 s)
    assert server.thread.is_alive(), "idle while its own job runs"
    with wh.ctx.db.transaction() as s:
        s.get(Job, "job_running").state = "failed"
    server.thread.join(30)
    assert not server.thread.is_alive()
    assert not (folder / ls.SOCKET_NAME).exists() and not (folder / ls.SERVER_FILE).exists()


def test_off_keeps_every_command_in_its_own_process(home: Path) -> None:
    r = _twh(_env(home, TWH_LOCAL_SERVER="off"), "--as", "analyst", "whoami")
    assert r.returncode == 0 and r.stderr == ""
    assert not (home / ls.FOLDER).exists()


def test_the_fingerprint_follows_the_code_and_the_settings(tmp_path: Path) -> None:
    base = {"TWH_ENGINE": "duckdb", "TWH_USER": "a", "TWH_LANG": "en"}
    fp = ls.fingerprint(tmp_path, base)
    assert fp == ls.fingerprint(tmp_path, {**base, "TWH_USER": "b", "TWH_LANG": "zh-CN"})  # the invocation's own
    assert fp != ls.fingerprint(tmp_path, {**base, "TWH_JOB_WALL_SECONDS": "5"})
    assert fp != ls.fingerprint(tmp_path / "other", base)
    src = ROOT / "sandbox" / "errors.py"
    st = src.stat()
    try:
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        assert ls.fingerprint(tmp_path, base) != fp
    finally:
        os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ls.fingerprint(tmp_path, base) == fp


def test_exchange_reads_lengths_and_chunks_and_refuses_what_is_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "s"
    answers = [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}",
               b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"b\r\n4\r\n\":2}\r\n0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\ncontent-length: 70\r\n\r\n{}",
               b"garbage"]
    seen: list[bytes] = []
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)

    def serve() -> None:
        for answer in answers:
            conn, _ = listener.accept()
            with conn:
                seen.append(conn.recv(65536))
                conn.sendall(answer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = ls.exchange(path, "POST", "/v1/x?y=1", {"X-Twh-Act-As": "analyst"}, b"{}", 5)
        assert (r.status_code, r.json(), r.headers["content-type"]) == (200, {"a": 1}, "application/json")
        assert seen[0].startswith(b"POST /v1/x?y=1 HTTP/1.1\r\n") and b"\r\nX-Twh-Act-As: analyst\r\n" in seen[0]
        assert seen[0].endswith(b"Content-Length: 2\r\nX-Twh-Act-As: analyst\r\n\r\n{}")
        r = ls.exchange(path, "GET", "/", {}, b"", 5)
        assert (r.status_code, r.json()) == (404, {"b": 2})
        for _ in range(2):
            with pytest.raises(OSError):
                ls.exchange(path, "GET", "/", {}, b"", 5)
    finally:
        t.join(5)
        listener.close()
    with pytest.raises(Exception, match="does not exist"):
        ls._client(tmp_path, "analyst\r\nX-Evil: 1")
