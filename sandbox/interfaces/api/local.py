"""The per-home local server: the HTTP API of :mod:`.app` (with its job worker) on a Unix socket
inside the home, so that local-mode commands (``twh --as USER``, no ``--url``) find the catalog,
the engines and the imports already loaded instead of loading them in every process
(:mod:`sandbox.interfaces.cli.local_server` starts it, finds it and stops it).

Who may act: local mode lets the OS user who owns the home act as any warehouse user (``--as``);
the server keeps exactly that and no more. Its socket lies in a 0700 folder and is itself 0600;
every accepted connection's peer is read with ``SO_PEERCRED`` and a peer whose uid is neither the
server's nor root's is closed before a byte is read (:func:`peer_checked_protocol`); the uid of an
accepted peer goes into each request's scope (``PEER_UID``), and only then does the API honour
the act-as header (:func:`sandbox.interfaces.api.app._acting`). ``twh serve`` on TCP sets neither.

Nothing else differs from ``twh serve``: the same routes, gates, audit records and checks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, Query
from sqlalchemy import select

from ...auth import Principal
from ...catalog.db import Job
from ...catalog.states import JobState
from ...settings import Settings
from .app import PEER_UID, JobIn, create_app, current_principal

__all__ = ["SERVER_FILE", "SOCKET_NAME", "allowed_uids", "bind_socket", "peer_checked_protocol", "peer_uid", "serve_local"]

log = logging.getLogger(__name__)

#: the socket's file name inside the local server's folder
SOCKET_NAME = "sock"
#: the running server's record (pid, fingerprint, start time), written once it listens
SERVER_FILE = "server.json"
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
_UNDERWAY = {JobState.QUEUED.value, JobState.RUNNING.value, JobState.GATING.value}


def peer_uid(sock: Any) -> int | None:
    """The uid of the process at the other end of a connected Unix socket (the kernel's record
    of who connected, ``SO_PEERCRED``; the peer cannot choose it), or ``None`` if unknown."""
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    except (OSError, AttributeError):
        return None
    return _CRED.unpack(raw)[1]


def allowed_uids(own: int | None = None) -> frozenset[int]:
    """Who may talk to this home's local server: its own OS user (the home's owner) and root."""
    return frozenset({os.getuid() if own is None else own, 0})


def peer_checked_protocol(uids: frozenset[int]) -> type:
    """uvicorn's h11 protocol class with the peer check (made here: only the server imports uvicorn)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class PeerChecked(H11Protocol):  # type: ignore[misc]
        """uvicorn's HTTP/1.1 protocol, refusing a peer of another user when it connects and
        telling the app the peer's uid in every request's scope."""

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            uid = peer_uid(transport.get_extra_info("socket"))
            super().connection_made(transport)
            if uid is None or uid not in uids:
                log.warning("refused a connection from uid %s on the local-server socket", uid)
                transport.close()
                return
            inner = self.app

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                scope[PEER_UID] = uid
                await inner(scope, receive, send)

            self.app = app

    return PeerChecked


def bind_socket(folder: Path) -> socket.socket:
    """A listening Unix socket at ``folder/SOCKET_NAME``, mode 0600 from birth (umask), replacing a
    stale file there (the caller holds the start lock and has found no live server)."""
    path = folder / SOCKET_NAME
    from ..client_transport import unix_address

    dir_fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        sock.bind(unix_address(path, dir_fd))
        os.chmod(path, 0o600)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    finally:
        os.umask(old)
        os.close(dir_fd)
    return sock


def serve_local(settings: Settings, folder: Path, fingerprint: str, *, ready: threading.Event | None = None,
                uids: frozenset[int] | None = None, stop: threading.Event | None = None) -> None:
    """Run the local server on ``folder``'s socket until stopped (``POST /v1/local/stop``, a signal,
    ``stop``) or idle for ``settings.local_server_idle_minutes``; remove the socket and the record
    on the way out (only if they are still this process's: a newer server may have replaced them).
    ``uids``: who may connect (default: this process's user and root)."""
    import uvicorn

    app = create_app(settings)
    wh = app.state.warehouse
    app.state.act_as_uids = uids if uids is not None else allowed_uids()
    idle_s = settings.local_server_idle_minutes * 60
    last = [time.monotonic()]
    started = time.time()

    @app.get("/v1/local/status", include_in_schema=False)
    def status() -> dict[str, Any]:
        return {"pid": os.getpid(), "fingerprint": fingerprint, "started": started,
                "idle_exit_minutes": settings.local_server_idle_minutes, "home": str(settings.home)}

    def wait(who: Principal, job_id: str, timeout: float) -> dict[str, Any]:
        """Wait until the job has left queued/running/gating (or ``timeout``), then answer it as
        ``who`` may see it."""
        deadline = time.monotonic() + timeout

        def underway() -> bool:
            with wh.ctx.db.read() as s:
                return s.execute(select(Job.state).where(Job.id == job_id)).scalar_one() in _UNDERWAY

        # This server's worker notifies `finished` after each job; the state is read holding it, so
        # a job that ends between the read and the wait still wakes this one. Another process's
        # worker (`twh worker` on this home) does not notify: the wait also ends each 0.25 s.
        finished = app.state.jobs_finished
        with finished:
            while underway() and (left := deadline - time.monotonic()) > 0:
                finished.wait(min(left, 0.25))
        return wh.jobs.get(who, job_id)

    @app.post("/v1/local/jobs/{job_id}/wait", include_in_schema=False)
    def wait_job(job_id: str, who: Annotated[Principal, Depends(current_principal)],
                 timeout: float = Query(default=600.0, gt=0, le=86400)) -> dict[str, Any]:
        """Local mode's ``job submit`` returns once the job has run, as when the command runs it in
        its own process (a script's next command finds the export there): wait until the job has
        left queued/running/gating, then answer the job as ``who`` may see it. Only the timing is
        learnt, which the in-process command gives its owner too; the job must be visible to ``who``."""
        wh.jobs.get(who, job_id)  # not_found unless who may see it
        return wait(who, job_id, timeout)

    @app.post("/v1/local/jobs", include_in_schema=False, status_code=201)
    def submit_and_wait(body: Annotated[JobIn, Body()], who: Annotated[Principal, Depends(current_principal)],
                        timeout: float = Query(default=600.0, gt=0, le=86400)) -> dict[str, Any]:
        """``POST /v1/jobs`` then ``/v1/local/jobs/{id}/wait`` in one request (local mode's ``job
        submit``: one round trip less): the same checks, the same queue and worker, and the same
        answer — the job as ``who`` sees it once it has run."""
        job = app.state.submit_job(who, body.files)
        return wait(who, job["id"], timeout)

    @app.post("/v1/local/stop", include_in_schema=False)
    def stop_route() -> dict[str, Any]:
        server.should_exit = True
        return {"stopping": os.getpid()}

    async def touched(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            last[0] = time.monotonic()
        await app(scope, receive, send)

    config = uvicorn.Config(touched, http=peer_checked_protocol(app.state.act_as_uids), lifespan="on",
                            log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    sock = bind_socket(folder)
    inode = os.stat(folder / SOCKET_NAME).st_ino
    record = folder / SERVER_FILE
    tmp = folder / f".{SERVER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "fingerprint": fingerprint, "started": started}))
    os.replace(tmp, record)

    halt = stop or threading.Event()

    def busy() -> bool:
        """A job this server's worker runs (a ``--no-wait`` submit): idle only once it is done."""
        try:
            with wh.ctx.db.read() as s:
                return s.execute(select(Job.id).where(Job.worker_id == wh.settings.worker_id,
                                                      Job.state.in_(_UNDERWAY)).limit(1)).first() is not None
        except Exception:  # noqa: BLE001 - the catalog unreachable: nothing to wait for here
            return False

    def watch() -> None:
        while not server.should_exit:
            if halt.wait(min(idle_s / 4, 5.0)):
                server.should_exit = True
            elif time.monotonic() - last[0] > idle_s and not busy():
                log.info("local server idle for %.0f s: exiting", idle_s)
                server.should_exit = True

    threading.Thread(target=watch, name="twh-local-idle", daemon=True).start()
    if ready is not None:
        ready.set()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        _remove_if_ours(folder / SOCKET_NAME, lambda p: os.stat(p).st_ino == inode)
        _remove_if_ours(record, lambda p: json.loads(p.read_text()).get("pid") == os.getpid())


def _remove_if_ours(path: Path, ours: Any) -> None:
    try:
        if ours(path):
            path.unlink()
    except (OSError, ValueError):
        pass
