"""Best-effort control group for one run: a memory ceiling and a process ceiling for the whole run.

RLIMIT_AS and RLIMIT_NPROC bound each process, not the run: 64 processes × 2 GiB, memfd files
and SysV shared memory are outside RLIMIT_AS. A cgroup charges everything the run's processes
use (anonymous memory, tmpfs pages of the private /tmp, page cache) to one budget. It is an extra
layer: where the host gives us no writable cgroup (cgroup v2 without a delegated subtree, a
read-only /sys/fs/cgroup) the run goes on with the rlimits alone, and this is logged.

The launcher (``stage.py``) writes its own pid into ``cgroup.procs`` before it execs, so
every process of the run starts inside the group.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_V1_FILES = {"memory": [("memory.limit_in_bytes", "{memory}"), ("memory.memsw.limit_in_bytes", "{memory}")],
             "pids": [("pids.max", "{pids}")]}
_V2_FILES = [("memory.max", "{memory}"), ("memory.swap.max", "0"), ("pids.max", "{pids}")]
_warned = False


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fs type, options) of every cgroup mount of this process."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if rfields and rfields[0] in ("cgroup", "cgroup2"):
                found.append((fields[3], fields[4], rfields[0], set(rfields[-1].split(","))))
    return found


def _own_groups() -> dict[str, str]:
    """Controller (or "" for v2) -> this process's cgroup path."""
    groups = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for c in controllers.split(",") if controllers else [""]:
                groups[c] = path
    return groups


def _host_dir(mount_root: str, mount_point: str, path: str) -> Path:
    rel = path[len(mount_root):] if mount_root != "/" and path.startswith(mount_root) else path
    return Path(mount_point) / rel.lstrip("/")


def _parents(name: str) -> list[tuple[Path, list[tuple[str, str]]]]:
    """Where to create the run's group(s), with the files to write in each."""
    mounts, groups = _mounts(), _own_groups()
    v1 = []
    for controller, files in _V1_FILES.items():
        for root, point, fstype, opts in mounts:
            if fstype == "cgroup" and controller in opts and controller in groups:
                v1.append((_host_dir(root, point, groups[controller]) / name, files))
    if v1:
        return v1
    for root, point, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in groups:
            parent = _host_dir(root, point, groups[""])
            enabled = (parent / "cgroup.subtree_control").read_text().split()
            if {"memory", "pids"} <= set(enabled):  # a delegated subtree; we cannot enable it ourselves
                return [(parent / name, _V2_FILES)]
    return []


@contextmanager
def run_cgroup(name: str, memory_bytes: int, max_processes: int) -> Iterator[list[str]]:
    """Create the run's group(s); yield the ``cgroup.procs`` files the launcher must join."""
    global _warned
    made: list[Path] = []
    try:
        parents = _parents(name)
        if not parents and not _warned:
            _warned = True
            log.warning("no writable cgroup for sandbox runs; relying on rlimits only")
        for path, files in parents:
            path.mkdir(mode=0o700)
            made.append(path)
            for fname, template in files:
                target = path / fname
                if target.exists():
                    target.write_text(template.format(memory=memory_bytes, pids=max_processes + 8))
    except OSError as exc:
        log.warning("sandbox cgroup unavailable (%s); relying on rlimits only", type(exc).__name__)
        _remove(made)
        made = []
    try:
        yield [str(p / "cgroup.procs") for p in made]
    finally:
        _remove(made)


def _remove(paths: list[Path]) -> None:
    # Called after every process of the run is dead; the kernel may need a moment to let go.
    for path in paths:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.02)
        else:
            log.warning("sandbox cgroup %s could not be removed", path.name)
