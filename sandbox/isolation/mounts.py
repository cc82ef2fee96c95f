"""The sandbox's file tree, at neutral paths: nothing the job can read names a host path.

    tree = sandbox_tree(job_copy)          # what the launcher stages and what bwrap mounts where
    out_fd = out_tmpfs(uid, size, inodes)  # /out: a detached tmpfs the supervisor keeps a handle on

Inside the sandbox::

    /usr, /bin, /lib...  the host's /usr, read-only (the system libraries)
    /opt/python          the interpreter's install, when it does not live under /usr (pyenv, a build)
    /opt/venv            the virtual environment: lib/ (site-packages), bin/python, a pyvenv.cfg of our own
    /twh                 the job client        /job   the copy of the job folder (read-only)
    /out                 a fresh tmpfs (the outputs)          /tmp, /dev/shm   small private tmpfs

Why overlays: a bind mount shows its source's path in ``/proc/self/mountinfo`` (the "root" field
is the path inside the source file system: the warehouse home, the job id, the scratch folder,
the checkout). The launcher therefore binds each host folder at a neutral staging name and shows
it to the job through a read-only overlayfs built on that name, whose mount root is ``/`` and
whose options name only staging paths (``lowerdir=/tmp/m-job:/tmp/b-job``). The top layer of
each overlay is a small mask that hides, with whiteouts, the few installed files that record
host paths as text: the editable install of the warehouse itself (``__editable__*``, which maps
the package to the checkout), ``direct_url.json`` of packages installed from a local folder,
``*.egg-link`` and ``easy-install.pth``. The venv's ``bin/`` (scripts whose first line is the
host venv's path), its ``pyvenv.cfg`` (which names the host venv and interpreter) and ``share/``
are never mounted: ``/opt/venv/bin/python`` is a link to the interpreter and ``pyvenv.cfg`` is
written by us.

What this cannot hide: compiled bytecode (``__pycache__/*.pyc``) records the path its source
had when it was compiled, so the installed libraries' bytecode names the host path of the
Python install (for a venv inside a checkout, the checkout's path). It never names the warehouse
home, a job or a scratch folder. A deployment that minds installs the job runtime at a neutral
path (e.g. ``/opt/twh-venv``).

/out is a tmpfs the supervisor creates detached (``fsopen``/``fsmount``): the launcher attaches
it in its private mount namespace, and the supervisor reads the outputs through its handle once
every process of the run is dead. Its size and inode count are a hard ceiling (charged to the
run's cgroup); the output watcher's caps are lower and decide the outcome.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxError

__all__ = ["JOBCLIENT_DIR", "PythonInstall", "SandboxTree", "out_tmpfs", "python_install", "sandbox_tree"]

JOBCLIENT_DIR = Path(__file__).with_name("jobclient")
STAGE_POINT = "/tmp"  # covered by a tmpfs in the launcher's private mount namespace only
PYTHON_DIR = "/opt/python"
VENV_DIR = "/opt/venv"

# Installed files that record host paths as text (see the module docstring).
_EDITABLE_PREFIX = "__editable__"
_PATH_FILES = ("easy-install.pth", "direct_url.json")


@dataclass(frozen=True)
class PythonInstall:
    """Where the interpreter goes in the sandbox, and how the launcher stages it."""

    interpreter: str  # the path the job's argv[0] names
    binds: tuple[tuple[str, str], ...]  # (staging name, host folder)
    overlays: tuple[tuple[str, str, tuple[str, ...]], ...]  # (staging name, bound name, whiteouts)
    files: tuple[tuple[str, str], ...]  # (staging name, text)
    args: tuple[str, ...]  # bwrap arguments
    env: tuple[tuple[str, str], ...]  # variables the interpreter needs (LD_LIBRARY_PATH)


@dataclass(frozen=True)
class SandboxTree:
    """One run's staging spec (for ``stage.py``) and bwrap mount arguments."""

    binds: list[list[str]]
    overlays: list[list[object]]
    files: list[list[str]]
    args: list[str]
    interpreter: str
    env: dict[str, str]


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _check_readable(folders: list[Path]) -> None:
    """The per-run uid runs the interpreter as "other": an install made under umask 077 fails
    every job with an obscure import error, so say so here."""
    for folder in folders:
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if mode & 0o005 != 0o005:
            raise SandboxError(f"the Python install is not readable by other users ({folder} has mode "
                               f"{mode & 0o777:o}); the sandbox runs it as an unprivileged uid: chmod -R o+rX it")


def _path_records(lib: Path) -> tuple[str, ...]:
    """Whiteouts (relative to ``lib``) for installed files that record host paths."""
    found: list[str] = []
    for site in sorted(lib.glob("python3*/site-packages")):
        rel = site.relative_to(lib)
        try:
            entries = sorted(os.listdir(site))
        except OSError:
            continue
        for name in entries:
            if name.startswith(_EDITABLE_PREFIX) or name.endswith(".egg-link") or name in _PATH_FILES:
                found.append(f"{rel}/{name}")
            elif name.endswith(".dist-info") and os.path.lexists(site / name / "direct_url.json"):
                found.append(f"{rel}/{name}/direct_url.json")
        cache = site / "__pycache__"
        if cache.is_dir():
            found += [f"{rel}/__pycache__/{n}" for n in sorted(os.listdir(cache)) if n.startswith(_EDITABLE_PREFIX)]
    return tuple(found)


@functools.lru_cache(maxsize=1)
def python_install() -> PythonInstall:
    """The interpreter running this supervisor, laid out at neutral paths (computed once)."""
    base = os.path.realpath(sys.base_prefix)
    exe = os.path.realpath(sys.executable)
    venv = os.path.realpath(sys.prefix) if sys.prefix != sys.base_prefix else None
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    _check_readable([Path(p, *sub) for p in {base, venv or base} - {"/usr"} if not _under(p, "/usr")
                     for sub in ((), ("lib",), ("lib", version), ("lib", version, "site-packages"))])
    binds: list[tuple[str, str]] = []
    overlays: list[tuple[str, str, tuple[str, ...]]] = []
    files: list[tuple[str, str]] = []
    args: list[str] = []
    env: list[tuple[str, str]] = []
    if _under(base, "/usr"):
        interpreter = exe  # /usr is bound as it is
    else:
        if not _under(exe, base):
            raise SandboxError("the interpreter does not live in its own prefix; cannot place it in the sandbox")
        interpreter = PYTHON_DIR + exe[len(base):]
        binds.append(("b-python", base))
        overlays.append(("python", "b-python", _path_records(Path(base, "lib"))))
        args += ["--ro-bind", f"{STAGE_POINT}/python", PYTHON_DIR]
        libpython = sysconfig.get_config_var("LDLIBRARY")
        if sysconfig.get_config_var("Py_ENABLE_SHARED") and libpython and os.path.exists(Path(base, "lib", libpython)):
            # A shared build finds libpython through a run path that names the host prefix.
            env.append(("LD_LIBRARY_PATH", f"{PYTHON_DIR}/lib"))
    if venv is not None:
        for name in ("lib", "lib64"):
            host = Path(venv, name)
            if host.is_symlink():
                args += ["--symlink", os.readlink(host), f"{VENV_DIR}/{name}"]
            elif host.is_dir():
                binds.append((f"b-venv-{name}", str(host)))
                overlays.append((f"venv-{name}", f"b-venv-{name}", _path_records(host)))
                args += ["--ro-bind", f"{STAGE_POINT}/venv-{name}", f"{VENV_DIR}/{name}"]
        files.append(("pyvenv.cfg", _pyvenv_cfg(Path(venv, "pyvenv.cfg"), os.path.dirname(interpreter))))
        args += ["--ro-bind", f"{STAGE_POINT}/pyvenv.cfg", f"{VENV_DIR}/pyvenv.cfg",
                 "--symlink", interpreter, f"{VENV_DIR}/bin/python"]
        interpreter = f"{VENV_DIR}/bin/python"
    return PythonInstall(interpreter, tuple(binds), tuple(overlays), tuple(files), tuple(args), tuple(env))


def _pyvenv_cfg(host_cfg: Path, home: str) -> str:
    """Our pyvenv.cfg: the host's settings that matter, with ``home`` inside the sandbox."""
    keep = {"include-system-site-packages": "false", "version": ".".join(map(str, sys.version_info[:3]))}
    try:
        for line in host_cfg.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() in keep:
                keep[key.strip()] = value.strip()
    except OSError:
        pass
    return f"home = {home}\n" + "".join(f"{k} = {v}\n" for k, v in keep.items())


def usr_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = f"/{name}"
        if os.path.islink(host):  # merged-/usr systems: keep the symlink, not a second tree
            args += ["--symlink", os.readlink(host), host]
        elif os.path.isdir(host):
            args += ["--ro-bind", host, host]
    return args


def sandbox_tree(job_copy: Path) -> SandboxTree:
    """Everything below / that is not bwrap's own (proc, dev, the tmpfs): the staging spec and
    the mount arguments, in order. /out is attached by the launcher (``attach`` in its spec)."""
    py = python_install()
    binds = [[n, s] for n, s in py.binds] + [["b-twh", str(JOBCLIENT_DIR)], ["b-job", str(job_copy)]]
    overlays: list[list[object]] = [[n, b, list(w)] for n, b, w in py.overlays]
    overlays += [["twh", "b-twh", []], ["job", "b-job", []]]
    args = [*usr_args(), *py.args,
            "--ro-bind", f"{STAGE_POINT}/twh", "/twh",
            "--ro-bind", f"{STAGE_POINT}/job", "/job",
            "--bind", f"{STAGE_POINT}/out", "/out"]
    return SandboxTree(binds, overlays, [[n, t] for n, t in py.files], args, py.interpreter, dict(py.env))


# -- /out: a detached tmpfs ----------------------------------------------------------------------

_FSOPEN, _FSCONFIG, _FSMOUNT = 430, 431, 432  # the same numbers on every architecture (new syscalls)
_FSOPEN_CLOEXEC = 0x1
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 1, 6
_FSMOUNT_CLOEXEC = 0x1
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV, _MOUNT_ATTR_NOEXEC = 0x2, 0x4, 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _syscall(nr: int, *args: object, what: str) -> int:
    ret = _libc.syscall(ctypes.c_long(nr), *args)
    if ret < 0:
        err = ctypes.get_errno()
        raise SandboxError(f"could not create the output file system ({what}: {os.strerror(err)})")
    return int(ret)


def out_tmpfs(uid: int, size_bytes: int, max_inodes: int) -> int:
    """A new tmpfs owned by ``uid`` (mode 0700), attached nowhere; return its mount fd.

    The fd keeps the file system alive after the sandbox's mount namespaces are gone, so the
    supervisor reads the outputs through ``/proc/self/fd/<fd>`` once every process is dead.
    """
    fs = _syscall(_FSOPEN, b"tmpfs", _FSOPEN_CLOEXEC, what="fsopen")
    try:
        for key, value in (("source", "twh-out"), ("size", str(size_bytes)), ("nr_inodes", str(max_inodes)),
                           ("mode", "0700"), ("uid", str(uid)), ("gid", str(uid))):
            _syscall(_FSCONFIG, fs, _FSCONFIG_SET_STRING, key.encode(), value.encode(), 0, what=f"fsconfig {key}")
        _syscall(_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0, what="fsconfig create")
        return _syscall(_FSMOUNT, fs, _FSMOUNT_CLOEXEC,
                        _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOEXEC, what="fsmount")
    finally:
        os.close(fs)
