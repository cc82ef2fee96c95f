"""The system-call allow-list (``sandbox/isolation/seccomp.py``): attacks die, ordinary work runs.

Each forbidden call is made from job code through ``ctypes``' ``syscall()`` in a forked child, so
one run tries them all; the child's fate is reported: ``SIGSYS`` (killed by the filter), an
errno, or ``ok``. Without the filter every one of them would answer an errno or succeed (several
do succeed for an unprivileged process: keyctl, add_key, io_uring_setup, ptrace(TRACEME),
userfaultfd, personality), so each assertion fails if the filter is removed or the call is
allowed.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys

import pytest
import sandbox_attacks

from sandbox.errors import SandboxError
from sandbox.isolation import seccomp
from sandbox.isolation.runner import SandboxOutcome

SIGSYS = int(signal.SIGSYS)

# name -> (x86-64 number, arguments); arguments are what an attacker would pass.
FORBIDDEN = {
    "keyctl": (250, (0, -3, 0)),  # KEYCTL_GET_KEYRING_ID of the session keyring
    "add_key": (248, (b"user", b"twh", b"secret", 6, -3)),
    "request_key": (249, (b"user", b"twh", None, -3)),
    "io_uring_setup": (425, (8, "params")),
    "ptrace": (101, (0, 0, 0, 0)),  # PTRACE_TRACEME
    "unshare": (272, (0x10000000,)),  # CLONE_NEWUSER
    "mount": (165, (b"none", b"/tmp", b"tmpfs", 0, None)),
    "bpf": (321, (0, "params", 128)),  # BPF_MAP_CREATE
    "perf_event_open": (298, ("params", 0, -1, -1, 0)),
    "userfaultfd": (323, (0,)),
    "setns": (308, (0, 0)),
    "kexec_load": (246, (0, 0, None, 0)),
    "init_module": (175, (None, 0, b"")),
    "process_vm_readv": (310, (1, None, 0, None, 0, 0)),
    "personality(ADDR_NO_RANDOMIZE)": (135, (0x0040000,)),
    "personality(READ_IMPLIES_EXEC)": (135, (0x0400000,)),
    "pidfd_getfd": (438, (0, 0, 0)),
    "socket(AF_VSOCK)": (41, (40, 1, 0)),
    "socket(AF_PACKET)": (41, (17, 3, 0)),
    "socket(AF_NETLINK, NETLINK_AUDIT)": (41, (16, 3, 9)),
    "socket(AF_VSOCK with high bits)": (41, (0x1_0000_0028, 1, 0)),  # the kernel reads the low 32 bits
    "clone(CLONE_NEWUSER)": (56, (0x10000000 | 17, 0, 0, 0, 0)),
    "clone(CLONE_NEWNET)": (56, (0x40000000 | 17, 0, 0, 0, 0)),
    "ioctl(TIOCSTI)": (16, (1, 0x5412, b"x")),
    "ioctl(TIOCSTI with high bits)": (16, (1, 0x1_0000_5412, b"x")),
    "prctl(PR_SET_PTRACER)": (157, (0x59616D61, -1, 0, 0, 0)),
    "prctl(PR_SET_MM)": (157, (35, 1, 0, 0, 0)),
    "seccomp": (317, (0, 0, None)),
    "x32 ABI getpid": (0x40000000 | 39, ()),
    "x32 ABI keyctl": (0x40000000 | 250, (0, -3, 0)),
}

_ATTEMPT = sandbox_attacks.FATE + r'''
import mmap

def arg(a):
    if a == "params":  # a zeroed struct the call may read
        return ctypes.create_string_buffer(256)
    return ctypes.c_long(a) if isinstance(a, int) else a

def syscall(nr, args):
    return lambda: libc.syscall(ctypes.c_long(nr), *[arg(a) for a in args])

def i386_getpid():
    # mov eax, 20 (getpid in the i386 table); int 0x80; ret - the 32-bit entry from 64-bit code
    code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    return ctypes.CFUNCTYPE(ctypes.c_long)(addr)()

calls = CALLS
out = {name: fate(syscall(nr, args)) for name, (nr, args) in calls.items()}
out["i386 int 0x80 getpid"] = fate(i386_getpid)
print(json.dumps(out))
'''


def _attempts(run_job, calls: dict) -> dict:
    code = f"CALLS = {calls!r}\n" + _ATTEMPT
    result = run_job(code)
    assert result.outcome is SandboxOutcome.SUCCEEDED, (result.reason, result.stderr[-2000:])
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or __import__("platform").machine() != "x86_64",
                    reason="the system-call numbers here are x86-64's")
def test_forbidden_system_calls_kill_the_job(run_job) -> None:
    seen = _attempts(run_job, FORBIDDEN)
    assert {name: fate for name, fate in seen.items() if fate != f"SIG{SIGSYS}"} == {}, seen


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="x86-64 numbers")
def test_the_same_calls_do_not_die_without_the_filter(run_job, without_seccomp) -> None:
    # The control for the test above: what the attacks get from the other layers alone. Some
    # succeed outright (nothing else would have stopped them), none dies of SIGSYS.
    seen = _attempts(run_job, FORBIDDEN)
    assert f"SIG{SIGSYS}" not in seen.values(), seen
    assert seen["ptrace"] == "ok", seen  # (and, in a VM with vsock, socket(AF_VSOCK): not namespaced)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(ctypes.c_long(250), 0, -3, 0) >= 0:  # where the host has keyrings at all
        assert seen["keyctl"] == "ok" and seen["add_key"] == "ok", seen


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="x86-64 numbers")
def test_softer_answers_where_python_needs_a_clean_failure(run_job) -> None:
    seen = _attempts(run_job, {
        "clone3": (435, ("params", 88)),  # glibc then falls back to clone(), which is checked
        "setuid(0)": (105, (0,)),
        "setgroups": (116, (0, None)),
        "personality(query)": (135, (0xFFFFFFFF,)),
        "socket(AF_INET)": (41, (2, 1, 0)),
        "socket(AF_NETLINK, NETLINK_ROUTE)": (41, (16, 3, 0)),
        "getpid": (39, ()),
    })
    seen.pop("i386 int 0x80 getpid")
    assert seen == {"clone3": "Function not implemented", "setuid(0)": "Operation not permitted",
                    "setgroups": "Operation not permitted", "personality(query)": "ok", "socket(AF_INET)": "ok",
                    "socket(AF_NETLINK, NETLINK_ROUTE)": "ok", "getpid": "ok"}


def test_ordinary_work_runs_under_the_filter(run_job) -> None:
    """Threads, processes, pools, NumPy/pandas, files, sockets: all a data job does."""
    result = run_job("""
        import concurrent.futures, json, multiprocessing, os, socket, subprocess, sys, tempfile, threading
        import numpy as np, pandas as pd

        def main():
            out = {}
            out["status"] = [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Seccomp")]
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                out["threads"] = sum(ex.map(lambda x: x * x, range(100)))
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(2) as pool:
                out["processes"] = sum(pool.map(abs, range(-10, 0)))
            with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
                out["spawned"] = ex.submit(abs, -7).result()  # a fresh /opt/venv/bin/python
            import asyncio
            async def echo():
                await asyncio.sleep(0.01)
                proc = await asyncio.create_subprocess_exec("/bin/echo", "hi", stdout=asyncio.subprocess.PIPE)
                return (await proc.communicate())[0].decode().strip()
            out["asyncio"] = asyncio.run(echo())
            os.sync()
            out["subprocess"] = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True,
                                               text=True, check=True).stdout.strip()
            a, b = socket.socketpair()
            a.sendall(b"ping"); out["socketpair"] = b.recv(4).decode()
            a.setblocking(False); out["nonblocking"] = a.getblocking()
            with tempfile.TemporaryDirectory() as d:
                df = pd.DataFrame({"k": list("abcab"), "v": np.arange(5.0)})
                df.to_csv(os.path.join(d, "x.csv"))
                out["groupby"] = df.groupby("k")["v"].sum().to_dict()
            out["linalg"] = round(float(np.linalg.det(np.eye(3) * 2)), 6)
            out["isatty"] = sys.stdout.isatty()
            open("/out/result.json", "w").write(json.dumps(out))
            print(json.dumps(out))

        if __name__ == "__main__":  # spawn re-imports this module
            main()
    """)
    assert result.outcome is SandboxOutcome.SUCCEEDED, (result.reason, result.stderr[-3000:])
    seen = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert seen == {"status": ["Seccomp:\t2", "Seccomp_filters:\t1"], "threads": 328350, "processes": 55,
                    "spawned": 7, "asyncio": "hi", "subprocess": "42", "socketpair": "ping", "nonblocking": False,
                    "groupby": {"a": 3.0, "b": 5.0, "c": 2.0}, "linalg": 8.0, "isatty": False}
    assert [o.name for o in result.outputs] == ["result.json"]


def test_a_forbidden_call_is_reported_as_such(run_job) -> None:
    result = run_job("import ctypes; ctypes.CDLL(None).syscall(250, 0, -3, 0); print('survived')")
    assert result.outcome is SandboxOutcome.FAILED and result.exit_code == 128 + SIGSYS
    assert "allow-list" in result.reason and b"survived" not in result.stdout


def test_the_policy_allows_nothing_it_names_as_denied() -> None:
    allowed = {name for family in seccomp.FAMILIES for name in family.syscalls}
    conditional = {rule.syscall for rule in seccomp.CONDITIONAL if rule.action == "allow"}
    assert not set(seccomp.DENIED_EXAMPLES) & (allowed | conditional)
    assert all(family.why for family in seccomp.FAMILIES)
    # ioctl and prctl only with listed arguments; clone3 and the identity calls only softly refused
    assert {"ioctl", "prctl", "clone", "socket", "socketpair", "personality"} <= conditional - allowed
    assert {rule.action for rule in seccomp.CONDITIONAL if rule.syscall == "clone3"} == {"ENOSYS"}


def test_the_program_is_built_once_per_process_and_each_run_gets_a_fresh_pipe() -> None:
    import os

    first = seccomp.bpf_program()
    assert seccomp.bpf_program() is first and len(first) % 8 == 0
    fds = [seccomp.program_fd(), seccomp.program_fd()]
    try:
        assert fds[0] != fds[1]
        assert [os.read(fd, len(first) + 1) for fd in fds] == [first, first]  # the whole program, then EOF
    finally:
        for fd in fds:
            os.close(fd)


def test_a_missing_libseccomp_is_a_clear_sandbox_error() -> None:
    code = ("import sys; sys.modules['pyseccomp'] = None\n"
            "from sandbox.isolation import seccomp\n"
            "from sandbox.errors import SandboxError\n"
            "try:\n    seccomp.bpf_program()\nexcept SandboxError as e:\n    print(e.message)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "apt-get install libseccomp2" in out
    assert issubclass(SandboxError, Exception)
