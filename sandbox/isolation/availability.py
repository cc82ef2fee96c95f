"""Whether sandboxes work on this host, remembered per host rather than proved again per process.

:func:`sandbox.isolation.runner.check_sandbox_available` proves it with one empty sandboxed run.
A service pays that once; a one-run process (``twh job submit`` in local mode) paid it on every
submit. So a success is recorded in a root-owned file, :data:`RECORD` (``/run``: a tmpfs, gone at
reboot), together with a fingerprint of everything the probe's outcome depends on:

* the kernel (release, version, boot id) and the user-namespace switches,
* the bubblewrap binary and the libseccomp library this process loaded (path, inode, size,
  modification and change times — a package upgrade changes them),
* the interpreter the sandbox runs and this package's launcher and mount code,
* the seccomp program (its SHA-256).

The next process whose fingerprint matches skips the probe run; any difference, or a record that
is missing, unreadable, not root's or not a regular file, means a new probe. The record only ever
skips a *proof that things work*: every real run still sets up its own sandbox and fails closed
(``the sandbox failed to start``) if it cannot, so a forged record could not weaken isolation,
only postpone an error message to the first run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from pathlib import Path

__all__ = ["RECORD", "fingerprint", "recorded", "remember"]

RECORD = Path("/run/twh-sandbox-available.json")
_PACKAGE = Path(__file__).resolve().parent
_CODE = ("stage.py", "launcher.py", "mounts.py", "runner.py", "seccomp.py", "cgroup.py", "procs.py", "scratch.py")
_KNOBS = ("/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone",
          "/proc/sys/kernel/random/boot_id")


def _file_id(path: str | Path) -> list[object]:
    try:
        st = os.stat(path)
    except OSError:
        return [str(path), None]
    return [os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _libseccomp() -> list[str]:
    """The libseccomp this process loaded (after the filter was built), by its mapped path."""
    found: set[str] = set()
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.rsplit(None, 1)[-1]
                if "libseccomp" in path and path.startswith("/"):
                    found.add(path)
    except OSError:
        pass
    return sorted(found)


def fingerprint(bwrap: str, policy_sha256: str) -> str:
    """SHA-256 over what the probe's outcome depends on (see the module docstring)."""
    uname = os.uname()
    parts: dict[str, object] = {
        "kernel": [uname.sysname, uname.release, uname.version, uname.machine],
        "knobs": {k: _read(k) for k in _KNOBS},
        "bwrap": _file_id(bwrap),
        "libseccomp": [_file_id(p) for p in _libseccomp()],
        "python": [_file_id(sys.executable), sys.version],
        "code": [_file_id(_PACKAGE / name) for name in _CODE],
        "seccomp": policy_sha256,
        "euid": os.geteuid(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def recorded(print_: str, record: Path | None = None) -> bool:
    """Whether a probe on this host, with this fingerprint, succeeded."""
    record = record or RECORD
    try:
        fd = os.open(record, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022 or st.st_size > 4096:
            return False
        data = json.loads(os.read(fd, 4096) or b"null")
    except (OSError, ValueError):
        return False
    finally:
        os.close(fd)
    return isinstance(data, dict) and data.get("fingerprint") == print_


def remember(print_: str, record: Path | None = None) -> None:
    """Record a successful probe (best effort: without a writable /run, each process probes)."""
    record = record or RECORD
    tmp = record.with_name(f".{record.name}.{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, json.dumps({"fingerprint": print_}).encode())
        finally:
            os.close(fd)
        os.replace(tmp, record)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
