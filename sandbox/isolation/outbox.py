"""The job's output folder: the live watcher and the final, fail-closed read.

``/out`` inside the sandbox is a tmpfs the job owns (the supervisor holds it as a directory fd,
see :mod:`sandbox.isolation.mounts`), so everything in it is hostile:
symlinks (to host files or to ``/job``), FIFOs (a blocking open would hang the supervisor),
devices, sockets, hard links, sub-directories, odd names, huge or sparse files and millions of
entries. :func:`watch_violation` runs while the job is alive and only bounds resources;
:func:`collect_outputs` runs after every process of the run is confirmed dead, so nothing can
change under it, and accepts only small regular files with plain names.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from typing import Protocol

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_MAX_SHOWN_NAME = 80


class OutputCaps(Protocol):
    """The part of ``SandboxLimits`` this module needs (read-only, as the limits are frozen)."""

    @property
    def max_output_files(self) -> int: ...
    @property
    def max_output_bytes(self) -> int: ...
    @property
    def allowed_output_suffixes(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class OutputFile:
    """One accepted output file; ``data`` is exactly the bytes that were hashed."""

    name: str
    size: int
    sha256: str
    data: bytes


def safe_name(name: str) -> str:
    """A printable, bounded rendering of an untrusted file name (never its content)."""
    shown = ascii(name)
    return shown if len(shown) <= _MAX_SHOWN_NAME else shown[: _MAX_SHOWN_NAME - 3] + "..."


def _disk_bytes(st: os.stat_result) -> int:
    # A sparse file has few blocks but a large size; a preallocated one the opposite.
    return max(st.st_size, st.st_blocks * 512)


def watch_violation(out_dir: int, caps: OutputCaps) -> str | None:
    """Return why the live ``/out`` breaks the caps, or ``None``. Cheap enough to poll.

    Reads at most ``max_output_files * 4`` entries, so a million files cost as much as 64.
    A sub-directory is a violation at once: its contents would escape both caps.
    """
    limit_entries = caps.max_output_files * 4
    count = 0
    total = 0
    try:
        if os.fstat(out_dir).st_nlink > 2:  # each sub-directory adds a link to its parent
            return "the output folder contains a directory"
        with os.scandir(out_dir) as it:
            for entry in it:
                count += 1
                if count > caps.max_output_files:
                    return f"more than {caps.max_output_files} entries in the output folder"
                if count > limit_entries:
                    break
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    return "the output folder contains a directory"
                total += _disk_bytes(st)
                if total > caps.max_output_bytes:
                    return f"outputs exceed {caps.max_output_bytes} bytes"
    except OSError:
        return None  # transient (e.g. the run is being torn down); the final read decides
    return None


def _reject_reason(name: str, st: os.stat_result, caps: OutputCaps) -> str | None:
    if not _NAME_RE.fullmatch(name):
        return "name not allowed"
    if not name.endswith(caps.allowed_output_suffixes):
        return "file type not allowed"
    if stat.S_ISLNK(st.st_mode):
        return "symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "directory"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink != 1:
        return "hard link"
    if _disk_bytes(st) > caps.max_output_bytes:
        return "too large"
    return None


def _read_one(dir_fd: int, name: str, lst: os.stat_result) -> bytes | str:
    """Read a vetted entry; return its bytes or a rejection reason."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError:
        return "could not be opened"
    try:
        fst = os.fstat(fd)
        if (fst.st_ino, fst.st_dev) != (lst.st_ino, lst.st_dev) or not stat.S_ISREG(fst.st_mode):
            return "changed while being read"
        chunks: list[bytes] = []
        left = lst.st_size + 1  # one extra byte tells us the file grew
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) != lst.st_size:
        return "changed while being read"
    return data


def collect_outputs(
    out_dir: int, caps: OutputCaps
) -> tuple[tuple[OutputFile, ...], tuple[tuple[str, str], ...]]:
    """Read the folder open as ``out_dir`` once the sandbox is dead. Returns ``(outputs, rejected)``.

    Fail closed: if anything is rejected the caller must discard ``outputs`` entirely.
    """
    rejected: list[tuple[str, str]] = []
    accepted: list[tuple[str, os.stat_result]] = []
    dir_fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=out_dir)
    try:
        seen = 0
        with os.scandir(dir_fd) as it:
            for entry in it:
                seen += 1
                if seen > caps.max_output_files * 4:
                    rejected.append(("...", "too many entries in the output folder"))
                    break
                try:
                    st = os.stat(entry.name, dir_fd=dir_fd, follow_symlinks=False)
                except OSError:
                    rejected.append((safe_name(entry.name), "could not be inspected"))
                    continue
                reason = _reject_reason(entry.name, st, caps)
                if reason is not None:
                    rejected.append((safe_name(entry.name), reason))
                else:
                    accepted.append((entry.name, st))
        if len(accepted) > caps.max_output_files:
            rejected.append(("...", f"more than {caps.max_output_files} output files"))
        if sum(st.st_size for _, st in accepted) > caps.max_output_bytes:
            rejected.append(("...", f"outputs exceed {caps.max_output_bytes} bytes in total"))
        if rejected:
            return (), tuple(rejected)
        outputs: list[OutputFile] = []
        for name, st in sorted(accepted):
            got = _read_one(dir_fd, name, st)
            if isinstance(got, str):
                rejected.append((safe_name(name), got))
                continue
            outputs.append(OutputFile(name, len(got), hashlib.sha256(got).hexdigest(), got))
    finally:
        os.close(dir_fd)
    if rejected:
        return (), tuple(rejected)
    return tuple(outputs), ()
