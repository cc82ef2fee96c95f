"""Bad manifests get errors that name the field; nothing is half-accepted."""

from __future__ import annotations

import pytest
import yaml

from sandbox.datasets.manifest import load_manifest, parse_manifest
from sandbox.errors import ManifestInvalid

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
