"""Local mode through a warm per-home server (``TWH_LOCAL_SERVER=auto``, the default), and
``twh local-server status|stop``.

A local-mode command (``twh --home H --as USER ...``, no ``--url``) in one fresh process imports
the whole warehouse and opens it (~1.4 s) for a job that runs in tens of milliseconds. Like the
gradle or mypy daemons, the first command starts a server for the home (detached: the API of
:mod:`sandbox.interfaces.api` and its job worker, on a Unix socket in ``H/.local-server/``, a
0700 folder; :mod:`sandbox.interfaces.api.local`) and every command then talks HTTP to it as the
OS user who owns the home acting as ``--as USER``. The gates, audit records and checks are the
server's — the same code a command would run in its own process.

- One server per home: starting takes the folder's lock file, so two commands starting at once
  make one server; a dead server's socket is removed and replaced.
- The server records a fingerprint of the code (every source file's name, size and mtime) and of
  the settings it was started with (the ``TWH_*`` environment, the home); a command that finds
  another fingerprint stops that server and starts a fresh one.
- It exits after ``TWH_LOCAL_SERVER_IDLE_MINUTES`` (default 15) without a request.
- A command whose server cannot be started or reached goes on in its own process, saying so on
  one line of stderr: the server never makes a command fail.
- ``TWH_LOCAL_SERVER=off`` (the tests' default) keeps every command in its own process; so does
  ``--engine`` (a one-command override that a shared server cannot honour).

The commands (``twh local-server status|stop``, and ``run``, which a command starts detached)
are in :mod:`.local_server_cmd`; this module is what :meth:`.output.Ctx.client` uses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import json as _json
import os
import socket
import stat
import sys
import time
from pathlib import Path

from ...errors import InvalidInput
from ...i18n import _

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any

#: the folder inside the home: the socket, the server's record, its log and the start lock
FOLDER = ".local-server"
SOCKET_NAME = "sock"  # = sandbox.interfaces.api.local.SOCKET_NAME (not imported: that pulls in the API)
SERVER_FILE = "server.json"
#: environment the server's settings do not depend on (the invocation's own options)
_NOT_SETTINGS = {"TWH_USER", "TWH_TOKEN", "TWH_URL", "TWH_LANG", "TWH_HOME", "TWH_LOCAL_SERVER"}
#: the packages whose code the server runs
_PACKAGES = ("sandbox", "policies", "dp", "connectors")
START_SECONDS = 60.0

class Unavailable(Exception):
    """The local server cannot be used for this command (the reason is the message)."""


def mode(environ: Any = None) -> str:
    """``TWH_LOCAL_SERVER``: ``auto`` (default) or ``off`` (:attr:`sandbox.settings.Settings.local_server`)."""
    value = (os.environ if environ is None else environ).get("TWH_LOCAL_SERVER", "auto").strip().lower() or "auto"
    if value not in ("auto", "off"):
        raise InvalidInput(f"TWH_LOCAL_SERVER={value!r}: use auto or off", details={"field": "local_server"})
    return value


def code_digest() -> str:
    """A digest of the code a server would run: each source file's path, size and mtime (a
    changed or reinstalled checkout changes it) and the interpreter."""
    h = hashlib.sha256(f"{sys.executable}\0{sys.version}".encode())
    for name in _PACKAGES:
        spec = importlib.util.find_spec(name)
        for root in (spec.submodule_search_locations or []) if spec else []:
            todo = [root]
            while todo:
                with os.scandir(todo.pop()) as entries:
                    for e in sorted(entries, key=lambda e: e.name):
                        if e.is_dir(follow_symlinks=False):
                            if e.name != "__pycache__":
                                todo.append(e.path)
                        elif e.name.endswith((".py", ".yaml", ".json", ".toml", ".sql")):
                            st = e.stat(follow_symlinks=False)
                            h.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def fingerprint(home: Path, environ: Any = None) -> str:
    """What a server must match to serve this command: the code and the settings' inputs."""
    env = os.environ if environ is None else environ
    settings = sorted((k, v) for k, v in env.items() if k.startswith("TWH_") and k not in _NOT_SETTINGS)
    return hashlib.sha256(json.dumps([str(home), settings, code_digest()]).encode()).hexdigest()


def private_folder(home: Path) -> Path:
    """``home/.local-server``, made 0700 if missing; refused unless it is a real folder of this
    user that nobody else can read or enter (another user's socket must never be trusted)."""
    folder = home / FOLDER
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise Unavailable(f"cannot make {folder}: {exc.strerror}") from None
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise Unavailable(f"{folder} is not a private folder of this user (mode {oct(st.st_mode & 0o777)}, "
                          f"owner {st.st_uid})")
    return folder


def _record(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None


def connect_unix(path: Path, timeout: float | None = None) -> socket.socket:
    """A stream socket connected to the Unix socket ``path`` (through ``/proc/self/fd`` of its
    folder when the path is longer than a socket's name may be: a deep home)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    address, fd = str(path), None
    try:
        if len(os.fsencode(address)) >= 100:
            fd = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            address = f"/proc/self/fd/{fd}/{path.name}"
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    finally:
        if fd is not None:
            os.close(fd)
    return sock


class _Answer:
    """The little of an ``httpx.Response`` that :class:`sandbox.interfaces.client.Client` reads."""

    def __init__(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers}
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def exchange(sock: Path, method: str, target: str, headers: dict[str, str], body: bytes,
             timeout: float | None) -> _Answer:
    """One HTTP/1.1 request and its answer on the Unix socket ``sock`` (``Connection: close``), by
    :func:`~sandbox.interfaces.client_plain.http11`: the standard library's ``http.client`` would
    pull in the ``email`` package for its headers (~15 ms of a short command). Failures, an answer
    cut short or not HTTP included, are ``OSError``."""
    from ..client_plain import http11

    conn = connect_unix(sock, timeout)
    try:
        status, pairs, content = http11(conn, method, target, "local-server",
                                        {"Connection": "close", "Content-Length": str(len(body)), **headers}, body)
    except ValueError as exc:  # a header with a line break, or a malformed length: never sent or trusted
        raise OSError(str(exc)) from None
    finally:
        conn.close()
    return _Answer(status, pairs, content)


def _client(folder: Path, user: str | None, *, timeout: float = 600.0) -> Any:
    from ...errors import NotFound
    from ..client import ACT_AS_HEADER, Client, checked

    if user and not (user.isascii() and user.isprintable()):  # no user has such a name; never a header
        raise NotFound(f"user {user!r} does not exist; add it with `twh user add`")

    class LocalServerClient(Client):
        """:class:`Client` on the home's socket, acting as ``user`` (no token). Requests go over
        the socket (:func:`exchange`), without importing httpx (~50 ms of a short command); an
        upload (``files=``) goes through httpx with :class:`~sandbox.interfaces.client_transport.UnixHTTPTransport`.
        ``submit_job`` returns once the job has run, as local mode in one process does (a script's
        next command finds the export), even where the submitter's own view is final at once
        (``awaiting_review``)."""

        def __init__(self) -> None:  # noqa: D107 - no httpx client until an upload needs one
            self._client = None
            self._plain = None
            self._transport = None
            self._sock = folder / SOCKET_NAME
            self._headers = {ACT_AS_HEADER: user or "", "Accept": "application/json"}

        def close(self) -> None:
            if self._client is not None:
                self._client.close()

        def _send(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None,
                  data: dict[str, Any] | None = None, files: Any = None, timeout: float | None = None) -> Any:
            from urllib.parse import urlencode

            from ...errors import TwhError

            if files is not None:
                if self._transport is None:
                    from ..client_transport import UnixHTTPTransport

                    Client.__init__(self, "http://local-server", None, act_as=user or "", timeout=timeout_s,
                                    transport=UnixHTTPTransport(self._sock))
                return super()._send(method, path, params=params, data=data, files=files)
            headers = dict(self._headers)
            body = b""
            if json is not None:
                body = _json.dumps(json).encode()
                headers["Content-Type"] = "application/json"
            elif data:
                body = urlencode(data).encode()
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            target = path + ("?" + urlencode({k: v for k, v in params.items() if v is not None}) if params else "")
            try:
                r = exchange(self._sock, method, target, headers, body, timeout or timeout_s)
            except OSError as exc:
                raise TwhError(f"cannot reach the local server: {exc or type(exc).__name__}",
                               details={"unreachable": True}) from None
            return checked(r, "the local server")

        def submit_job(self, job_dir: str | Path, *, wait: bool = True, timeout: float = 600) -> dict[str, Any]:
            if not wait:
                return super().submit_job(job_dir, wait=False)
            import base64

            from ...jobs.folder import read_job_folder

            files = read_job_folder(Path(job_dir))  # as Client.submit_job: the server checks job.yaml
            return self._call("POST", "/v1/local/jobs", params={"timeout": timeout}, timeout=timeout + 30,
                              json={"files": {n: base64.b64encode(b).decode() for n, b in files.items()}})

    timeout_s = timeout
    return LocalServerClient()


def _answers(folder: Path) -> dict[str, Any] | None:
    """The live server's own status, or ``None`` (no server, or a dead one's socket)."""
    from ...errors import TwhError

    c = _client(folder, None, timeout=5.0)
    try:
        return c._call("GET", "/v1/local/status")
    except TwhError:
        return None
    finally:
        c.close()


def _stop(folder: Path, pid: int | None) -> bool:
    """Ask the server to exit and wait (10 s) for it; ``False`` if nothing answered."""
    from ...errors import TwhError

    c = _client(folder, None, timeout=5.0)
    try:
        c._call("POST", "/v1/local/stop")
    except TwhError:
        return False
    finally:
        c.close()
    deadline = time.monotonic() + 10
    while pid and time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        except PermissionError:  # not ours: it cannot be our server
            break
        time.sleep(0.02)
    return True


class _Lock:
    def __init__(self, path: Path, wait_s: float) -> None:
        import fcntl

        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise Unavailable("another command has been starting the server for too long") from None
                time.sleep(0.02)

    def __enter__(self) -> _Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # closing drops the lock


def _is_up(folder: Path, want: str) -> bool:
    rec = _record(folder)
    if not rec or rec.get("fingerprint") != want:
        return False
    try:
        connect_unix(folder / SOCKET_NAME, 5.0).close()
        return True
    except OSError:
        return False


def ensure_server(home: Path, environ: Any = None) -> Path:
    """The folder of a live server of ``home`` with this code and these settings, started if
    need be; :class:`Unavailable` if that cannot be done."""
    env = dict(os.environ if environ is None else environ)
    folder = private_folder(home)
    want = fingerprint(home, env)
    if _is_up(folder, want):
        return folder
    with _Lock(folder / "start.lock", START_SECONDS):
        if _is_up(folder, want):  # another command started it while this one waited
            return folder
        rec = _record(folder)
        if rec is not None:  # another code or settings, or dead: stop it if it answers, then replace
            _stop(folder, rec.get("pid"))
            for name in (SOCKET_NAME, SERVER_FILE):
                try:
                    os.unlink(folder / name)
                except FileNotFoundError:
                    pass
        import subprocess  # (with signal, selectors: only when a server is started)

        env["TWH_HOME"] = str(home)
        with open(folder / "server.log", "ab") as log:
            os.chmod(folder / "server.log", 0o600)
            proc = subprocess.Popen([sys.executable, "-m", "sandbox.interfaces.cli", "--home", str(home),
                                     "local-server", "run", "--fingerprint", want],
                                    env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise Unavailable(f"it exited with status {proc.returncode} (see {folder / 'server.log'})")
            rec = _record(folder)
            if rec and rec.get("pid") == proc.pid and _is_up(folder, want):
                return folder
            time.sleep(0.02)
        proc.terminate()
        raise Unavailable(f"it did not start in {START_SECONDS:.0f} s (see {folder / 'server.log'})")


def client_for(home: Path, user: str) -> Any | None:
    """Local mode's client through the home's server, or ``None`` after a one-line notice on stderr
    (the command then runs in its own process, as with ``TWH_LOCAL_SERVER=off``)."""
    if not home.is_dir():  # a home that does not exist yet: the in-process path reports it as before
        return None
    try:
        folder = ensure_server(home)
    except (Unavailable, OSError) as exc:
        print(_("note: the local server is not available ({why}); running in this process").format(why=exc),
              file=sys.stderr)
        return None
    return _client(folder, user)
