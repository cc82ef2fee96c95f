"""Policy validation: every field, every refusal names its field."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
import yaml

import policies
from policies import ColumnRole, OutputRules, Policy, PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "policies" / "examples").glob("*.yaml"))


def base(**over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "tenants": ["bank_a"],
        "purposes": ["credit_risk"],
        "columns": {"uscc": "join_key", "name": "identifier", "industry": "dimension", "amount": "measure"},
    }
    data.update(over)
    return data


def test_public_api_is_pinned() -> None:
    assert sorted(policies.__all__) == sorted(
        [
            "ANY_TENANT", "ColumnRole", "Decision", "OutputRules", "Policy", "PolicyError", "PTableSpec", "ReleaseBudget", "ReleaseMode",
            "SdcRules", "SubjectResults",
            "access_decisions", "check_access", "check_group_release", "column_role", "load_policy",
            "resolve_column",
            # classification and grading (GB/T 43697-2024): policies.grading
            "ALLOWANCES", "Classification", "Grade", "INDUSTRY_CATEGORIES", "PersonalInfo", "approval_needed",
            "default_release_mode", "policy_shortfalls", "query_decision", "senior_needed",
        ]
    )
    for name in policies.__all__:
        assert hasattr(policies, name)


def test_leaf_library_never_imports_sandbox() -> None:
    # import-linter checks this too; this test keeps the contract visible where the code is.
    for path in (ROOT / "policies").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                root = n.split(".")[0]
                assert root in {"pydantic", "__future__", "collections", "enum", "typing", "dataclasses", "decimal"}, (
                    f"{path.name} imports {n}"
                )


def test_defaults_and_derived_join_keys() -> None:
    p = load_policy(base())
    assert p.output == OutputRules(min_group_size=10, require_approval=True)
    assert p.min_group_size == 10
    assert p.join_keys == ["uscc"]
    assert p.release_mode == "sdc"
    assert p.privacy_unit is None
    assert p.columns["amount"] is ColumnRole.MEASURE


def test_policy_is_frozen() -> None:
    p = load_policy(base())
    with pytest.raises(Exception):
        p.tenants = ["x"]  # type: ignore[misc]
    with pytest.raises(Exception):
        p.output.min_group_size = 1  # type: ignore[misc]


def test_join_keys_given_must_match_roles() -> None:
    assert load_policy(base(join_keys=["uscc"])).join_keys == ["uscc"]
    with pytest.raises(PolicyError) as e:
        load_policy(base(join_keys=["industry"]))
    assert e.value.field == "join_keys"
    with pytest.raises(PolicyError) as e:
        load_policy(base(join_keys=[]))
    assert e.value.field == "join_keys"


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"output": {"min_group_size": 0}}, "output.min_group_size"),
        ({"output": {"min_group_size": -3}}, "output.min_group_size"),
        ({"output": {"min_group_size": "10"}}, "output.min_group_size"),
        ({"output": {"min_group_size": True}}, "output.min_group_size"),
        ({"output": {"require_approval": "yes"}}, "output.require_approval"),
        ({"output": {"min_group_sise": 5}}, "output.min_group_sise"),
        ({"purposes": []}, "purposes"),
        ({"columns": {}}, "columns"),
        ({"columns": {"a": "secret"}}, "columns.a"),
        ({"columns": {"a": "dimension", "A": "measure"}}, "columns"),
        ({"columns": {" a": "dimension"}}, "columns"),
        ({"privacy_unit": "nope"}, "privacy_unit"),
        ({"release_mode": "sms"}, "release_mode"),
        ({"tenants": ["bank_a", "bank_a"]}, "tenants"),
        ({"tenants": [""]}, "tenants"),
        ({"purposes": [" credit"]}, "purposes"),
        ({"tenants": "bank_a"}, "tenants"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_policies_name_their_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(base(**over))
    assert e.value.field == field
    assert e.value.message
    assert str(e.value).startswith(field)
    assert e.value.problems[0].startswith(field)


def test_missing_required_field() -> None:
    data = base()
    del data["purposes"]
    with pytest.raises(PolicyError) as e:
        load_policy(data)
    assert e.value.field == "purposes"


def test_all_problems_are_listed() -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(base(purposes=[], output={"min_group_size": 0}))
    fields = [p.split(":")[0] for p in e.value.problems]
    assert fields == ["purposes", "output.min_group_size"]


def test_non_mapping_is_refused() -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(["tenants"])  # type: ignore[arg-type]
    assert e.value.field is None


def test_privacy_unit_any_role() -> None:
    assert load_policy(base(privacy_unit="name")).privacy_unit == "name"
    assert load_policy(base(privacy_unit="uscc")).privacy_unit == "uscc"


def test_min_group_size_one_is_allowed_without_warning(recwarn: pytest.WarningsRecorder) -> None:
    assert load_policy(base(output={"min_group_size": 1})).min_group_size == 1
    assert len(recwarn) == 0


def test_direct_construction_validates_too() -> None:
    with pytest.raises(Exception):
        Policy(tenants=[], purposes=["x"], columns={"a": ColumnRole.DIMENSION}, privacy_unit="b")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_are_valid(path: Path) -> None:
    policy = load_policy(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert policy.columns


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3
