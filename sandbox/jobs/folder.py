"""A job folder read as files — regular files only, size-capped — without parsing ``job.yaml``.

    files = read_job_folder(Path("jobs/default_rate"))    # {"job.yaml": b"...", "job.py": b"..."}

:func:`sandbox.jobs.spec.load_job_files` reads a folder this way and then validates its
``job.yaml``; the HTTP client uploads what this reads and lets the service validate it (the same
checks, the same errors), so ``twh --url … job submit`` does not import YAML and pydantic first.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import JobSpecInvalid

__all__ = ["MAX_JOB_BYTES", "MAX_JOB_FILES", "read_job_folder"]

MAX_JOB_FILES = 64
MAX_JOB_BYTES = 4 * 1024 * 1024


def read_job_folder(job_dir: Path) -> dict[str, bytes]:
    """The folder's files by name (dot files and ``__pycache__`` skipped); it must hold ``job.yaml``."""
    if not job_dir.is_dir():
        raise JobSpecInvalid(f"job folder {job_dir} does not exist or is not a folder")
    files: dict[str, bytes] = {}
    total = 0
    for entry in sorted(job_dir.iterdir()):
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_symlink() or not entry.is_file():
            raise JobSpecInvalid(f"job folder entry {entry.name!r} is not a regular file (symlinks and folders are not "
                                 "accepted)")
        data = entry.read_bytes()
        total += len(data)
        if len(files) >= MAX_JOB_FILES or total > MAX_JOB_BYTES:
            raise JobSpecInvalid(f"job folder is too large (at most {MAX_JOB_FILES} files, {MAX_JOB_BYTES} bytes)")
        files[entry.name] = data
    if "job.yaml" not in files:
        raise JobSpecInvalid(f"job folder {job_dir} has no job.yaml")
    return files
