"""Hostile jobs (THREATS.md §1). Each test performs the attack inside the sandbox, shows that it
failed, and checks the run ended with the expected outcome. Each would fail if the defence it
names were removed from the runner.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.isolation.cgroup import _parents
from sandbox.isolation.procs import processes_of_uid
from sandbox.isolation.runner import SandboxLimits, SandboxOutcome

REPO = Path(__file__).resolve().parents[2]


def report(result) -> dict:
    """Jobs print one JSON object as their last stdout line."""
    assert result.stdout, (result.outcome, result.reason, result.stderr[-2000:])
    return json.loads(result.stdout.decode().strip().splitlines()[-1])


# -- host files --------------------------------------------------------------------------------

@pytest.fixture
def warehouse_secrets(tmp_path: Path) -> Iterator[list[Path]]:
    """Secret files where a warehouse would keep them: the test's tmp dir and <repo>/var/."""
    token = secrets.token_hex(8)
    in_tmp = tmp_path / "warehouse" / "sales" / "part-0.parquet"
    in_tmp.parent.mkdir(parents=True)
    in_tmp.write_text(f"raw rows {token}")
    var_dir = REPO / "var" / f"sandbox-test-{token}"
    var_dir.mkdir(parents=True)
    in_var = var_dir / "secret.csv"
    in_var.write_text(f"raw rows {token}")
    catalog = tmp_path / "catalog.sqlite"
    with sqlite3.connect(catalog) as db:
        db.execute("CREATE TABLE t (v TEXT)")
        db.execute("INSERT INTO t VALUES (?)", (token,))
    db.close()
    yield [in_tmp, in_var, catalog]
    for p in (in_var,):
        p.unlink()
    var_dir.rmdir()


def _venv_chain() -> list[str]:
    """The folders from / down to the venv (a checkout may live anywhere, CI clones under /tmp)."""
    return [str(p) for p in reversed(Path(sys.prefix).parents) if p != Path("/")]


def test_host_files_are_invisible(run_job, warehouse_secrets: list[Path]) -> None:
    in_tmp, in_var, catalog = warehouse_secrets
    result = run_job(f"""
        import json, os, sqlite3
        out = {{}}
        for p in {[str(p) for p in warehouse_secrets]!r}:
            try:
                out[p] = open(p).read()
            except OSError as exc:
                out[p] = type(exc).__name__
        try:
            sqlite3.connect("file:{catalog}?mode=ro", uri=True).execute("SELECT * FROM t").fetchall()
            out["sqlite"] = "read"
        except sqlite3.Error as exc:
            out["sqlite"] = "refused"
        for d in {["/", "/root", "/etc", "/var", "/run", "/home", "/tmp", "/sys", *_venv_chain()]!r}:
            try:
                out[d] = sorted(os.listdir(d))
            except OSError as exc:
                out[d] = type(exc).__name__
        print(json.dumps(out))
    """)
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.stderr
    seen = report(result)
    for p in warehouse_secrets:
        assert seen[str(p)] == "FileNotFoundError"
    assert seen["sqlite"] == "refused"
    # Neither the checkout, the venv nor the interpreter's install is at its host path: the
    # Python install is shown at /opt/python and /opt/venv only (see sandbox.isolation.mounts).
    for d in ("/root", "/etc", "/var", "/run", "/home", "/sys", *_venv_chain()):
        if d != "/tmp":
            assert seen[d] == "FileNotFoundError", d
    assert seen["/tmp"] == []  # the private tmpfs, even when the checkout lives under /tmp
    assert set(seen["/"]) <= {"bin", "dev", "job", "lib", "lib64", "opt", "out", "proc", "sbin", "tmp", "twh",
                              "usr"}


def test_read_only_everywhere_but_out_and_tmp(run_job) -> None:
    result = run_job("""
        import json
        out = {}
        for p in ["/x", "/job/x", "/usr/x", "/twh/x", "/dev/x", "/opt/x", "/opt/venv/x", "/opt/venv/lib/x",
                  "/opt/venv/bin/x", "/out/../x", "/tmp/x", "/out/x.csv"]:
            try:
                open(p, "w").close()
                out[p] = "written"
            except OSError as exc:
                out[p] = exc.errno
        print(json.dumps(out))
    """)
    seen = report(result)
    assert seen.pop("/tmp/x") == "written" and seen.pop("/out/x.csv") == "written"
    assert all(v in (13, 30) for v in seen.values()), seen  # EACCES / EROFS
    scratch = run_job.scratch  # type: ignore[attr-defined]
    assert sorted(p.name for p in scratch.iterdir()) == ["job"]  # nothing escaped; /out is a tmpfs
    assert [o.name for o in result.outputs] == ["x.csv"]


# -- network -----------------------------------------------------------------------------------

@pytest.fixture
def host_listeners(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A TCP server on 127.0.0.1 (and ::1 if present), a Unix socket file and an abstract socket."""
    sockets: list[socket.socket] = []
    tcp = socket.create_server(("127.0.0.1", 0))
    sockets.append(tcp)
    info: dict[str, object] = {"tcp": tcp.getsockname()[1]}
    try:
        tcp6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
        sockets.append(tcp6)
        info["tcp6"] = tcp6.getsockname()[1]
    except OSError:
        info["tcp6"] = None
    path = tmp_path / "catalog.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(path))
    unix.listen()
    path.parent.chmod(0o755)
    sockets.append(unix)
    info["unix"] = str(path)
    abstract_name = f"twh-test-{secrets.token_hex(6)}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    sockets.append(abstract)
    info["abstract"] = abstract_name
    # Prove the listeners work from the host, so "unreachable" below means the sandbox.
    socket.create_connection(("127.0.0.1", info["tcp"]), timeout=2).close()
    probe = socket.socket(socket.AF_UNIX)
    probe.connect("\0" + abstract_name)
    probe.close()
    yield info
    for s in sockets:
        s.close()


def test_network_is_unreachable(run_job, host_listeners: dict[str, object]) -> None:
    result = run_job(f"""
        import json, socket
        info = {host_listeners!r}
        out = {{}}
        def attempt(key, fn):
            try:
                fn()
                out[key] = "connected"
            except OSError as exc:
                out[key] = type(exc).__name__
        attempt("tcp", lambda: socket.create_connection(("127.0.0.1", info["tcp"]), timeout=2))
        if info["tcp6"]:
            attempt("tcp6", lambda: socket.create_connection(("::1", info["tcp6"]), timeout=2))
        attempt("dns", lambda: socket.getaddrinfo("example.com", 443))
        attempt("public", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
        attempt("public6", lambda: socket.create_connection(("2606:4700:4700::1111", 53), timeout=2))
        def unix_path():
            s = socket.socket(socket.AF_UNIX); s.connect(info["unix"])
        def unix_abstract():
            s = socket.socket(socket.AF_UNIX); s.connect("\\0" + info["abstract"])
        attempt("unix", unix_path)
        attempt("abstract", unix_abstract)
        out["interfaces"] = [line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:]]
        print(json.dumps(out))
    """)
    assert result.outcome is SandboxOutcome.SUCCEEDED, result.stderr
    seen = report(result)
    assert seen.pop("interfaces") == ["lo"]
    assert "connected" not in seen.values(), seen
    assert seen["tcp"] == "ConnectionRefusedError"  # the sandbox's own lo, where nobody listens
    assert seen["abstract"] == "ConnectionRefusedError"
    assert seen["unix"] == "FileNotFoundError"


# -- environment, identity, capabilities, other processes --------------------------------------

def test_caller_secrets_do_not_reach_any_process(run_job, monkeypatch) -> None:
    secret = "s3cr3t-" + secrets.token_hex(8)
    monkeypatch.setenv("TWH_DB_PASSWORD", secret)
    result = run_job("""
        import json, os
        found = {}
        for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
            try:
                found[pid] = open(f"/proc/{pid}/environ", "rb").read().decode("latin-1")
            except OSError as exc:
                found[pid] = type(exc).__name__
        open("/out/env.json", "w").write(json.dumps(found))
        print(json.dumps(found))
    """)
    assert result.outcome is SandboxOutcome.SUCCEEDED
    seen = report(result)
    assert "PATH=/usr/bin:/bin" in seen["1"]  # bwrap's init was readable, and is clean
    assert secret.encode() not in result.stdout + result.stderr
    assert all(secret.encode() not in o.data for o in result.outputs)


def test_no_privileges_inside(run_job) -> None:
    result = run_job("""
        import ctypes, json, os, resource
        status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
        libc = ctypes.CDLL(None, use_errno=True)
        out = {k: status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs")}
        out["uid"], out["euid"], out["gid"] = os.getuid(), os.geteuid(), os.getgid()
        out["groups"] = os.getgroups()
        try:
            os.setuid(0)
            out["setuid"] = "ok"
        except OSError:  # EPERM from the filter (EINVAL without: uid 0 does not exist in the userns)
            out["setuid"] = "denied"
        out["hostname"] = os.uname().nodename
        out["core"] = resource.getrlimit(resource.RLIMIT_CORE)
        print(json.dumps(out))
    """)
    seen = report(result)
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(seen[key], 16) == 0, (key, seen[key])
    assert seen["NoNewPrivs"] == "1"
    assert seen["uid"] != 0 and seen["euid"] != 0 and seen["gid"] != 0
    assert seen["uid"] >= 200_000 and seen["groups"] == [seen["gid"]] or seen["groups"] == []
    assert seen["setuid"] == "denied"
    assert seen["hostname"] == "twh-job" != socket.gethostname()
    assert seen["core"] == [0, 0]


def test_no_new_namespaces_or_mounts_even_without_the_seccomp_filter(run_job, without_seccomp) -> None:
    # The filter kills unshare/mount (tests/isolation/test_seccomp.py); under it, no capabilities
    # and --disable-userns refuse them as well.
    result = run_job("""
        import ctypes, json
        libc = ctypes.CDLL(None, use_errno=True)
        out = {"userns": libc.unshare(0x10000000)}  # CLONE_NEWUSER: would regain caps in a new ns
        out["mount"] = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
        out["status"] = [l for l in open("/proc/self/status").read().splitlines() if l.startswith("Seccomp:")]
        print(json.dumps(out))
    """)
    seen = report(result)
    assert seen["status"] == ["Seccomp:\t2"]  # a filter, but the allow-everything one
    assert seen["userns"] == -1 and seen["mount"] == -1


def test_supervisor_is_out_of_reach(run_job, supervisor_pid: int, without_seccomp) -> None:
    # The pid namespace alone (the filter would kill ptrace before it is even tried).
    result = run_job(f"""
        import ctypes, json, os, signal
        out = {{"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}}
        try:
            os.kill({supervisor_pid}, 0)
            out["kill"] = "reachable"
        except ProcessLookupError:
            out["kill"] = "no such process"
        libc = ctypes.CDLL(None, use_errno=True)
        out["ptrace"] = libc.ptrace(16, {supervisor_pid}, None, None)  # PTRACE_ATTACH
        # bwrap's init is the only other process; it must hold nothing worth hijacking.
        status = dict(line.split(":", 1) for line in open("/proc/1/status").read().splitlines())
        out["init_caps"] = [int(status[k], 16) for k in ("CapPrm", "CapEff", "CapBnd", "CapAmb")]
        print(json.dumps(out))
    """)
    seen = report(result)
    assert seen["kill"] == "no such process"
    assert seen["ptrace"] == -1 and seen["init_caps"] == [0, 0, 0, 0]
    assert supervisor_pid not in seen["pids"] and max(seen["pids"]) < 10  # its own pid namespace


def test_terminal_injection_is_impossible(run_job, without_seccomp) -> None:
    # The new session alone (the filter would kill ioctl(TIOCSTI) before it is even tried).
    result = run_job("""
        import fcntl, json, os, termios
        out = {"sid": os.getsid(0)}
        for fd in (0, 1, 2):
            try:
                fcntl.ioctl(fd, termios.TIOCSTI, b"x")
                out[str(fd)] = "injected"
            except OSError as exc:
                out[str(fd)] = exc.errno
        try:
            os.open("/dev/tty", os.O_RDWR)
            out["tty"] = "opened"
        except OSError as exc:
            out["tty"] = exc.errno
        print(json.dumps(out))
    """)
    seen = report(result)
    # --new-session: the session starts inside the sandbox (at its init), so there is no
    # controlling terminal to inject into; without it getsid() would be 0 (a leader outside).
    assert seen.pop("sid") == 1
    assert "injected" not in seen.values() and seen["tty"] != "opened"


def test_only_the_broker_fd_is_inherited(run_job) -> None:
    result = run_job("""
        import json, os, stat
        fds = sorted(int(f) for f in os.listdir("/proc/self/fd"))
        kinds = {}
        for fd in fds:
            try:
                kinds[fd] = stat.S_IFMT(os.fstat(fd).st_mode)
            except OSError:
                kinds[fd] = None  # the directory listing's own fd, already closed
        print(json.dumps({"fds": fds, "broker_is_socket": stat.S_ISSOCK(kinds[3])}))
    """)
    seen = report(result)
    assert seen["fds"] == [0, 1, 2, 3, 4]  # 4 is the listing of /proc/self/fd itself
    assert seen["broker_is_socket"]


# -- resources ---------------------------------------------------------------------------------

def test_memory_balloon_fails_inside(run_job) -> None:
    result = run_job("""
        import mmap, resource, sys
        print("AS", resource.getrlimit(resource.RLIMIT_AS)[0], flush=True)
        try:
            mmap.mmap(-1, 2 * 1024**3)  # 2 GiB: fine for this host, over the 1 GiB limit
            print("mapped 2 GiB", flush=True)
        except OSError:
            print("mmap refused", flush=True)
        blob = bytearray(50 * 1024**3)
    """, limits=SandboxLimits(memory_bytes=1024**3, wall_seconds=30))
    assert result.outcome is SandboxOutcome.FAILED
    assert result.stdout == f"AS {1024**3}\nmmap refused\n".encode()
    assert b"MemoryError" in result.stderr


@pytest.mark.skipif(not _parents("probe"), reason="no writable cgroup on this host")
def test_memory_outside_rlimit_as_is_bounded_by_the_run_cgroup(run_job) -> None:
    # memfd pages are not mapped, so RLIMIT_AS never sees them; the run's cgroup does.
    result = run_job("""
        import os
        fds = []
        for i in range(20):
            fd = os.memfd_create(f"m{i}")
            for _ in range(30):
                os.write(fd, b"x" * 1024**2)
            fds.append(fd)
            print((i + 1) * 30, flush=True)
    """, limits=SandboxLimits(memory_bytes=256 * 1024**2, wall_seconds=30))
    assert result.outcome is SandboxOutcome.FAILED and "SIGKILL" in result.reason
    assert int(result.stdout.split()[-1]) <= 256


def test_fork_bomb_is_bounded(run_job) -> None:
    limits = SandboxLimits(max_processes=32, wall_seconds=3)
    t0 = time.monotonic()
    result = run_job("""
        import os, time
        n = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError:
            print("blocked after", n, flush=True)
        while True:  # now the bomb proper: every process forks for ever
            try:
                os.fork()
            except OSError:
                pass
    """, limits=limits)
    elapsed = time.monotonic() - t0
    assert result.outcome is SandboxOutcome.TIMED_OUT
    blocked = int(result.stdout.split()[2])
    assert blocked < limits.max_processes  # the uid's own processes, bwrap's two included
    assert elapsed < limits.wall_seconds + 5
    assert result.leftover_processes_killed >= blocked


def test_cpu_spin_is_killed_by_the_cpu_limit(run_job) -> None:
    t0 = time.monotonic()
    result = run_job("while True: pass", limits=SandboxLimits(cpu_seconds=1, wall_seconds=20))
    assert result.outcome is SandboxOutcome.FAILED
    assert "SIGXCPU" in result.reason or "SIGKILL" in result.reason
    assert time.monotonic() - t0 < 10


def test_sleeping_job_times_out(run_job) -> None:
    t0 = time.monotonic()
    result = run_job("import time\nprint('started', flush=True)\ntime.sleep(60)",
                     limits=SandboxLimits(wall_seconds=1.5))
    assert result.outcome is SandboxOutcome.TIMED_OUT and result.exit_code is None
    assert result.stdout == b"started\n"
    assert 1.5 <= time.monotonic() - t0 < 5
    assert result.leftover_processes_killed >= 1  # the job itself


def test_file_size_limit(run_job) -> None:
    result = run_job("""
        import errno, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            with open("/tmp/big", "wb") as f:
                f.write(b"x" * (100 * 1024**2))
            print("wrote 100 MB")
        except OSError as exc:
            print("EFBIG" if exc.errno == errno.EFBIG else exc.errno)
    """, limits=SandboxLimits(max_file_bytes=1024**2, wall_seconds=30))
    assert result.stdout == b"EFBIG\n"
    # Python ignores SIGXFSZ by default; a job that restores it is killed by the kernel instead.
    result = run_job("""
        import signal
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        open('/tmp/big', 'wb').write(b'x' * (100 * 1024**2))
    """, limits=SandboxLimits(max_file_bytes=1024**2, wall_seconds=30))
    assert result.outcome is SandboxOutcome.FAILED and "SIGXFSZ" in result.reason


def test_tmp_is_a_small_private_tmpfs(run_job) -> None:
    result = run_job("""
        import errno
        written = 0
        try:
            for i in range(100):
                with open(f"/tmp/f{i}", "wb") as f:
                    f.write(b"x" * 1024**2)
                written += 1
        except OSError as exc:
            print("full after", written, "MiB", errno.errorcode[exc.errno])
        try:
            open("/dev/shm/big", "wb").write(b"x" * 4 * 1024**2)
        except OSError as exc:
            print("shm", errno.errorcode[exc.errno])
    """, limits=SandboxLimits(tmp_bytes=8 * 1024**2, wall_seconds=30))
    lines = result.stdout.decode().splitlines()
    assert lines[0].startswith("full after") and lines[0].endswith("ENOSPC")
    assert int(lines[0].split()[2]) <= 8
    assert lines[1] == "shm ENOSPC"


def test_core_dumps_are_off(run_job) -> None:
    result = run_job("import os; os.abort()")
    assert result.outcome is SandboxOutcome.FAILED and "SIGABRT" in result.reason
    scratch = run_job.scratch  # type: ignore[attr-defined]
    assert not [p for p in scratch.rglob("*") if "core" in p.name]


def test_stdout_flood_is_capped(run_job) -> None:
    t0 = time.monotonic()
    result = run_job("""
        import os, sys
        chunk = b"x" * (1024 * 1024)
        for _ in range(200):
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        os.write(2, b"e" * 5 * 1024 * 1024)
    """, limits=SandboxLimits(stdout_bytes=64 * 1024, wall_seconds=30))
    assert time.monotonic() - t0 < 15
    assert result.outcome is SandboxOutcome.SUCCEEDED
    assert len(result.stdout) == 64 * 1024 and result.stdout_dropped == 200 * 1024**2 - 64 * 1024
    assert len(result.stderr) == 64 * 1024 and result.stderr_dropped == 5 * 1024**2 - 64 * 1024


def test_background_process_is_dead_before_outputs_are_read(run_job) -> None:
    result = run_job("""
        import os, time
        open("/out/result.csv", "w").write("v\\n1\\n")
        print(os.getuid(), flush=True)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                for i in range(1000):  # keeps rewriting the output for 10 s
                    with open("/out/result.csv", "w") as f:
                        f.write(f"v\\n{i}\\n")
                    time.sleep(0.01)
            os._exit(0)
        time.sleep(0.2)
    """)
    uid = int(result.stdout.split()[0])
    # Nothing of the run is alive (a zombie awaiting the host's init can no longer write).
    assert processes_of_uid(uid) == []
    # (Not asserting leftover_processes_killed here: bwrap's --die-with-parent may already have
    # started killing the namespace when the count is taken. The timeout tests assert it.)
    assert result.wall_seconds < 5
    assert result.outcome is SandboxOutcome.SUCCEEDED
    # What was read is one whole version: the writer was dead before the read began. /out was a
    # tmpfs only the supervisor still held; nothing can write to it any more.
    assert re.fullmatch(rb"v\n[0-9]+\n", result.outputs[0].data)
    assert sorted(p.name for p in run_job.scratch.iterdir()) == ["job"]  # type: ignore[attr-defined]


# -- the output folder -------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/etc/passwd", "/job/job.py", "result.csv"])
def test_symlink_in_out_is_rejected(run_job, target: str) -> None:
    result = run_job(f"""
        import os
        open("/out/result.csv", "w").write("v\\n1\\n")
        os.symlink({target!r}, "/out/link.csv")
    """)
    assert result.outcome is SandboxOutcome.OUTPUT_REJECTED
    assert result.outputs == ()
    assert ("'link.csv'", "symbolic link") in result.rejected


def test_fifo_in_out_is_rejected_without_hanging(run_job) -> None:
    t0 = time.monotonic()
    result = run_job("import os; os.mkfifo('/out/pipe.csv')")
    assert time.monotonic() - t0 < 5
    assert result.outcome is SandboxOutcome.OUTPUT_REJECTED
    assert result.rejected == (("'pipe.csv'", "not a regular file"),)


def test_unix_socket_in_out_is_rejected(run_job) -> None:
    result = run_job("import socket; socket.socket(socket.AF_UNIX).bind('/out/s.json')")
    assert result.outcome is SandboxOutcome.OUTPUT_REJECTED
    assert result.rejected == (("'s.json'", "not a regular file"),)


def test_hard_link_in_out_is_rejected(run_job) -> None:
    result = run_job("""
        import os
        open("/out/a.csv", "w").write("v\\n1\\n")
        os.link("/out/a.csv", "/out/b.csv")
        try:
            os.link("/job/job.py", "/out/c.csv")  # across mounts: refused by the kernel
        except OSError as exc:
            print(exc.errno)
    """)
    assert result.outcome is SandboxOutcome.OUTPUT_REJECTED and result.outputs == ()
    assert {name for name, reason in result.rejected if reason == "hard link"} == {"'a.csv'", "'b.csv'"}
    assert result.stdout == b"18\n"  # EXDEV


def test_weird_names_are_rejected(run_job) -> None:
    result = run_job("""
        import os
        for name in [".hidden.csv", "a b.csv", "new\\nline.csv", "caf\\u00e9.csv", "noext", "run.py",
                     "-rf.csv", "x" * 101 + ".csv"]:
            open("/out/" + name, "w").write("x")
        fd = os.open(b"/out/\\xff\\xfe.csv", os.O_CREAT | os.O_WRONLY)
        os.close(fd)
        open("/out/good.csv", "w").write("x")
    """)
    assert result.outcome is SandboxOutcome.OUTPUT_REJECTED and result.outputs == ()
    names = {name for name, _ in result.rejected}
    assert len(names) == 9 and "'good.csv'" not in names
    assert all(name.isascii() and "\n" not in name and len(name) <= 80 for name in names)
    assert "'\\udcff\\udcfe.csv'" in names  # undecodable bytes shown escaped


def test_directory_in_out_stops_the_run(run_job) -> None:
    result = run_job("""
        import os, time
        os.mkdir("/out/sub")
        for i in range(10):
            open(f"/out/sub/{i}.csv", "w").write("x")
        time.sleep(5)
    """)
    assert result.outcome is SandboxOutcome.LIMIT_EXCEEDED
    assert "directory" in result.reason and result.wall_seconds < 4


def test_many_files_stop_the_run_quickly(run_job) -> None:
    t0 = time.monotonic()
    result = run_job("""
        for i in range(100_000):
            open(f"/out/f{i}.csv", "w").close()
    """)
    assert time.monotonic() - t0 < 10
    assert result.outcome in (SandboxOutcome.LIMIT_EXCEEDED, SandboxOutcome.OUTPUT_REJECTED)
    assert result.outputs == ()


def test_too_many_files_after_exit_are_rejected(run_job) -> None:
    # Written faster than the watcher polls: the final read still refuses them.
    result = run_job("""
        for i in range(40):
            open(f"/out/f{i}.csv", "w").write("x")
    """, limits=SandboxLimits(max_output_files=4, wall_seconds=30))
    assert result.outcome in (SandboxOutcome.LIMIT_EXCEEDED, SandboxOutcome.OUTPUT_REJECTED)
    assert result.outputs == ()


def test_disk_filling_stops_the_run(run_job) -> None:
    result = run_job("""
        import time
        for i in range(12):
            with open(f"/out/f{i}.csv", "wb") as f:
                f.write(b"x" * 3 * 1024 * 1024)
        time.sleep(5)
    """, limits=SandboxLimits(max_output_bytes=8 * 1024**2, max_file_bytes=4 * 1024**2, wall_seconds=30))
    assert result.outcome is SandboxOutcome.LIMIT_EXCEEDED
    assert "bytes" in result.reason and result.wall_seconds < 4


def test_sparse_file_is_rejected(run_job) -> None:
    result = run_job("""
        with open("/out/sparse.csv", "wb") as f:
            f.truncate(30 * 1024 * 1024)  # under RLIMIT_FSIZE, over the output cap, no blocks
    """, limits=SandboxLimits(max_output_bytes=16 * 1024**2, wall_seconds=30))
    assert result.outcome in (SandboxOutcome.LIMIT_EXCEEDED, SandboxOutcome.OUTPUT_REJECTED)
    assert result.outputs == ()


def test_supervisor_stays_responsive_during_a_hostile_run(run_job) -> None:
    ticks: list[float] = []
    stop = threading.Event()

    def heartbeat() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.05)

    beat = threading.Thread(target=heartbeat)
    beat.start()
    try:
        run_job("""
            import os
            while True:
                try:
                    os.fork()
                except OSError:
                    pass
        """, limits=SandboxLimits(max_processes=32, wall_seconds=2))
    finally:
        stop.set()
        beat.join()
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert max(gaps) < 1.0
