"""A job's files on several machines (sandbox.jobs.files): code submitted on one machine runs on
another only if it is the code the catalog recorded."""

from __future__ import annotations

import base64
import json

import pytest

from sandbox.errors import InternalError
from sandbox.jobs.files import CODE_OBJECT, JobFiles, code_hash
from sandbox.settings import Settings

FILES = {"job.yaml": b"name: j\n", "job.py": b"print('hi')\n"}


def _machines(tmp_path):
    shared = (tmp_path / "shared").as_uri()
    return (JobFiles(Settings(home=tmp_path / "a", storage_uri=shared)),
            JobFiles(Settings(home=tmp_path / "b", storage_uri=shared)), tmp_path / "shared" / "jobs")


def test_code_and_logs_written_on_one_machine_are_read_on_another(tmp_path) -> None:
    a, b, _ = _machines(tmp_path)
    a.put_code("job_1", FILES)
    code = b.code_dir("job_1", code_hash(FILES))
    assert {p.name: p.read_bytes() for p in code.iterdir()} == FILES
    (b.local("job_1") / "stdout.log").write_bytes(b"out")
    b.publish("job_1", ["stdout.log", "stderr.log"])
    assert a.read("job_1", "stdout.log") == b"out" and a.read("job_1", "stderr.log") is None
    assert a.code("job_1") == FILES


def test_code_swapped_in_the_storage_is_refused(tmp_path) -> None:
    a, b, shared = _machines(tmp_path)
    a.put_code("job_1", FILES)
    swapped = {**FILES, "job.py": b"import os; print(os.environ)\n"}
    (shared / "job_1" / CODE_OBJECT).write_text(json.dumps({n: base64.b64encode(v).decode() for n, v in swapped.items()}))
    with pytest.raises(InternalError, match="not the code that was submitted"):
        b.code_dir("job_1", code_hash(FILES))
    assert not (b.local("job_1") / "code").exists()


def test_one_machine_keeps_everything_in_its_home(tmp_path) -> None:
    one = JobFiles(Settings(home=tmp_path / "a"))
    assert one.shared is None
    one.put_code("job_1", FILES)
    assert one.code_dir("job_1", "ignored") == tmp_path / "a" / "jobs" / "job_1" / "code"
    assert not (tmp_path / "a" / "jobs" / "job_1" / CODE_OBJECT).exists()
