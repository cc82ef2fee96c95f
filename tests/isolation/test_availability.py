"""The per-host record that sandboxes work: a submit does not pay an extra sandbox run, and the
record is re-proved when what it depends on changes, and ignored when it could be anyone's."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandbox.isolation import availability, runner


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "available.json"
    monkeypatch.setattr(availability, "RECORD", path)
    monkeypatch.setattr(runner, "_available", False)
    return path


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the probe runs (each one a real empty sandboxed job)."""
    seen: list[int] = []
    real = runner._probe

    def counted() -> None:
        seen.append(1)
        real()

    monkeypatch.setattr(runner, "_probe", counted)
    return seen


def test_one_probe_per_host_not_per_process(sandbox_available, record: Path, probes: list[int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    runner.check_sandbox_available()
    assert probes == [1] and record.is_file()
    monkeypatch.setattr(runner, "_available", False)  # a new process, as far as the check knows
    runner.check_sandbox_available()
    assert probes == [1]  # the record stood in for the run


def test_a_changed_host_is_probed_again(sandbox_available, record: Path, probes: list[int],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    runner.check_sandbox_available()
    monkeypatch.setattr(runner, "_available", False)
    uname = os.uname()
    changed = os.uname_result((uname.sysname, uname.nodename, uname.release + "-new", uname.version, uname.machine))
    monkeypatch.setattr(availability.os, "uname", lambda: changed)  # a kernel upgrade
    runner.check_sandbox_available()
    assert probes == [1, 1]


def test_the_fingerprint_follows_the_binaries(tmp_path: Path) -> None:
    bwrap = tmp_path / "bwrap"
    bwrap.write_bytes(b"v1")
    before = availability.fingerprint(str(bwrap), "policy")
    assert availability.fingerprint(str(bwrap), "policy") == before
    bwrap.write_bytes(b"v2!")  # an upgrade: size, times
    assert availability.fingerprint(str(bwrap), "policy") != before
    assert availability.fingerprint(str(bwrap), "another policy") != availability.fingerprint(str(bwrap), "policy")


@pytest.mark.parametrize("spoil", ["world_writable", "not_root", "symlink", "garbage", "other_print"])
def test_a_record_anyone_could_have_written_is_ignored(tmp_path: Path, spoil: str) -> None:
    record = tmp_path / "available.json"
    availability.remember("abc", record)
    assert availability.recorded("abc", record)
    if spoil == "world_writable":
        record.chmod(0o666)
    elif spoil == "not_root":
        os.chown(record, 12345, 12345)
    elif spoil == "symlink":
        target = tmp_path / "elsewhere.json"
        record.rename(target)
        record.symlink_to(target)
    elif spoil == "garbage":
        record.write_text("{not json")
    else:
        record.write_text(json.dumps({"fingerprint": "def"}))
    assert not availability.recorded("abc", record)


def test_a_forged_record_cannot_make_a_broken_sandbox_run(run_job, record: Path, monkeypatch) -> None:
    # The record only skips the proof: a run on a host where bubblewrap cannot build the
    # sandbox still fails closed, whatever the record says.
    import sandbox.isolation.mounts as mounts

    monkeypatch.setattr(availability, "recorded", lambda *_a, **_k: True)
    monkeypatch.setattr(mounts, "usr_args", lambda: ["--ro-bind", "/nonexistent-twh", "/usr"])
    from sandbox.errors import SandboxError

    runner.check_sandbox_available()
    with pytest.raises(SandboxError, match="the sandbox failed to start"):
        run_job("print('never runs')")
