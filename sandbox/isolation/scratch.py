"""What the job gets to see: a private copy of its folder and its environment.

The job folder is copied (regular files and folders only, bounded) rather than bound, so the
job cannot see later edits or anything a symlink would drag in, and the copy is root-owned and
read-only (modes set explicitly: the warehouse runs under umask 077, the run's uid reads this).
Nothing in the scratch folder is writable by the job; its outputs go to a tmpfs
(:func:`sandbox.isolation.mounts.out_tmpfs`).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

from ..errors import JobSpecInvalid, SandboxError

_MiB = 1024 * 1024
_MAX_JOB_FILES = 2000
_MAX_JOB_BYTES = 64 * _MiB
_ENTRYPOINT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}\.py")
_ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
_RESERVED_ENV = frozenset({"TWH_BROKER_FD", "PYTHONPATH", "PYTHONHOME", "LD_LIBRARY_PATH", "LD_PRELOAD"})


def _copy_job(src: Path, dst: Path, budget: list[int], depth: int = 0) -> None:
    """Copy regular files and folders only; ``budget`` is [files left, bytes left]."""
    if depth > 16:
        raise JobSpecInvalid("the job folder is nested too deeply")
    dst.mkdir(mode=0o755)
    with os.scandir(src) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        shown = ascii(entry.name)[:80]
        if entry.is_symlink():
            raise JobSpecInvalid(f"the job folder contains a symbolic link: {shown}")
        if entry.is_dir(follow_symlinks=False):
            _copy_job(Path(entry.path), dst / entry.name, budget, depth + 1)
            continue
        if not entry.is_file(follow_symlinks=False):
            raise JobSpecInvalid(f"the job folder contains a special file: {shown}")
        fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            data = f.read(budget[1] + 1)
        budget[0] -= 1
        budget[1] -= len(data)
        if budget[0] < 0 or budget[1] < 0:
            raise JobSpecInvalid(f"the job folder is larger than {_MAX_JOB_FILES} files / {_MAX_JOB_BYTES} bytes")
        target = dst / entry.name
        target.write_bytes(data)
        target.chmod(0o444)
    dst.chmod(0o555)


def prepare_scratch(job_dir: Path, scratch_dir: Path, entrypoint: str) -> Path:
    """Copy ``job_dir`` into ``scratch_dir/job``; return the copy."""
    try:
        st = os.lstat(scratch_dir)
        empty = not os.listdir(scratch_dir) if stat.S_ISDIR(st.st_mode) else False
    except OSError as exc:
        raise SandboxError(f"the scratch folder is unusable: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode) or not empty:
        raise SandboxError("the scratch folder must be an empty, real directory")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise SandboxError("the scratch folder must be owned by the supervisor and not writable by others")
    if os.path.islink(job_dir) or not os.path.isdir(job_dir):
        raise JobSpecInvalid("the job folder is missing or is a symbolic link")
    if not _ENTRYPOINT_RE.fullmatch(entrypoint):
        raise JobSpecInvalid("the entrypoint must be a .py file at the top of the job folder")
    job_copy = scratch_dir / "job"
    _copy_job(job_dir, job_copy, [_MAX_JOB_FILES, _MAX_JOB_BYTES])
    if not (job_copy / entrypoint).is_file():
        raise JobSpecInvalid(f"the entrypoint {entrypoint!r} is not in the job folder")
    return job_copy


def job_env(env: Mapping[str, str] | None, path: str, broker_fd: int,
            interpreter_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The job's whole environment: ours, what the interpreter needs at its sandbox path, plus the
    caller's extras (which may not replace either)."""
    result = {"PATH": path, "PYTHONPATH": "/twh", "TWH_BROKER_FD": str(broker_fd), "HOME": "/tmp",
              "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", **(interpreter_env or {})}
    for key, value in (env or {}).items():
        if not _ENV_KEY_RE.fullmatch(key) or key in _RESERVED_ENV or "\0" in value:
            raise JobSpecInvalid(f"environment variable {ascii(key)[:60]} is not allowed")
        result[key] = value
    return result
