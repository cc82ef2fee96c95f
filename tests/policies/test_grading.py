"""GB/T 43697 grades as policy floors: the pure rules (policies.grading)."""

from __future__ import annotations

import doctest
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policies.grading as grading
from policies import load_policy
from policies.grading import (
    ALLOWANCES,
    Classification,
    Grade,
    PersonalInfo,
    approval_needed,
    column_problems,
    effective_modes,
    policy_shortfalls,
    query_decision,
    senior_needed,
)

DP = {"budget": {"epsilon": 1}, "bounds": {"amount": [0, 10]}}


def policy(**over):
    return load_policy({"tenants": ["bank_a"], "purposes": ["credit_risk"],
                        "columns": {"uscc": "join_key", "amount": "measure", "industry": "dimension"}, **over})


def shortfalls(raw, grade, allowed=(), senior=True):
    return [d.reason.split(":")[0] for d in policy_shortfalls(raw, policy(**raw), grade, frozenset(allowed),
                                                              has_senior=senior)]


def test_doctests():
    assert doctest.testmod(grading).failed == 0


def test_core_data_releases_nothing_and_says_so_for_a_declared_mode():
    assert shortfalls({}, Grade.CORE) == []  # no mode declared: nothing to weaken (every query is refused)
    assert shortfalls({"release_mode": "sdc"}, Grade.CORE) == ["release_mode"]  # the attack: declared sdc
    assert shortfalls({"release_mode": "dp", "dp": DP}, Grade.CORE) == ["release_mode"]
    assert shortfalls({"release_mode": "dp", "dp": DP}, Grade.CORE, {"dp"}) == []
    assert shortfalls({"release_mode": "sdc"}, Grade.CORE, {"sdc"}) == ["release_mode"]  # sdc alone opens nothing
    assert shortfalls({"release_mode": "sdc"}, Grade.CORE, {"sdc", "dp"}) == []
    for mode in ("sdc", "dp"):
        assert not query_decision(Grade.CORE, mode, frozenset()).allowed
        assert not query_decision(Grade.CORE, mode, frozenset(ALLOWANCES) - {"dp"}).allowed


def test_important_data_is_dp_only_approved_by_seniors():
    assert shortfalls({"release_mode": "dp", "dp": DP}, Grade.IMPORTANT) == []
    assert shortfalls({"release_mode": "sdc"}, Grade.IMPORTANT) == ["release_mode"]
    assert shortfalls({"release_mode": "sdc"}, Grade.IMPORTANT, {"sdc"}) == []
    no_approval = {"release_mode": "dp", "dp": DP, "output": {"require_approval": False}}
    assert shortfalls(no_approval, Grade.IMPORTANT) == ["output.require_approval"]
    assert shortfalls(no_approval, Grade.IMPORTANT, {"no_approval"}) == []
    assert shortfalls({"release_mode": "dp", "dp": DP}, Grade.IMPORTANT, senior=False) == ["senior_stewards"]
    assert shortfalls({"release_mode": "dp", "dp": DP}, Grade.IMPORTANT, {"any_steward"}, senior=False) == []
    assert query_decision(Grade.IMPORTANT, "dp", frozenset()).allowed
    assert not query_decision(Grade.IMPORTANT, "sdc", frozenset()).allowed
    assert query_decision(Grade.IMPORTANT, "sdc", frozenset({"sdc"})).allowed
    assert approval_needed(Grade.IMPORTANT, False, frozenset()) and not approval_needed(Grade.IMPORTANT, False,
                                                                                        {"no_approval"})
    assert senior_needed(Grade.IMPORTANT, frozenset()) and not senior_needed(Grade.IMPORTANT, {"any_steward"})


def test_general_and_unclassified_data_keep_their_policy():
    for raw in ({}, {"release_mode": "sdc"}, {"release_mode": "dp", "dp": DP}, {"output": {"require_approval": False}}):
        assert shortfalls(raw, Grade.GENERAL) == []
    for grade in (Grade.GENERAL, None):
        assert query_decision(grade, "sdc", frozenset()).allowed and query_decision(grade, "dp", frozenset()).allowed
        assert not approval_needed(grade, False, frozenset()) and approval_needed(grade, True, frozenset())
        assert not senior_needed(grade, frozenset())


@given(st.sampled_from(list(Grade)), st.sets(st.sampled_from(sorted(ALLOWANCES))),
       st.sets(st.sampled_from(sorted(ALLOWANCES))))
def test_an_allowance_only_ever_opens(grade, some, more):
    """Adding allowances never closes a mode, and no allowance reaches past the general grade."""
    assert effective_modes(grade, some) <= effective_modes(grade, some | more) <= {"sdc", "dp"}
    assert effective_modes(Grade.GENERAL, ()) <= effective_modes(grade, some) | effective_modes(Grade.GENERAL, ())


def test_grades_are_ordered_strictest_first():
    ranks = [g.rank for g in Grade]
    assert ranks == sorted(ranks, reverse=True)
    for stricter, weaker in itertools.combinations(list(Grade), 2):
        assert effective_modes(stricter, ()) <= effective_modes(weaker, ())


def test_columns_cannot_outrank_their_dataset_and_sensitive_information_is_important():
    cols = [("uscc", Grade.GENERAL, PersonalInfo.NONE), ("vat", Grade.IMPORTANT, PersonalInfo.NONE)]
    assert column_problems(Grade.IMPORTANT, cols) == []
    assert "above its dataset's general" in column_problems(Grade.GENERAL, cols)[0]
    sensitive = [("id_number", None, PersonalInfo.SENSITIVE)]
    assert "敏感个人信息" in column_problems(Grade.GENERAL, sensitive)[0]
    assert column_problems(Grade.IMPORTANT, sensitive) == []


def test_classification_names_a_known_category():
    assert Classification(category="taxation", grade="important").grade is Grade.IMPORTANT
    with pytest.raises(ValueError, match="unknown industry category"):
        Classification(category="astrology", grade="general")
