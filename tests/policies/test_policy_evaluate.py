"""Pure decisions: access, group release, column roles (failing closed)."""

from __future__ import annotations

import doctest

import pytest

import policies.evaluate
import policies.model
from policies import (
    ColumnRole,
    Decision,
    PolicyError,
    access_decisions,
    check_access,
    check_group_release,
    column_role,
    load_policy,
    resolve_column,
)


@pytest.fixture
def policy() -> policies.Policy:
    return load_policy(
        {
            "tenants": ["bank_a", "bank_b"],
            "purposes": ["credit_risk"],
            "columns": {"USCC": "join_key", "industry": "dimension", "amount": "measure", "name": "identifier"},
            "privacy_unit": "USCC",
            "output": {"min_group_size": 10},
        }
    )


def test_doctests_pass() -> None:
    for mod in (policies.model, policies.evaluate):
        result = doctest.testmod(mod)
        assert result.failed == 0 and result.attempted > 0


def test_access_allowed(policy: policies.Policy) -> None:
    d = check_access(policy, "bank_a", "credit_risk")
    assert d == Decision(True, "purpose_allowed", d.reason)
    assert all(x.allowed for x in access_decisions(policy, "bank_b", "credit_risk"))


def test_access_wrong_tenant(policy: policies.Policy) -> None:
    d = check_access(policy, "bank_c", "credit_risk")
    assert not d.allowed and d.rule == "tenant_allowed"
    assert "bank_c" in d.reason


def test_access_wrong_purpose(policy: policies.Policy) -> None:
    d = check_access(policy, "bank_a", "marketing")
    assert not d.allowed and d.rule == "purpose_allowed"
    assert "marketing" in d.reason


def test_tenant_checked_before_purpose(policy: policies.Policy) -> None:
    assert check_access(policy, "bank_c", "marketing").rule == "tenant_allowed"
    t, p = access_decisions(policy, "bank_c", "marketing")
    assert (t.allowed, p.allowed) == (False, False)


def test_tenant_match_is_exact(policy: policies.Policy) -> None:
    assert not check_access(policy, "BANK_A", "credit_risk").allowed
    assert not check_access(policy, "", "credit_risk").allowed
    assert not check_access(policy, "*", "credit_risk").allowed


def test_wildcard_tenant() -> None:
    p = load_policy({"tenants": ["*"], "purposes": ["research"], "columns": {"d": "dimension"}})
    assert check_access(p, "anyone", "research").allowed
    assert not check_access(p, "anyone", "marketing").allowed


def test_empty_tenants_allows_nobody() -> None:
    p = load_policy({"tenants": [], "purposes": ["research"], "columns": {"d": "dimension"}})
    assert not check_access(p, "bank_a", "research").allowed


@pytest.mark.parametrize("threshold", [1, 2, 10, 37])
def test_group_release_boundary(threshold: int) -> None:
    p = load_policy(
        {"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension"}, "output": {"min_group_size": threshold}}
    )
    for n in range(0, threshold + 3):
        d = check_group_release(p, n)
        assert d.rule == "min_group_size"
        assert d.allowed == (n >= threshold)


def test_group_release_reason_never_carries_the_count(policy: policies.Policy) -> None:
    d = check_group_release(policy, 3)
    assert not d.allowed
    assert "3" not in d.reason and "10" in d.reason
    assert "USCC" in d.reason  # says what is counted


def test_column_role_case_insensitive(policy: policies.Policy) -> None:
    assert column_role(policy, "uscc") is ColumnRole.JOIN_KEY
    assert column_role(policy, "Industry") is ColumnRole.DIMENSION
    assert resolve_column(policy, "AMOUNT") == "amount"


def test_column_role_fails_closed(policy: policies.Policy) -> None:
    with pytest.raises(PolicyError) as e:
        column_role(policy, "salary")
    assert e.value.field == "columns.salary"


def test_decision_to_dict(policy: policies.Policy) -> None:
    d = check_access(policy, "bank_c", "credit_risk")
    assert d.to_dict() == {"allowed": False, "rule": "tenant_allowed", "reason": d.reason}
    with pytest.raises(Exception):
        d.allowed = True  # type: ignore[misc]
