"""The supervisor's side of the pre-forked launcher (:mod:`sandbox.isolation.stage`).

    proc = spawn(spec, {"stdout": w1, "stderr": w2, "broker": s, "info": w3, "seccomp": r, "out": m})
    proc.pid, proc.wait(timeout), proc.kill()        # the run's bwrap, as a Popen-like handle

One launcher server per supervisor process, started on first use (or ahead of it by
:func:`prestart`, so that a one-run process such as ``twh job submit`` overlaps its start-up with
other work), restarted if it died. Each run sends its spec and fds on the shared control socket and
gets its reports (the child's pidfd, then its wait status) on a socket of its own, so concurrent
runs from several threads never read each other's answers. A forked copy of the supervisor drops
the parent's launcher and starts its own when it needs one.
"""

from __future__ import annotations

import atexit
import marshal
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from .stage import FDS

__all__ = ["Launched", "launcher_pid", "prestart", "spawn"]

_SCRIPT = Path(__file__).with_name("stage.py")
_SAFE_PATH = "/usr/bin:/bin"
_ANSWER_SECONDS = 30.0  # the server answers as soon as it has forked


class Launched:
    """A run's bwrap process, started by the launcher server (a child of it, not of us)."""

    def __init__(self, pid: int, pidfd: int, report: socket.socket) -> None:
        self.pid = pid
        self.pidfd = pidfd
        self._report = report
        self.returncode: int | None = None

    def _read_exit(self, timeout: float | None) -> None:
        if self.returncode is not None:
            return
        if not select.select([self._report], [], [], timeout)[0]:
            return
        msg = self._report.recv(4096)
        kind, value = marshal.loads(msg) if msg else ("lost", None)
        # The server died before reaping it: the run's pid namespace and bwrap die with it
        # (--die-with-parent); report it as killed.
        self.returncode = os.waitstatus_to_exitcode(value) if kind == "exit" else -signal.SIGKILL
        self.close()

    def poll(self) -> int | None:
        self._read_exit(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        self._read_exit(timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self._report.close()


class _Server:
    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_SCRIPT), "--serve", str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, pass_fds=(theirs.fileno(),),
                env={"PATH": _SAFE_PATH}, cwd="/",
            )
        except OSError as exc:
            ours.close()
            raise SandboxError(f"could not start the sandbox launcher: {exc.strerror}") from exc
        finally:
            theirs.close()
        self.ctl = ours

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.ctl.close()  # the server sees EOF, kills what it still runs, and exits
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_lock = threading.Lock()
_server: _Server | None = None


def _current() -> _Server:
    global _server
    with _lock:
        if _server is None or not _server.alive():
            if _server is not None:
                _server.close()
            _server = _Server()
        return _server


def prestart() -> None:
    """Start the launcher server now (it takes one Python start-up), if it is not running."""
    _current()


def launcher_pid() -> int | None:
    """The server's pid (tests check that a sandbox cannot reach it)."""
    return _server.proc.pid if _server is not None and _server.alive() else None


def spawn(spec: dict[str, Any], fds: dict[str, int]) -> Launched:
    """Start one run's bwrap from ``spec`` (see :mod:`.stage`) with ``fds`` (named as in ``FDS``,
    but for the report socket, which is made here). The caller still owns and closes ``fds``."""
    payload = marshal.dumps(spec)
    for attempt in (1, 2):
        server = _current()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            try:
                socket.send_fds(server.ctl, [payload], [theirs.fileno(), *(fds[name] for name in FDS[1:])])
            except OSError as exc:
                if attempt == 2:
                    raise SandboxError(f"the sandbox launcher is unreachable: {exc.strerror}") from exc
                continue  # it died since we last looked: start a new one
            finally:
                theirs.close()
            deadline = time.monotonic() + _ANSWER_SECONDS
            if not select.select([mine], [], [], _ANSWER_SECONDS)[0]:
                raise SandboxError("the sandbox launcher did not answer")
            msg, got, _flags, _addr = socket.recv_fds(mine, 1 << 16, 1)
            if not msg:
                for fd in got:
                    os.close(fd)
                if attempt == 2 or time.monotonic() > deadline:
                    raise SandboxError("the sandbox launcher went away")
                continue
            kind, value = marshal.loads(msg)
            if kind != "started" or len(got) != 1:
                for fd in got:
                    os.close(fd)
                raise SandboxError(f"the sandbox launcher could not start the run: {value}")
            launched = Launched(int(value), got[0], mine)
            mine = None  # type: ignore[assignment] - the handle owns it now
            return launched
        finally:
            if mine is not None:
                mine.close()
    raise SandboxError("the sandbox launcher is unreachable")


def _forget_in_child() -> None:
    # A forked supervisor must not share our server: its end would keep the server alive after
    # we die, and its runs would interleave with ours on one socket.
    global _server, _lock
    _lock = threading.Lock()
    if _server is not None:
        try:
            _server.ctl.close()
        except OSError:
            pass
    _server = None


def _stop() -> None:
    global _server
    if _server is not None:
        _server.close()
        _server = None


os.register_at_fork(after_in_child=_forget_in_child)
atexit.register(_stop)
