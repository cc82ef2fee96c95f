"""The per-run uid: leasing a fresh one, and finding and killing its processes.

Every run gets a uid no other process uses, so "all processes of the run" is exactly "all
processes whose real uid is U" — including ones that escaped the pid namespace's teardown race
or were re-parented. Where the host gives the run a cgroup, its member list is that same set
(every process of the run starts in it and none can leave it) and is read instead of scanning
every process on the host; the uid is still checked before each signal. Signals go through
pidfds after checking the uid, so a recycled pid of an unrelated process is never hit.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import SandboxError

_REAP_TIMEOUT_SECONDS = 5.0
_UID_BASE, _UID_SPAN = 200_000, 50_000
_UID_LOCK_FILE = Path("/run/twh-sandbox-uids.lock")


def _status(pid: str) -> tuple[int, str] | None:
    """``(real uid, state letter)`` of a process, or ``None`` if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(fd, 4096)  # State and Uid are within the first few hundred bytes
    except OSError:
        return None
    finally:
        os.close(fd)
    at = text.find(b"\nState:\t")
    state = text[at + 8:at + 9].decode("ascii", "replace") if at >= 0 else "?"
    at = text.find(b"\nUid:\t")
    if at < 0:
        return -1, state
    end = text.find(b"\t", at + 6)
    try:
        return int(text[at + 6:end]), state
    except ValueError:
        return -1, state


def processes_of_uid(uid: int, *, include_zombies: bool = False) -> list[int]:
    """Pids whose real uid is ``uid``; zombies (which can no longer act) only if asked."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _status(name)
        if st is None or st[0] != uid:
            continue
        if st[1] in ("Z", "X") and not include_zombies:
            continue
        pids.append(int(name))
    return pids


def run_processes(uid: int, procs: str | None, also: tuple[int | None, ...] = ()) -> list[int]:
    """The live processes of a run: its cgroup's members when it has one (none of them can leave
    it: moving a process means writing a file only root may write), else every process of ``uid``.
    Zombies, which can no longer act, are in neither list.

    A process leaves the cgroup's list as it exits, once its memory and files are released
    (``cgroup_exit`` comes after ``exit_mm`` and ``exit_files`` in the kernel's ``do_exit``), but
    before it is a zombie. Only a pid namespace's init lingers there — it waits for the rest of its
    namespace — so the pids in ``also`` (the run's init) are checked by uid and state as well."""
    if procs is None:
        return processes_of_uid(uid)
    try:
        with open(procs, "rb") as f:
            pids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return processes_of_uid(uid)
    for pid in also:
        if pid is not None and pid not in pids:
            st = _status(str(pid))
            if st is not None and st[0] == uid and st[1] not in ("Z", "X"):
                pids.append(pid)
    return pids


def kill_verified(pid: int, uid: int) -> bool:
    """SIGKILL ``pid`` only if it still belongs to ``uid``. True if a signal was sent."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        # The pidfd pins the process we opened; if the pid was recycled since, the check below
        # sees the newcomer and a signal through the pidfd cannot reach it either.
        st = _status(str(pid))
        if st is None or st[0] != uid:
            return False
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(pidfd)


def reap_uid(uid: int, timeout: float = _REAP_TIMEOUT_SECONDS) -> set[int]:
    """Kill every process of ``uid`` until none is left; return the pids signalled.

    Raises :class:`SandboxError` if some survive ``timeout`` (then the outputs must not be read).
    """
    return reap_run(uid, None, timeout=timeout)


def reap_run(uid: int, procs: str | None, also: tuple[int | None, ...] = (),
             timeout: float = _REAP_TIMEOUT_SECONDS) -> set[int]:
    """Kill every process of the run (:func:`run_processes`) until none is left; return the pids
    signalled. Raises :class:`SandboxError` if some survive ``timeout``."""
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        alive = run_processes(uid, procs, also)
        if not alive:
            return killed
        if time.monotonic() > deadline:
            raise SandboxError(f"{len(alive)} sandbox process(es) could not be killed")
        for pid in alive:
            if kill_verified(pid, uid):
                killed.add(pid)
        time.sleep(pause)  # SIGKILLed processes take a moment to exit
        pause = min(pause * 2, 0.02)


_uid_lock = threading.Lock()
_uids_in_use: set[int] = set()
_uid_lock_fd: int | None = None


def _cross_process_lock(uid: int) -> bool:
    """Lock byte ``uid`` of one root-owned file so concurrent supervisors never share a uid."""
    global _uid_lock_fd
    if _uid_lock_fd is None:  # opened once: closing any fd of the file drops all our locks
        try:
            _uid_lock_fd = os.open(_UID_LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError:
            return True  # no /run: processes are still checked, and uids are drawn at random
    try:
        fcntl.lockf(_uid_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, uid)
    except OSError:
        return False
    return True


def _cross_process_unlock(uid: int) -> None:
    if _uid_lock_fd is not None:
        fcntl.lockf(_uid_lock_fd, fcntl.LOCK_UN, 1, uid)


@contextmanager
def uid_lease() -> Iterator[int]:
    """Hold a uid from a high range that no process uses and no other run of any supervisor
    holds. RLIMIT_NPROC then counts only this run, and the leftover scan is exact."""
    for _ in range(200):
        uid = _UID_BASE + secrets.randbelow(_UID_SPAN)
        with _uid_lock:
            if uid in _uids_in_use or not _cross_process_lock(uid):
                continue
            if processes_of_uid(uid, include_zombies=True):
                _cross_process_unlock(uid)
                continue
            _uids_in_use.add(uid)
        break
    else:
        raise SandboxError("no free sandbox uid found")
    try:
        yield uid
    finally:
        with _uid_lock:
            _uids_in_use.discard(uid)
            _cross_process_unlock(uid)
