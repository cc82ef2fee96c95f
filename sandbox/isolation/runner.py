"""Run untrusted job code under bubblewrap, with a trusted broker as its only door to data.

The process chain, all started with a scrubbed environment (bwrap's own PID-1 init keeps the
environment it was started with, and the job can read it through ``/proc/1/environ``)::

    supervisor (this module, root, threads: broker, stdout, stderr)
      └─ stage.py --serve    root, single-threaded, started once per supervisor (:mod:`.launcher`)
         └─ fork, per run    root: joins the run's cgroup and a fresh session keyring, private
            │                mount ns, stages bind sources behind neutral overlays, attaches /out,
            │                fds 3 (broker) / 4 (info) / 5 (seccomp program); RLIMIT_CPU/AS/NPROC/
            │                FSIZE/NOFILE, CORE=0; drops to a fresh per-run uid U (NPROC counts only
            │                this run), no groups, no_new_privs; then execs
            └─ bwrap         all namespaces, no caps, no userns, new session, neutral paths only
               │             (:mod:`.mounts`), then the seccomp allow-list (:mod:`.seccomp`)
               └─ init (pid 1) ─ python job.py

Teardown is the same for every run: SIGKILL the sandbox init (its pid namespace dies with it),
SIGKILL bwrap, then kill every process of the run until none is left — the processes in the
run's cgroup, which none of them can leave (the files that move a process are root's), or,
where the host gives no cgroup, every process whose real uid is U. Outputs are read only after
that (see :mod:`sandbox.isolation.outbox`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import select
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..errors import SandboxError
from . import availability, launcher
from .cgroup import run_cgroup
from .channel import Broker, CappedReader
from .mounts import JOBCLIENT_DIR, STAGE_POINT, out_tmpfs, python_install, sandbox_tree
from .outbox import OutputFile, collect_outputs, watch_violation
from .procs import kill_verified, reap_run, run_processes, uid_lease
from .scratch import job_env, prepare_scratch
from .seccomp import bpf_program, policy_sha256, program_fd
from .stage import BROKER_FD, INFO_FD, SECCOMP_FD

__all__ = [
    "JOBCLIENT_DIR",
    "Handler",
    "OutputFile",
    "SandboxLimits",
    "SandboxOutcome",
    "SandboxResult",
    "check_sandbox_available",
    "run_in_sandbox",
]

log = logging.getLogger(__name__)

Handler = Callable[[dict], dict]

_MiB = 1024 * 1024
_SAFE_PATH = "/usr/bin:/bin"
_TOOLS = ("bwrap",)
_POLL_SECONDS = 0.2
_SHM_BYTES = 1 * 1024 * 1024


@dataclass(frozen=True)
class SandboxLimits:
    """Resource limits of one run. Kernel limits are per process; the watcher caps ``/out``."""

    wall_seconds: float = 120
    cpu_seconds: int = 120
    memory_bytes: int = 2048 * _MiB  # RLIMIT_AS
    max_processes: int = 64  # RLIMIT_NPROC of the per-run uid
    max_file_bytes: int = 32 * _MiB  # RLIMIT_FSIZE
    max_open_files: int = 64
    tmp_bytes: int = 64 * _MiB  # size of the private /tmp tmpfs
    max_output_files: int = 16
    max_output_bytes: int = 16 * _MiB  # all outputs together
    stdout_bytes: int = 1 * _MiB  # kept of each of stdout and stderr; the rest is counted
    allowed_output_suffixes: tuple[str, ...] = (".csv", ".json")

    def __post_init__(self) -> None:
        for name in ("wall_seconds", "cpu_seconds", "memory_bytes", "max_processes", "max_file_bytes",
                     "max_open_files", "tmp_bytes", "max_output_files", "max_output_bytes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SandboxLimits.{name} must be positive")
        if self.stdout_bytes < 0:
            raise ValueError("SandboxLimits.stdout_bytes must not be negative")
        if not all(re.fullmatch(r"\.[a-z0-9]{1,12}", s) for s in self.allowed_output_suffixes):
            raise ValueError("allowed_output_suffixes must look like '.csv'")


class SandboxOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # the job exited non-zero (or was killed by a kernel limit)
    TIMED_OUT = "timed_out"  # wall-clock limit
    LIMIT_EXCEEDED = "limit_exceeded"  # the output watcher stopped it
    OUTPUT_REJECTED = "output_rejected"  # bad entries in /out; nothing is released


@dataclass(frozen=True)
class SandboxResult:
    outcome: SandboxOutcome
    exit_code: int | None
    reason: str  # human-readable, never file contents
    stdout: bytes
    stderr: bytes
    stdout_dropped: int
    stderr_dropped: int
    outputs: tuple[OutputFile, ...]  # empty unless outcome is SUCCEEDED
    rejected: tuple[tuple[str, str], ...]
    leftover_processes_killed: int
    wall_seconds: float
    broker_requests: int


# -- availability ------------------------------------------------------------------------------

_available_lock = threading.Lock()
_available = False


def _tool(name: str) -> str:
    for d in _SAFE_PATH.split(":"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    what, package = ("bubblewrap", "bubblewrap") if name == "bwrap" else (name, "util-linux")
    raise SandboxError(f"{what} is not installed: apt-get install {package}")


def check_sandbox_available() -> None:
    """Raise :class:`SandboxError` saying what is missing, unless a real sandbox run works.

    The proof is one empty sandboxed run (well under a second). A success is cached in this
    process and recorded for the host (:mod:`.availability`: re-proved when the kernel,
    bubblewrap, libseccomp, the interpreter or this package's launcher changes), so a one-run
    process such as ``twh job submit`` does not pay an extra run for it.
    """
    global _available
    with _available_lock:
        if _available:
            return
        if os.geteuid() != 0:
            raise SandboxError("the sandbox runner must run as root: it drops each job to its own uid")
        for name in _TOOLS:
            _tool(name)
        max_ns = Path("/proc/sys/user/max_user_namespaces")
        if max_ns.exists() and max_ns.read_text().strip() == "0":
            raise SandboxError("user namespaces are disabled: sysctl user.max_user_namespaces=15000")
        clone = Path("/proc/sys/kernel/unprivileged_userns_clone")
        if clone.exists() and clone.read_text().strip() == "0":
            raise SandboxError("unprivileged user namespaces are disabled: "
                               "sysctl kernel.unprivileged_userns_clone=1")
        launcher.prestart()  # its start-up overlaps the filter's compilation below
        bpf_program()  # names libseccomp/pyseccomp if either is missing
        os.close(out_tmpfs(0, 4096, 4))  # the new mount API (Linux 5.2+), for /out
        python_install()  # names an install the per-run uid cannot read
        host = availability.fingerprint(_tool("bwrap"), policy_sha256())
        if not availability.recorded(host):
            _probe()
            availability.remember(host)
        _available = True


def _probe() -> None:
    with tempfile.TemporaryDirectory(prefix="twh-probe-") as tmp:
        job, scratch = Path(tmp, "code"), Path(tmp, "run")
        job.mkdir()
        scratch.mkdir()
        (job / "job.py").write_text("")
        try:
            result = _run(job, scratch, lambda _req: {"ok": False}, SandboxLimits(wall_seconds=30), "job.py", None)
        except SandboxError as exc:
            raise SandboxError(f"bubblewrap cannot start a sandbox here: {exc.message}") from exc
    if result.outcome is not SandboxOutcome.SUCCEEDED:
        raise SandboxError(f"an empty job failed in the sandbox: {result.reason}; "
                           f"stderr: {result.stderr[-300:]!r}")


# -- command line ------------------------------------------------------------------------------

def _command(uid: int, limits: SandboxLimits, job_copy: Path, entrypoint: str,
             env: Mapping[str, str] | None) -> tuple[dict[str, Any], list[str]]:
    """The launcher's spec (staging, rlimits, uid) and the bwrap argv its child executes."""
    tree = sandbox_tree(job_copy)
    argv = [
        _tool("bwrap"), "--unshare-all", "--unshare-user", "--disable-userns", "--cap-drop", "ALL",
        "--new-session", "--die-with-parent", "--hostname", "twh-job", "--info-fd", str(INFO_FD),
        # The private /tmp first: a bind below it (a venv or checkout under /tmp, as in a CI clone)
        # must be mounted on top of it, not hidden by it.
        "--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp",
        *tree.args,
        # Every other writable tmpfs would be unbounded memory: shm gets a small one, the
        # root (and /dev's own tmpfs) become read-only once the tree is built.
        "--size", str(_SHM_BYTES), "--tmpfs", "/dev/shm", "--remount-ro", "/dev", "--remount-ro", "/",
        "--chdir", "/job", "--clearenv",
        # Loaded last, just before the interpreter is executed: the filter never sees bwrap's set-up.
        "--seccomp", str(SECCOMP_FD),
    ]
    for key, value in job_env(env, _SAFE_PATH, BROKER_FD, tree.env).items():
        argv += ["--setenv", key, value]
    argv += ["--", tree.interpreter, entrypoint]
    rlimits = [[resource.RLIMIT_CPU, limits.cpu_seconds], [resource.RLIMIT_AS, limits.memory_bytes],
               [resource.RLIMIT_NPROC, limits.max_processes], [resource.RLIMIT_FSIZE, limits.max_file_bytes],
               [resource.RLIMIT_NOFILE, limits.max_open_files], [resource.RLIMIT_CORE, 0]]
    spec = {"stage": STAGE_POINT, "binds": tree.binds, "overlays": tree.overlays, "files": tree.files,
            "rlimits": rlimits, "uid": uid, "argv": argv}
    return spec, argv


def _out_size(limits: SandboxLimits) -> tuple[int, int]:
    """/out's hard ceiling: room for one file past the output cap, so the watcher (whose caps are
    lower) is what stops a run, and a few entries past the file cap, so its count is seen."""
    return limits.max_output_bytes + limits.max_file_bytes, limits.max_output_files * 4 + 16


# -- the run -----------------------------------------------------------------------------------

def run_in_sandbox(job_dir: Path, scratch_dir: Path, handler: Handler, limits: SandboxLimits = SandboxLimits(),
                   *, entrypoint: str = "job.py", env: Mapping[str, str] | None = None) -> SandboxResult:
    """Run ``entrypoint`` from a copy of ``job_dir`` in a fresh sandbox and return what happened.

    ``scratch_dir`` must be an empty, supervisor-owned directory created for this run; the
    caller deletes it afterwards. ``handler`` answers each broker request (in a thread).
    Raises :class:`SandboxError` if the sandbox cannot be set up, :class:`JobSpecInvalid` for
    an unusable job folder; everything the job does is reported in the result instead.
    """
    check_sandbox_available()
    return _run(Path(job_dir), Path(scratch_dir), handler, limits, entrypoint, env)


@dataclass
class _Run:
    proc: launcher.Launched
    uid: int
    #: the run's cgroup.procs file (its processes), or None where the host gives no cgroup
    procs: str | None
    init_pid: int | None = None
    violation: str | None = None
    timed_out: bool = False
    threads: list[threading.Thread] = field(default_factory=list)


def _run(job_dir: Path, scratch_dir: Path, handler: Handler, limits: SandboxLimits, entrypoint: str,
         env: Mapping[str, str] | None) -> SandboxResult:
    started = time.monotonic()
    with uid_lease() as uid, run_cgroup(f"twh-run-{uid}", limits.memory_bytes, limits.max_processes) as cgroups:
        job_copy = prepare_scratch(job_dir, scratch_dir, entrypoint)
        spec, _argv = _command(uid, limits, job_copy, entrypoint, env)
        spec["cgroup_procs"] = cgroups
        out_mount = out_tmpfs(uid, *_out_size(limits))
        try:
            # Our own handle on /out: the launcher's copy of the mount fd is gone once attached.
            out_fd = os.open(f"/proc/self/fd/{out_mount}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                return _launch(uid, cgroups[0] if cgroups else None, spec, out_mount, out_fd, handler, limits,
                               started)
            finally:
                os.close(out_fd)
        finally:
            os.close(out_mount)


def _launch(uid: int, procs: str | None, spec: dict[str, Any], out_mount: int, out_fd: int,
            handler: Handler, limits: SandboxLimits, started: float) -> SandboxResult:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    info_r, info_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    seccomp_r = program_fd()
    try:
        proc = launcher.spawn(spec, {"stdout": out_w, "stderr": err_w, "broker": theirs.fileno(), "info": info_w,
                                     "seccomp": seccomp_r, "out": out_mount})
    except BaseException:
        ours.close()
        for fd in (info_r, out_r, err_r):
            os.close(fd)
        raise
    finally:
        theirs.close()  # only the sandbox may hold its end, or the broker never sees EOF
        for fd in (info_w, out_w, err_w, seccomp_r):
            os.close(fd)
    run = _Run(proc, uid, procs)
    out_reader = CappedReader(open(out_r, "rb", buffering=0), limits.stdout_bytes)
    err_reader = CappedReader(open(err_r, "rb", buffering=0), limits.stdout_bytes)
    broker = Broker(ours, handler)
    run.threads = [out_reader, err_reader, broker]
    for t in run.threads:
        t.start()
    leftovers = 0
    try:
        run.init_pid = _read_init_pid(info_r, started + limits.wall_seconds)
        _supervise(run, out_fd, limits, started + limits.wall_seconds)
    finally:
        os.close(info_r)
        leftovers = _teardown(run)
        broker.stop()
        for t in run.threads:
            t.join(timeout=5)
    if run.init_pid is None and not run.timed_out:
        # Only our launcher and bwrap have written to stderr at this point: no job output.
        raise SandboxError("the sandbox failed to start: "
                           + err_reader.data[-500:].decode("utf-8", "replace").strip())
    if run.proc.returncode == 1 and err_reader.data.startswith(b"bwrap: ") and not run.violation:
        # bwrap reports its pid before building the sandbox, so a set-up failure looks like
        # an exit of 1 with bwrap's message first. A job could fake it, but only to get its
        # own run marked as an error, so the (job-reachable) text is not quoted here.
        raise SandboxError("the sandbox failed to start: bubblewrap could not set it up")
    outputs, rejected = collect_outputs(out_fd, limits)
    return _result(run, limits, out_reader, err_reader, broker, outputs, rejected, leftovers,
                   time.monotonic() - started)


def _read_init_pid(fd: int, deadline: float) -> int | None:
    """Read bwrap's ``--info-fd`` JSON; ``None`` if bwrap died before writing it."""
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], max(0.0, min(1.0, deadline - time.monotonic())))
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return None
        buf += chunk
        try:
            info: Any = json.loads(buf)
        except ValueError:
            continue  # not complete yet
        pid = info.get("child-pid") if isinstance(info, dict) else None
        return pid if isinstance(pid, int) and pid > 1 else None
    return None


def _supervise(run: _Run, out_fd: int, limits: SandboxLimits, deadline: float) -> None:
    # The pidfd becomes readable the moment bwrap exits: no polling latency on short jobs.
    pidfd = run.proc.pidfd
    while True:
        timeout = max(0.0, min(_POLL_SECONDS, deadline - time.monotonic()))
        if select.select([pidfd], [], [], timeout)[0]:
            run.proc.wait()
            # Once more at the end: a job that filled /out between two polls (and perhaps
            # failed on the tmpfs's hard ceiling) broke the caps all the same.
            run.violation = watch_violation(out_fd, limits)
            return
        run.violation = watch_violation(out_fd, limits)
        if run.violation is not None:
            return
        if time.monotonic() >= deadline:
            run.timed_out = True
            return


def _teardown(run: _Run) -> int:
    """Kill everything of this run; return how many processes had outlived the job or the limits."""
    outlived = set(run_processes(run.uid, run.procs, (run.init_pid,))) - {run.init_pid, run.proc.pid}
    if run.init_pid is not None:
        kill_verified(run.init_pid, run.uid)  # the pid namespace, and all in it, dies with its init
    if run.proc.poll() is None:
        run.proc.kill()
    run.proc.wait()
    killed = reap_run(run.uid, run.procs, (run.init_pid,))
    return len(outlived | (killed - {run.init_pid}))


_SIGNAL_REASONS = {
    signal.SIGXCPU: "CPU time limit reached",
    signal.SIGKILL: "killed (memory or CPU limit)",
    signal.SIGXFSZ: "file size limit reached",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGSYS: "a system call outside the sandbox's allow-list",
}


def _exit_reason(code: int) -> str:
    if code > 128 and code - 128 in signal.Signals._value2member_map_:
        sig = signal.Signals(code - 128)
        return f"the job was killed by {sig.name}: {_SIGNAL_REASONS.get(sig, 'signal')}"
    return f"the job exited with status {code}"


def _result(run: _Run, limits: SandboxLimits, out: CappedReader, err: CappedReader, broker: Broker,
            outputs: tuple[OutputFile, ...], rejected: tuple[tuple[str, str], ...], leftovers: int,
            wall: float) -> SandboxResult:
    code = run.proc.returncode
    exit_code = code if code is not None and code >= 0 and not (run.violation or run.timed_out) else None
    if run.violation is not None:
        outcome, reason = SandboxOutcome.LIMIT_EXCEEDED, f"stopped: {run.violation}"
    elif run.timed_out:
        outcome, reason = SandboxOutcome.TIMED_OUT, f"wall-clock limit of {limits.wall_seconds:g} s reached"
    elif exit_code != 0:
        outcome = SandboxOutcome.FAILED
        reason = _exit_reason(exit_code) if exit_code is not None else "the sandbox was killed"
    elif rejected:
        outcome, reason = SandboxOutcome.OUTPUT_REJECTED, f"{len(rejected)} output entries refused"
    else:
        outcome, reason = SandboxOutcome.SUCCEEDED, f"the job succeeded with {len(outputs)} output file(s)"
    if broker.problem:
        reason += f"; broker: {broker.problem}"
    if leftovers:
        reason += f"; {leftovers} leftover process(es) killed"
    return SandboxResult(
        outcome=outcome, exit_code=exit_code, reason=reason,
        stdout=out.data, stderr=err.data, stdout_dropped=out.dropped, stderr_dropped=err.dropped,
        outputs=outputs if outcome is SandboxOutcome.SUCCEEDED else (),
        rejected=rejected, leftover_processes_killed=leftovers, wall_seconds=round(wall, 3),
        broker_requests=broker.requests,
    )
