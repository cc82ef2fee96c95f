"""Kernel key rings: a secret in the supervisor's session keyring never reaches a job.

A session keyring is inherited by children, across ``setuid`` too, and its owner's keys are
readable by whoever *possesses* the keyring, whatever their uid. Two layers stop that: the
launcher joins a fresh, empty session keyring before anything of the job starts
(``stage._fresh_keyring``), and the seccomp allow-list kills every keyring call. The job tries
to find the key by name, to read it by its serial number, and to list it in ``/proc/keys``;
first with both layers, then with the fresh keyring alone.
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from sandbox.isolation.runner import SandboxOutcome

_KEYCTL, _ADD_KEY = 250, 248  # x86-64
_KEYCTL_JOIN_SESSION_KEYRING, _KEYCTL_READ, _KEYCTL_SEARCH, _KEYCTL_INVALIDATE = 1, 11, 10, 21
_SESSION = -3

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 system-call numbers")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


@pytest.fixture
def supervisor_key() -> Iterator[tuple[str, bytes, int]]:
    """A secret in the supervisor's (this process's) own session keyring, as a deployment
    might keep a database password there."""
    name = f"twh-test-{secrets.token_hex(4)}".encode()
    if _libc.syscall(ctypes.c_long(_KEYCTL), _KEYCTL_JOIN_SESSION_KEYRING, name) < 0:
        pytest.skip(f"no kernel keyrings here ({os.strerror(ctypes.get_errno())})")
    desc, secret = f"db-password-{secrets.token_hex(4)}", f"s3cr3t-{secrets.token_hex(8)}".encode()
    serial = _libc.syscall(ctypes.c_long(_ADD_KEY), b"user", desc.encode(), secret, len(secret), _SESSION)
    assert serial > 0, os.strerror(ctypes.get_errno())
    # The supervisor reads it back, and so does any child of it: the attack is real.
    child = subprocess.run([sys.executable, "-c", _READ_BACK.format(serial=serial)], capture_output=True, check=True)
    assert child.stdout == secret
    yield desc, secret, serial
    _libc.syscall(ctypes.c_long(_KEYCTL), _KEYCTL_INVALIDATE, serial)


_READ_BACK = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
n = libc.syscall(ctypes.c_long(250), 11, {serial}, buf, 256)
sys.stdout.buffer.write(buf.raw[:n] if n > 0 else b"")
"""

_JOB = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True); libc.syscall.restype = ctypes.c_long

def fate(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.write(w, json.dumps(fn()).encode())
        os._exit(0)
    os.close(w)
    data = os.read(r, 4096)
    _, status = os.waitpid(pid, 0)
    return f"SIG{{os.WTERMSIG(status)}}" if os.WIFSIGNALED(status) else json.loads(data)

def search():
    n = libc.syscall(ctypes.c_long(250), 10, -3, b"user", {desc!r}.encode(), 0)
    return n if n >= 0 else os.strerror(ctypes.get_errno())

def read():
    buf = ctypes.create_string_buffer(256)
    n = libc.syscall(ctypes.c_long(250), 11, {serial}, buf, 256)
    return buf.raw[:n].decode() if n >= 0 else os.strerror(ctypes.get_errno())

print(json.dumps({{"search": fate(search), "read": fate(read), "proc_keys": open("/proc/keys").read()}}))
"""


def _attack(run_job, key: tuple[str, bytes, int]) -> dict:
    desc, secret, serial = key
    result = run_job(_JOB.format(desc=desc, serial=serial))
    assert result.outcome is SandboxOutcome.SUCCEEDED, (result.reason, result.stderr[-2000:])
    assert secret not in result.stdout + result.stderr
    seen = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert desc not in seen.pop("proc_keys")
    return seen


def test_a_job_cannot_reach_the_supervisors_session_keyring(run_job, supervisor_key) -> None:
    sigsys = f"SIG{int(signal.SIGSYS)}"
    assert _attack(run_job, supervisor_key) == {"search": sigsys, "read": sigsys}


def test_the_fresh_session_keyring_alone_hides_the_key(run_job, supervisor_key, without_seccomp) -> None:
    # Without the filter the calls run: the key is neither found by name in the job's session
    # keyring (a new, empty one) nor readable by serial (the job no longer possesses it).
    assert _attack(run_job, supervisor_key) == {"search": "Required key not available",
                                                 "read": "Permission denied"}
