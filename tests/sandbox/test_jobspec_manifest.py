"""Bad manifests and job specs get errors that name the field; nothing is half-accepted."""

from __future__ import annotations

import os

import pytest
import yaml

from sandbox.errors import JobSpecInvalid, ManifestInvalid
from sandbox.jobspec import load_job_files, parse_job_spec
from sandbox.manifest import load_manifest, parse_manifest

GOOD = {
    "name": "firms",
    "provider_kind": "government",
    "stewards": ["tax_steward"],
    "schema": [
        {"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
        {"name": "industry", "type": "string", "role": "dimension"},
        {"name": "capital", "type": "float64", "role": "measure"},
    ],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 10}},
}


def _with(**changes):
    d = yaml.safe_load(yaml.safe_dump(GOOD))
    d.update(changes)
    return d


def test_good_manifest_builds_a_policy_with_roles_from_the_schema():
    m = parse_manifest(GOOD)
    p = m.build_policy()
    assert p.columns["uscc"].value == "join_key" and p.output.min_group_size == 10


@pytest.mark.parametrize("changes, field", [
    ({"provider_kind": "secret"}, "provider_kind"),
    ({"name": "Bad Name"}, "name"),
    ({"stewards": []}, "stewards"),
    ({"surprise": 1}, "surprise"),
    ({"schema": [{"name": "x", "type": "varchar", "role": "dimension"}]}, "schema[0].type"),
    ({"schema": [{"name": "x", "type": "string", "role": "boss"}]}, "schema[0].role"),
    ({"schema": [{"name": "x", "type": "string", "role": "dimension"}] * 2}, "(root)"),
])
def test_bad_manifest_names_the_field(changes, field):
    with pytest.raises(ManifestInvalid) as e:
        parse_manifest(_with(**changes))
    assert field in e.value.message


def test_bad_policy_names_the_policy_field():
    with pytest.raises(ManifestInvalid) as e:
        parse_manifest(_with(policy={"tenants": ["a"], "purposes": ["p"], "output": {"min_group_size": 0}}))
    assert "policy.output.min_group_size" in e.value.message
    with pytest.raises(ManifestInvalid) as e:
        parse_manifest(_with(policy={"tenants": ["a"], "purposes": ["p"], "columns": {"uscc": "dimension"}}))
    assert "policy.columns" in e.value.message


def test_manifest_file_errors(tmp_path):
    with pytest.raises(ManifestInvalid, match="does not exist"):
        load_manifest(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    with pytest.raises(ManifestInvalid, match="not valid YAML"):
        load_manifest(tmp_path / "bad.yaml")


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
