"""Attacks on a sandbox, shared by the job sandbox's tests and the trainer's (tests/training).

:data:`ATTACK` is job code that tries, in one run: the network (host TCP, a host Unix socket, an
abstract socket, vsock, DNS), host files, the supervisor's session keyring, forbidden system
calls, host paths in what it can read (mountinfo, mounts, cmdline, environ, cgroup, cwd), and a
process that outlives it. It reads its targets from ``attack.json`` next to it and prints one
line ``TWH-ATTACK {json}``. :func:`check_attack` asserts that every attempt failed.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_KEYCTL, _ADD_KEY = 250, 248  # x86-64
_KEYCTL_JOIN_SESSION_KEYRING, _KEYCTL_INVALIDATE = 1, 21
_SESSION = -3
SIGSYS = f"SIG{int(signal.SIGSYS)}"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

_READ_BACK = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
n = libc.syscall(ctypes.c_long(250), 11, {serial}, buf, 256)
sys.stdout.buffer.write(buf.raw[:n] if n > 0 else b"")
"""


@contextmanager
def supervisor_key() -> Iterator[tuple[str, bytes, int]]:
    """A secret in this process's own session keyring (joined fresh here), as a deployment might
    keep a database password there; its children can read it (checked)."""
    if os.uname().machine != "x86_64":
        pytest.skip("x86-64 system-call numbers")
    name = f"twh-test-{secrets.token_hex(4)}".encode()
    if _libc.syscall(ctypes.c_long(_KEYCTL), _KEYCTL_JOIN_SESSION_KEYRING, name) < 0:
        pytest.skip(f"no kernel keyrings here ({os.strerror(ctypes.get_errno())})")
    desc, secret = f"db-password-{secrets.token_hex(4)}", f"s3cr3t-{secrets.token_hex(8)}".encode()
    serial = _libc.syscall(ctypes.c_long(_ADD_KEY), b"user", desc.encode(), secret, len(secret), _SESSION)
    assert serial > 0, os.strerror(ctypes.get_errno())
    child = subprocess.run([sys.executable, "-c", _READ_BACK.format(serial=serial)], capture_output=True, check=True)
    assert child.stdout == secret  # the attack is real: any child of the supervisor reads it
    try:
        yield desc, secret, serial
    finally:
        _libc.syscall(ctypes.c_long(_KEYCTL), _KEYCTL_INVALIDATE, serial)


@contextmanager
def host_listeners(folder: Path) -> Iterator[dict[str, Any]]:
    """A TCP server on 127.0.0.1, a Unix socket file and an abstract socket, all reachable from here."""
    sockets: list[socket.socket] = []
    tcp = socket.create_server(("127.0.0.1", 0))
    sockets.append(tcp)
    unix_path = folder / "catalog.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    sockets.append(unix)
    abstract_name = f"twh-test-{secrets.token_hex(6)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    sockets.append(abstract)
    socket.create_connection(("127.0.0.1", tcp.getsockname()[1]), timeout=2).close()
    try:
        yield {"tcp": tcp.getsockname()[1], "unix": str(unix_path), "abstract": abstract_name}
    finally:
        for s in sockets:
            s.close()


def write_targets(folder: Path, *, listeners: dict[str, Any], files: list[Path], key: tuple[str, bytes, int],
                  needles: dict[str, str]) -> None:
    """``attack.json`` for :data:`ATTACK` (needles hex-encoded, so the file itself is no hit)."""
    (folder / "attack.json").write_text(json.dumps({
        **listeners, "files": [str(p) for p in files], "key_desc": key[0], "key_serial": key[2],
        "needles": {k: v.encode().hex() for k, v in needles.items()}}))


#: In-sandbox source of ``fate(fn)``: run ``fn`` (a raw syscall wrapper that needs ``libc``) in a
#: forked child and say how it ended - 'SIG<n>' if the kernel killed it, 'ok', or the errno's name.
FATE = r'''
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def fate(fn):
    pid = os.fork()
    if pid == 0:
        try:
            r = fn()
            os._exit(0 if r >= 0 else min(ctypes.get_errno(), 199) + 1)
        except BaseException:
            os._exit(250)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"SIG{os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    return "ok" if code == 0 else ("error" if code == 250 else os.strerror(code - 1))
'''


ATTACK = FATE + r'''
import socket, sys, time
_P = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "attack.json")))
def _sys(nr, *args):
    return lambda: libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])

def _try(fn):
    try:
        fn()
        return "succeeded"
    except Exception as exc:
        return type(exc).__name__

def _unix(address):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    s.connect(address)

def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""

_out = {"uid": os.getuid()}
_out["net"] = {
    "tcp": _try(lambda: socket.create_connection(("127.0.0.1", _P["tcp"]), timeout=2)),
    "unix": _try(lambda: _unix(_P["unix"])),
    "abstract": _try(lambda: _unix("\0" + _P["abstract"])),
    "dns": _try(lambda: socket.getaddrinfo("example.com", 443)),
    "public": _try(lambda: socket.create_connection(("1.1.1.1", 53), timeout=2)),
    "vsock": fate(_sys(41, 40, 1, 0)),
}
_out["files"] = {p: _try(lambda p=p: open(p, "rb").read()) for p in _P["files"]}
_buf = ctypes.create_string_buffer(256)
_out["keyring"] = {"search": fate(_sys(250, 10, -3, b"user", _P["key_desc"].encode(), 0)),
                   "read": fate(_sys(250, 11, _P["key_serial"], _buf, 256)),
                   "proc_keys": _P["key_desc"] in _read("/proc/keys")}
_out["syscalls"] = {"keyctl": fate(_sys(250, 0, -3, 0)), "ptrace": fate(_sys(101, 0, 0, 0, 0)),
                    "io_uring_setup": fate(_sys(425, 8, ctypes.create_string_buffer(256))),
                    "unshare": fate(_sys(272, 0x10000000)), "bpf": fate(_sys(321, 0, ctypes.create_string_buffer(128), 128)),
                    "userfaultfd": fate(_sys(323, 0)), "mount": fate(_sys(165, b"none", b"/tmp", b"tmpfs", 0, None))}
_needles = {k: bytes.fromhex(v).decode() for k, v in _P["needles"].items()}
_texts = {p: _read(p) for p in ("/proc/self/mountinfo", "/proc/self/mounts", "/proc/self/cmdline", "/proc/1/cmdline",
                                "/proc/self/environ", "/proc/1/environ", "/proc/self/cgroup", "/proc/self/maps")}
_texts["cwd"] = os.getcwd()
_texts["sys"] = repr([sys.executable, sys.prefix, sys.path, __file__])
_out["host_paths"] = sorted(f"{k} in {where}" for k, n in _needles.items() for where, t in _texts.items() if n in t)
_out["mountinfo_lines"] = _texts["/proc/self/mountinfo"].count("\n")
if os.fork() == 0:  # a process that means to outlive the job
    os.setsid()
    if os.fork() == 0:
        while True:
            time.sleep(0.05)
    os._exit(0)
print("TWH-ATTACK " + json.dumps(_out), flush=True)
'''


def attack_report(stdout: bytes) -> dict[str, Any]:
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("TWH-ATTACK "):
            return json.loads(line[len("TWH-ATTACK "):])
    raise AssertionError(f"the attack did not report: {stdout[-2000:]!r}")


def check_attack(report: dict[str, Any], files: list[Path]) -> None:
    """Every attempt failed, each in the way its defence makes it fail."""
    net = report["net"]
    assert "succeeded" not in net.values(), net
    assert net["tcp"] == "ConnectionRefusedError" and net["abstract"] == "ConnectionRefusedError", net  # own lo
    assert net["unix"] == "FileNotFoundError" and net["vsock"] == SIGSYS, net
    assert report["files"] == {str(p): "FileNotFoundError" for p in files}
    assert report["keyring"] == {"search": SIGSYS, "read": SIGSYS, "proc_keys": False}
    assert report["syscalls"] == {k: SIGSYS for k in report["syscalls"]}
    assert report["host_paths"] == [] and report["mountinfo_lines"] > 5
