"""Root-side launcher that stages bind sources, then becomes ``prlimit … bwrap``.

Run by :mod:`sandbox.isolation.runner` as ``python -I -S stage.py SPEC_JSON``; never imported.
It is a standalone script (stdlib only) because it must run in a fresh single-threaded process:
it changes its mount namespace, which a threaded supervisor must not do, and ``preexec_fn`` is
unsafe with threads.

Why it exists: ``bwrap`` runs as the per-run unprivileged uid, and resolves every bind source
with that uid's permissions. The Python prefix lives under ``/root`` (mode 0700) and the
caller's scratch directory may sit under a private tmp dir, so the unprivileged ``bwrap`` could
not reach them. Here, still root, we

1. enter a private mount namespace (nothing leaks into the host's mount table and it vanishes
   with the last sandbox process),
2. open each source, then mount a small tmpfs on the staging point and bind each source to
   ``<stage>/<name>`` — a path any uid can traverse,
3. move the broker socket to fd 3 and the bwrap info pipe to fd 4, close every other fd,
4. ``exec`` the argv (``prlimit … setpriv … bwrap …``), which keeps this pid: bwrap's parent
   stays the supervisor, so ``--die-with-parent`` refers to it.

SPEC_JSON: ``{"stage": "/tmp", "binds": [[name, source], ...], "broker_fd": n, "info_fd": m,
"cgroup_procs": [path, ...], "argv": [...]}``; the launcher first joins each listed cgroup.
Exits 125 with a one-line message on stderr if staging fails.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import sys

CLONE_NEWNS = 0x00020000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

#: Where the helper puts the broker socket and the bwrap info pipe; the runner relies on these.
BROKER_FD = 3
INFO_FD = 4

_libc = ctypes.CDLL(None, use_errno=True)


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


def _stage(stage: str, binds: list[list[str]]) -> None:
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    # Private propagation: our mounts must never propagate back to the host namespace.
    _mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    # Open the sources *after* unshare (a mount of another namespace cannot be bound) and
    # *before* covering the staging point (a source may live under it, e.g. /tmp/...).
    fds = {name: os.open(src, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for name, src in binds}
    _mount("twh-stage", stage, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=64k")
    for name, fd in fds.items():
        target = os.path.join(stage, name)
        os.mkdir(target, 0o755)
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND, None)
        os.close(fd)


def _place_fds(broker_fd: int, info_fd: int) -> None:
    # Copy both above 3/4 first so neither dup2 can clobber the other, and so dup2 never
    # gets equal fds (a no-op that would leave close-on-exec set).
    hi_broker = fcntl.fcntl(broker_fd, fcntl.F_DUPFD_CLOEXEC, 10)
    hi_info = fcntl.fcntl(info_fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.dup2(hi_broker, BROKER_FD, inheritable=True)
    os.dup2(hi_info, INFO_FD, inheritable=True)
    # Nothing else may reach the sandbox: close every fd except stdio and the two above.
    os.closerange(INFO_FD + 1, os.sysconf("SC_OPEN_MAX"))


def main(argv: list[str]) -> int:
    try:
        spec = json.loads(argv[1])
        for procs in spec.get("cgroup_procs", []):  # join the run's cgroup(s) before anything else
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        _stage(spec["stage"], spec["binds"])
        _place_fds(int(spec["broker_fd"]), int(spec["info_fd"]))
        os.execv(spec["argv"][0], spec["argv"])
    except Exception as exc:  # noqa: BLE001 - any failure here is a set-up failure, reported as such
        sys.stderr.write(f"twh-stage: {type(exc).__name__}: {exc}\n")
        return 125
    return 125  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv))
