"""Fixtures for the connector tests: a throwaway PostgreSQL cluster and a local CKAN-like server."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

_PG_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)] if Path(
    "/usr/lib/postgresql").exists() else []


def _pg_bin() -> Path | None:
    for d in _PG_DIRS:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL server in a temp dir (owned by user postgres, or nobody), torn down after.

    Skipped only where the server binaries are missing and CI is not set: in CI they are
    installed by .ci/run, and their absence fails the tests instead."""
    bindir = _pg_bin()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are missing in CI: .ci/run should install them")
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    user = "postgres"
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        user, pw = "nobody", pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="twh-pg-"))  # pytest's tmp dirs are 0700 root: the server user needs in
    base.chmod(0o755)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    for p in (base, sock):
        os.chown(p, pw.pw_uid, pw.pw_gid)

    def as_user(*cmd: str, **kw: Any) -> subprocess.CompletedProcess:
        prefix = [] if os.geteuid() == pw.pw_uid else ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                                                       "--init-groups"]
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, check=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(base)}, cwd=base, **kw)

    port = _free_port()
    as_user(str(bindir / "initdb"), "-D", str(data), "-U", "twh", "--auth=trust", "-E", "UTF8", "--no-sync")
    as_user(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o",
            f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        yield f"postgresql+psycopg://twh@127.0.0.1:{port}/postgres"
    finally:
        as_user(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


class Ckan:
    """A CKAN ``datastore_search`` endpoint serving ``records``; tests mutate it mid-read."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.requests = 0
        #: hooks: called with (offset, request number) before answering; may return (status, body)
        self.before: Callable[[int, int], tuple[int, bytes] | None] | None = None
        self.delay_s = 0.0

    def answer(self, offset: int, limit: int) -> tuple[int, bytes]:
        self.requests += 1
        if self.before is not None:
            hooked = self.before(offset, self.requests)
            if hooked is not None:
                return hooked
        if self.delay_s:
            time.sleep(self.delay_s)
        page = self.records[offset:offset + limit]
        body = {"success": True, "result": {"records": page, "total": len(self.records),
                                            "fields": [{"id": k} for k in (page[0] if page else {})]}}
        return 200, json.dumps(body).encode()


@pytest.fixture
def ckan() -> Iterator[tuple[Ckan, str]]:
    state = Ckan()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            q = parse_qs(urlparse(self.path).query)
            status, body = state.answer(int(q.get("offset", ["0"])[0]), int(q.get("limit", ["100"])[0]))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/api/3/action/datastore_search"
    finally:
        server.shutdown()
        server.server_close()
