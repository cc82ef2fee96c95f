"""Bad job specs and job folders get errors that name the field; nothing is half-accepted."""

from __future__ import annotations

import os

import pytest

from sandbox.errors import JobSpecInvalid
from sandbox.jobs.spec import load_job_files, parse_job_spec


def test_job_spec_fields():
    assert parse_job_spec("name: j\npurpose: p\ndatasets: [a]\n").entrypoint == "job.py"
    for text, field in [("name: j\npurpose: p\ndatasets: []\n", "datasets"),
                        ("name: j\npurpose: p\ndatasets: [a, a]\n", "datasets"),
                        ("name: j\npurpose: p\ndatasets: [a]\nstatus: approved\n", "status"),
                        ("name: j\npurpose: p\ndatasets: [a]\nentrypoint: ../x.py\n", "entrypoint")]:
        with pytest.raises(JobSpecInvalid) as e:
            parse_job_spec(text)
        assert field in e.value.message


def test_job_folder_refuses_symlinks_and_missing_files(tmp_path):
    (tmp_path / "job.yaml").write_text("name: j\npurpose: p\ndatasets: [a]\n")
    with pytest.raises(JobSpecInvalid, match="entrypoint"):
        load_job_files(tmp_path)
    (tmp_path / "job.py").write_text("print(1)")
    spec, files = load_job_files(tmp_path)
    assert set(files) == {"job.yaml", "job.py"}
    os.symlink("/etc/passwd", tmp_path / "data.txt")
    with pytest.raises(JobSpecInvalid, match="not a regular file"):
        load_job_files(tmp_path)
