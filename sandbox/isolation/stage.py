"""Root-side launcher that stages bind sources, then becomes ``prlimit … bwrap``.

Run by :mod:`sandbox.isolation.runner` as ``python -I -S stage.py SPEC``; never imported.
It is a standalone script (stdlib only) because it must run in a fresh single-threaded process:
it changes its mount namespace, which a threaded supervisor must not do, and ``preexec_fn`` is
unsafe with threads.

Why it exists: ``bwrap`` runs as the per-run unprivileged uid, and resolves every bind source
with that uid's permissions. The Python prefix lives under ``/root`` (mode 0700) and the
caller's scratch directory may sit under a private tmp dir, so the unprivileged ``bwrap`` could
not reach them; and a bind shows its source's host path in ``/proc/self/mountinfo``. Here,
still root, we

1. join the run's cgroup(s), and a fresh, empty session keyring (the supervisor's may hold
   secrets, and a session keyring is inherited across ``setuid``),
2. enter a private mount namespace (nothing leaks into the host's mount table and it vanishes
   with the last sandbox process),
3. open each source, then mount a small tmpfs on the staging point and bind each source to
   ``<stage>/<name>``; over each such bind, mount a read-only overlay at a neutral name whose
   top layer is a mask of whiteouts (see :mod:`sandbox.isolation.mounts`); write the small
   files bwrap binds (``pyvenv.cfg``); attach the supervisor's detached ``/out`` tmpfs,
4. move the broker socket to fd 3, the bwrap info pipe to fd 4 and the seccomp program to
   fd 5, close every other fd,
5. ``exec`` the argv (``prlimit … setpriv … bwrap …``), which keeps this pid: bwrap's parent
   stays the supervisor, so ``--die-with-parent`` refers to it.

SPEC (the supervisor's own dict, marshalled and hex-encoded: ``json`` would cost this
short-lived process more time to import than everything else it does): ``{"stage": "/tmp", "binds": [[name, source], ...], "overlays": [[name, bound name,
[whiteout, ...]], ...], "files": [[name, text], ...], "attach": [[name, mount fd], ...],
"broker_fd": n, "info_fd": m, "seccomp_fd": k, "cgroup_procs": [path, ...], "argv": [...]}``.
Exits 125 with a one-line message on stderr if staging fails.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import marshal
import os
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

#: Where the helper puts the broker socket, the bwrap info pipe and the seccomp program.
BROKER_FD = 3
INFO_FD = 4
SECCOMP_FD = 5

_KEYCTL = {"x86_64": 250, "aarch64": 219}  # keyctl(2)'s number; glibc has no wrapper
_KEYCTL_JOIN_SESSION_KEYRING = 1
_MOVE_MOUNT = 429  # the same on every architecture
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_AT_FDCWD = -100

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


def _stage(spec: dict) -> None:
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
    for name, mount_fd in spec.get("attach", []):
        target = os.path.join(stage, name)
        os.mkdir(target, 0o755)
        if _libc.syscall(ctypes.c_long(_MOVE_MOUNT), int(mount_fd), b"", _AT_FDCWD, target.encode(),
                         _MOVE_MOUNT_F_EMPTY_PATH) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"move_mount {target}: {os.strerror(err)}")
        os.close(int(mount_fd))


def _place_fds(targets: dict[int, int]) -> None:
    """Move each fd to its fixed number (``{source: target}``) and close every other one."""
    # Copy all above the targets first so no dup2 can clobber another source, and so dup2
    # never gets equal fds (a no-op that would leave close-on-exec set).
    high = {fcntl.fcntl(src, fcntl.F_DUPFD_CLOEXEC, 10): dst for src, dst in targets.items()}
    for src, dst in high.items():
        os.dup2(src, dst, inheritable=True)
    # Nothing else may reach the sandbox: close every fd except stdio and the targets.
    os.closerange(max(targets.values()) + 1, os.sysconf("SC_OPEN_MAX"))


def main(argv: list[str]) -> int:
    try:
        spec = marshal.loads(bytes.fromhex(argv[1]))
        # What the launcher builds is read by the per-run uid; none of it is secret.
        os.umask(0o022)
        for procs in spec.get("cgroup_procs", []):  # join the run's cgroup(s) before anything else
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        _fresh_keyring()
        _stage(spec)
        _place_fds({int(spec["broker_fd"]): BROKER_FD, int(spec["info_fd"]): INFO_FD,
                    int(spec["seccomp_fd"]): SECCOMP_FD})
        os.execv(spec["argv"][0], spec["argv"])
    except Exception as exc:  # noqa: BLE001 - any failure here is a set-up failure, reported as such
        sys.stderr.write(f"twh-stage: {type(exc).__name__}: {exc}\n")
        return 125
    return 125  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv))
