"""The root-side launcher: a pre-forked, single-threaded server that starts every run's sandbox.

Started once per supervisor process by :mod:`sandbox.isolation.launcher` as
``python -I -S stage.py --serve FD`` (stdlib only; it is a script, not imported there). For each
run it **forks a fresh child**, which

1. puts the run's pipes on stdin (``/dev/null``), stdout and stderr,
2. joins the run's cgroup(s), and a fresh, empty session keyring (the supervisor's may hold
   secrets, and a session keyring is inherited across ``setuid``),
3. enters a private mount namespace (nothing leaks into the host's mount table and it vanishes
   with the last sandbox process), opens each source, mounts a small tmpfs on the staging point
   and binds each source to ``<stage>/<name>``; over each such bind, mounts a read-only overlay
   at a neutral name whose top layer is a mask of whiteouts (see :mod:`sandbox.isolation.mounts`);
   writes the small files bwrap binds (``pyvenv.cfg``); attaches the supervisor's detached
   ``/out`` tmpfs,
4. moves the broker socket to fd 3, the bwrap info pipe to fd 4 and the seccomp program to
   fd 5, closes every other fd,
5. sets the run's rlimits (CPU, address space, processes, file size, open files, no core dumps),
   drops to the per-run uid U (real, effective and saved uid and gid; no supplementary groups;
   every capability gone with the uid) and sets ``no_new_privs``,
6. ``exec``s bwrap, which keeps the child's pid.

Steps 5 and 6 are what ``prlimit … setpriv --reuid U --regid U --clear-groups --no-new-privs``
did as two more programs. Why a server: a Python start-up per run was the largest part of a
sandbox's overhead; a fork of this small process costs a fraction of a millisecond, and every
step above still runs afresh in each run's own child (its own namespaces, keyring, cgroup, uid,
rlimits; the seccomp program is a fresh pipe per run). It must be a separate, single-threaded
process: the child changes its mount namespace and credentials, which a threaded supervisor must
not do, and forking a threaded process is unsafe.

Protocol (``AF_UNIX``/``SOCK_SEQPACKET``, one message per datagram). The supervisor sends the
run's SPEC (a dict, marshalled: ``json`` would cost more to import than everything else here)
with seven fds (``SCM_RIGHTS``), in the order of :data:`FDS`: a socket for this run's reports,
stdout, stderr, the broker socket, the info pipe, the seccomp program and the ``/out`` mount.
On that report socket the server answers ``("started", pid)`` with a pidfd of the child, then
``("exit", wait status)`` once it has reaped it (or ``("error", message)``). When the supervisor's
end closes (it exited or died), the server kills its children (bwrap's ``--die-with-parent``
then takes the sandboxes with them) and exits.

SPEC: ``{"stage": "/tmp", "binds": [[name, source], ...], "overlays": [[name, bound name,
[whiteout, ...]], ...], "files": [[name, text], ...], "cgroup_procs": [path, ...],
"rlimits": [[resource, limit], ...], "uid": U, "argv": [bwrap, ...]}``. A child whose staging
fails writes one line to the run's stderr and exits 125.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import marshal
import os
import select
import socket
import stat
import sys

CLONE_NEWNS = 0x00020000
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

#: Where the child puts the broker socket, the bwrap info pipe and the seccomp program.
BROKER_FD = 3
INFO_FD = 4
SECCOMP_FD = 5
#: The fds that come with each request, in this order.
FDS = ("report", "stdout", "stderr", "broker", "info", "seccomp", "out")
#: The largest request (the spec) the server reads.
MAX_REQUEST = 1 << 20

_KEYCTL = {"x86_64": 250, "aarch64": 219}  # keyctl(2)'s number; glibc has no wrapper
_KEYCTL_JOIN_SESSION_KEYRING = 1
_MOVE_MOUNT = 429  # the same on every architecture
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100
_PR_SET_NO_NEW_PRIVS = 38
_SIGKILL = 9

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        _libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _fresh_keyring() -> None:
    """Join a new, empty, anonymous session keyring: keys of the supervisor's stay behind."""
    nr = _KEYCTL.get(os.uname().machine)
    if nr is None:
        raise OSError(errno.ENOSYS, f"keyctl's number on {os.uname().machine} is unknown")
    if _libc.syscall(ctypes.c_long(nr), _KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        err = ctypes.get_errno()
        # No keyrings in this kernel, or a container's filter forbids them (to us and, since
        # filters are inherited, to the job): there is no keyring to leak.
        if err not in (errno.ENOSYS, errno.EPERM):
            raise OSError(err, f"keyctl(JOIN_SESSION_KEYRING): {os.strerror(err)}")


def _mask(path: str, whiteouts: list[str]) -> None:
    """An overlay layer that only hides: a character device 0/0 is overlayfs's whiteout."""
    os.mkdir(path, 0o755)
    for rel in whiteouts:
        parts = [p for p in rel.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad whiteout {rel!r}")
        parent = path
        for part in parts[:-1]:
            parent = os.path.join(parent, part)
            if not os.path.isdir(parent):
                os.mkdir(parent, 0o755)
        os.mknod(os.path.join(parent, parts[-1]), 0o000 | stat.S_IFCHR, os.makedev(0, 0))


def _stage(spec: dict, out_mount: int) -> None:
    stage = spec["stage"]
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private propagation: our mounts must never propagate back to the host namespace.
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # Open the sources *after* unshare (a mount of another namespace cannot be bound) and
    # *before* covering the staging point (a source may live under it, e.g. /tmp/...).
    fds = {name: os.open(src, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for name, src in spec["binds"]}
    _mount("twh-stage", stage, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=1m")
    for name, fd in fds.items():
        target = os.path.join(stage, name)
        os.mkdir(target, 0o755)
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND, None)
        os.close(fd)
    for name, lower, whiteouts in spec.get("overlays", []):
        mask, target = os.path.join(stage, f"m-{name}"), os.path.join(stage, name)
        _mask(mask, whiteouts)
        os.mkdir(target, 0o755)
        # Two lower layers and no upper one: a read-only overlay whose options name staging paths only.
        _mount(f"twh-{name}", target, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV,
               f"lowerdir={mask}:{os.path.join(stage, lower)}")
    for name, text in spec.get("files", []):
        path = os.path.join(stage, name)
        with open(path, "x") as f:
            f.write(text)
        os.chmod(path, 0o444)
    target = os.path.join(stage, "out")
    os.mkdir(target, 0o755)
    if _libc.syscall(ctypes.c_long(_MOVE_MOUNT), out_mount, b"", _AT_FDCWD, target.encode(),
                     _MOVE_MOUNT_F_EMPTY_PATH) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"move_mount {target}: {os.strerror(err)}")


def _place_fds(targets: dict[int, int]) -> None:
    """Move each fd to its fixed number (``{source: target}``) and close every other one above 2."""
    # Copy all above the targets first so no dup2 can clobber another source, and so dup2
    # never gets equal fds (a no-op that would leave close-on-exec set).
    high = {fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 10): dst for src, dst in targets.items()}
    for src, dst in high.items():
        os.dup2(src, dst, inheritable=True)
    # Nothing else may reach the sandbox: close every fd except stdio and the targets.
    os.closerange(max(targets.values()) + 1, os.sysconf("SC_OPEN_MAX"))


def _drop(uid: int) -> None:
    """``setpriv --reuid U --regid U --clear-groups --no-new-privs``: with every uid non-zero the
    kernel clears the permitted and effective capabilities, so nothing is left to exec with."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (uid, uid, uid) or os.getgroups():
        raise OSError(errno.EPERM, "the run's uid was not taken")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def _join(procs: str) -> None:
    """Move this (single-threaded) process into the cgroup whose ``cgroup.procs`` is ``procs``.

    On cgroup v1 it writes ``0`` (itself) to the group's ``tasks`` file: moving only the calling
    thread lets the kernel skip the global lock a process move takes, whose RCU grace period cost
    up to ~10 ms per run here; with one thread, that thread is the process, and every process it
    starts is born in the group. Elsewhere (v2) it writes ``0`` to ``cgroup.procs``."""
    tasks = os.path.join(os.path.dirname(procs), "tasks")
    with open(tasks if os.path.exists(tasks) else procs, "w") as f:
        f.write("0")


def _child(spec: dict, fds: dict[str, int]) -> None:
    """One run, in the forked child: never returns (exec, or exit 125 with one line on stderr)."""
    try:
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fds["stdout"], 1)
        os.dup2(fds["stderr"], 2)
        os.close(null)
        # What the launcher builds is read by the per-run uid; none of it is secret.
        os.umask(0o022)
        for procs in spec.get("cgroup_procs", []):  # join the run's cgroup(s) before anything else
            _join(procs)
        _fresh_keyring()
        _stage(spec, fds["out"])
        _place_fds({fds["broker"]: BROKER_FD, fds["info"]: INFO_FD, fds["seccomp"]: SECCOMP_FD})
        import resource  # noqa: PLC0415 - a builtin module, imported by the server already

        for res, limit in spec["rlimits"]:
            resource.setrlimit(res, (limit, limit))
        _drop(int(spec["uid"]))
        os.execv(spec["argv"][0], spec["argv"])
    except BaseException as exc:  # noqa: BLE001 - any failure here is a set-up failure, reported as such
        try:
            os.write(2, f"twh-stage: {type(exc).__name__}: {exc}\n".encode("utf-8", "replace"))
        except OSError:
            pass
    os._exit(125)


def _report(sock: socket.socket, message: tuple, fds: list[int] | None = None) -> None:
    try:
        socket.send_fds(sock, [marshal.dumps(message)], fds or [])
    except OSError:
        pass  # the supervisor gave up on this run; the child is still reaped here


class _Server:
    def __init__(self, ctl_fd: int) -> None:
        self.ctl = socket.socket(fileno=ctl_fd)
        self.live: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, report socket)

    def serve(self) -> int:
        while True:
            ready, _, _ = select.select([self.ctl.fileno(), *self.live], [], [])
            for fd in ready:
                if fd == self.ctl.fileno():
                    if not self._request():
                        self._shutdown()
                        return 0
                else:
                    self._reap(fd)

    def _request(self) -> bool:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(self.ctl, MAX_REQUEST, len(FDS) + 1)
        except InterruptedError:
            return True
        if not msg and not fds:
            return False  # the supervisor is gone
        if len(fds) != len(FDS):
            for fd in fds:
                os.close(fd)
            return True  # not ours to answer: no report socket we could trust
        named = dict(zip(FDS, fds, strict=True))
        report = socket.socket(fileno=named.pop("report"))
        try:
            spec = marshal.loads(msg)
            pid = os.fork()
        except Exception as exc:  # noqa: BLE001 - the supervisor gets the reason
            for fd in named.values():
                os.close(fd)
            _report(report, ("error", f"{type(exc).__name__}: {exc}"))
            report.close()
            return True
        if pid == 0:
            self.ctl.close()
            _child(spec, named)
        for fd in named.values():
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        self.live[pidfd] = (pid, report)
        _report(report, ("started", pid), [pidfd])
        return True

    def _reap(self, pidfd: int) -> None:
        pid, report = self.live.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        _report(report, ("exit", status))
        report.close()

    def _shutdown(self) -> None:
        for pidfd, (pid, _report_sock) in self.live.items():
            try:
                os.kill(pid, _SIGKILL)  # not reaped yet: the pid is still this child's
            except OSError:
                pass
        for pid, _report_sock in self.live.values():
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] != "--serve" or not argv[2].isdigit():
        sys.stderr.write("usage: stage.py --serve FD (started by sandbox.isolation.launcher)\n")
        return 2
    import resource  # noqa: F401 - loaded once here, so each child only looks it up

    return _Server(int(argv[2])).serve()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
