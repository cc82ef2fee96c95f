"""Kernel key rings: a secret in the supervisor's session keyring never reaches a job.

A session keyring is inherited by children, across ``setuid`` too, and its owner's keys are
readable by whoever *possesses* the keyring, whatever their uid. Two layers stop that: the
launcher joins a fresh, empty session keyring before anything of the job starts
(``stage._fresh_keyring``), and the seccomp allow-list kills every keyring call. The job tries
to find the key by name, to read it by its serial number, and to list it in ``/proc/keys``;
first with both layers, then with the fresh keyring alone.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import pytest
import sandbox_attacks

from sandbox.isolation.runner import SandboxOutcome

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 system-call numbers")


@pytest.fixture
def supervisor_key() -> Iterator[tuple[str, bytes, int]]:
    with sandbox_attacks.supervisor_key() as key:
        yield key


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


def test_the_shared_attack_fails_in_a_job_sandbox(run_job, supervisor_key, tmp_path) -> None:
    """The same attack the trainer's and the model export's sandboxes get (tests/training)."""
    from sandbox.isolation.procs import processes_of_uid

    secret_file = tmp_path / "warehouse" / "tables" / "part-0.parquet"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_bytes(b"raw rows")
    with sandbox_attacks.host_listeners(tmp_path) as listeners:
        folder = tmp_path / "attack"
        folder.mkdir()
        sandbox_attacks.write_targets(folder, listeners=listeners, files=[secret_file], key=supervisor_key,
                                      needles={"home": str(tmp_path / "warehouse"), "tmp": str(tmp_path)})
        result = run_job(sandbox_attacks.ATTACK, files={"attack.json": (folder / "attack.json").read_text()})
    report = sandbox_attacks.attack_report(result.stdout)
    sandbox_attacks.check_attack(report, [secret_file])
    assert result.outcome is SandboxOutcome.SUCCEEDED and processes_of_uid(report["uid"]) == []
