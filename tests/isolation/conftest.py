"""Fixtures for the sandbox runner tests: write a job, run it, inspect the result.

The tests need root, bubblewrap and user namespaces; where the platform lacks them they are
skipped with the reason :func:`check_sandbox_available` gives.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import pytest

from sandbox.isolation.runner import Handler, SandboxLimits, SandboxResult, check_sandbox_available, run_in_sandbox

_TEST_LIMITS = SandboxLimits(wall_seconds=30)


def echo_handler(request: dict[str, Any]) -> dict[str, Any]:
    return {"ok": True, "echo": request}


class RunJob(Protocol):
    def __call__(self, code: str, *, handler: Handler = ..., limits: SandboxLimits = ...,
                 files: Mapping[str, str | bytes] | None = ..., env: Mapping[str, str] | None = ...,
                 entrypoint: str = ...) -> SandboxResult: ...


def _platform_lacks_sandbox() -> str | None:
    """Why this machine cannot run sandboxes at all, or None. Only this may skip tests: a
    runner that is merely broken must fail them."""
    if os.geteuid() != 0:
        return "not running as root"
    if shutil.which("bwrap", path="/usr/bin:/bin") is None:
        return "bubblewrap is not installed"
    for knob in ("/proc/sys/user/max_user_namespaces", "/proc/sys/kernel/unprivileged_userns_clone"):
        if os.path.exists(knob) and Path(knob).read_text().strip() == "0":
            return f"user namespaces are disabled ({knob})"
    return None


@pytest.fixture(scope="session")
def sandbox_available() -> None:
    reason = _platform_lacks_sandbox()
    if reason is not None:
        pytest.skip(f"sandbox not available here: {reason}")
    check_sandbox_available()  # raises (the test errors) if the runner itself is broken


@pytest.fixture
def run_job(sandbox_available: None, tmp_path: Path) -> Callable[..., SandboxResult]:
    """Write ``code`` as job.py (plus ``files``) into a fresh job folder and run it."""
    counter = iter(range(1000))

    def run(code: str, *, handler: Handler = echo_handler, limits: SandboxLimits = _TEST_LIMITS,
            files: Mapping[str, str | bytes] | None = None, env: Mapping[str, str] | None = None,
            entrypoint: str = "job.py") -> SandboxResult:
        n = next(counter)
        job_dir, scratch = tmp_path / f"code{n}", tmp_path / f"run{n}"
        job_dir.mkdir()
        scratch.mkdir(mode=0o755)
        (job_dir / entrypoint).write_text(textwrap.dedent(code))
        for name, content in (files or {}).items():
            path = job_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        run.scratch = scratch  # type: ignore[attr-defined]
        return run_in_sandbox(job_dir, scratch, handler, limits, entrypoint=entrypoint, env=env)

    return run


@pytest.fixture
def supervisor_pid() -> int:
    return os.getpid()


@pytest.fixture
def without_seccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs under an allow-everything filter, to show that each other layer holds on its own
    (the seccomp allow-list would otherwise kill the attack before it reaches them)."""
    import tempfile

    import pyseccomp

    from sandbox.isolation import seccomp

    flt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    flt.set_attr(pyseccomp.Attr.ACT_BADARCH, pyseccomp.ALLOW)  # i386 and x32 entries too
    with tempfile.TemporaryFile() as f:
        flt.export_bpf(f)
        f.seek(0)
        program = f.read()
    monkeypatch.setattr(seccomp, "bpf_program", lambda: program)
