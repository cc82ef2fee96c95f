"""Data classification and grading (GB/T 43697-2024 数据安全技术 数据分类分级规则), as pure rules.

A dataset is classified by its industry category (行业领域) and graded **core** (核心数据),
**important** (重要数据) or **general** (一般数据); each column may carry its own category, a
grade no higher than its dataset's, and a personal-information flag (个人信息 ``personal``,
敏感个人信息 ``sensitive``). The grade sets the floor of the dataset's policy:

===========  ===========================  =================  ===================================
grade        what may leave               default mode       who approves an export
===========  ===========================  =================  ===================================
core         nothing, not even aggregates (none)             (nothing to approve)
important    ``dp`` releases only         ``dp``             always; a *senior* steward of it
general      ``sdc`` or ``dp``            ``sdc``            as the policy says
===========  ===========================  =================  ===================================

A manifest may be stricter than its grade, never weaker — unless an admin has recorded an
**allowance** (an audited override) for that dataset: ``sdc`` (sdc releases of important data),
``dp`` (dp releases of core data), ``no_approval`` (``output.require_approval: false`` on
important data) or ``any_steward`` (any steward of important data decides, not only its senior
stewards). The functions here only compare; recording and enforcing is the application's.

>>> from policies import load_policy
>>> p = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension"}})
>>> [d.rule for d in policy_shortfalls({"release_mode": "sdc"}, p, Grade.IMPORTANT, frozenset())]
['grade_minimum']
>>> policy_shortfalls({"release_mode": "sdc"}, p, Grade.IMPORTANT, frozenset({"sdc"}), has_senior=True)
[]
>>> query_decision(Grade.CORE, "sdc", frozenset()).allowed
False
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from .evaluate import Decision
from .model import Policy


class Grade(StrEnum):
    """The three grades of GB/T 43697-2024, strictest first."""

    CORE = "core"  # 核心数据
    IMPORTANT = "important"  # 重要数据
    GENERAL = "general"  # 一般数据

    @property
    def rank(self) -> int:
        """0 for general, 2 for core: a higher rank is stricter."""
        return {Grade.GENERAL: 0, Grade.IMPORTANT: 1, Grade.CORE: 2}[self]

    @property
    def zh(self) -> str:
        return {Grade.CORE: "核心数据", Grade.IMPORTANT: "重要数据", Grade.GENERAL: "一般数据"}[self]


class PersonalInfo(StrEnum):
    """A column's personal-information flag (PIPL / GB/T 43697 §5.3)."""

    NONE = "none"
    PERSONAL = "personal"  # 个人信息
    SENSITIVE = "sensitive"  # 敏感个人信息


#: industry categories (行业领域) a classification may name: the sectors GB/T 43697-2024 lists
#: for sector catalogues, plus the two this warehouse's sources need (tax, social insurance sit
#: under government affairs and finance). code -> (English, Chinese)
INDUSTRY_CATEGORIES: dict[str, tuple[str, str]] = {
    "industry": ("Industry and IT", "工业和信息化"),
    "telecom": ("Telecommunications", "电信"),
    "transport": ("Transport", "交通运输"),
    "finance": ("Finance", "金融"),
    "natural_resources": ("Natural resources", "自然资源"),
    "health": ("Health", "卫生健康"),
    "education": ("Education", "教育"),
    "science": ("Science and technology", "科学技术"),
    "energy": ("Energy", "能源"),
    "agriculture": ("Agriculture", "农业农村"),
    "commerce": ("Commerce", "商务"),
    "government": ("Government affairs", "政务"),
    "taxation": ("Taxation", "税务"),
    "social_security": ("Human resources and social security", "人力资源和社会保障"),
    "market_regulation": ("Market regulation", "市场监管"),
    "other": ("Other", "其他"),
}

#: what an admin's override may allow beyond the grade, and what each means
ALLOWANCES: dict[str, str] = {
    "sdc": "release under disclosure control (release_mode sdc) although the grade asks for dp",
    "dp": "release dp aggregates although the grade (core) lets nothing leave",
    "no_approval": "export without a steward's approval (output.require_approval: false) although the grade "
                   "requires one",
    "any_steward": "any steward of the dataset approves, not only its senior stewards",
}


@dataclass(frozen=True)
class GradeRules:
    """What a grade allows: the release modes, whether exports need approval and by whom."""

    release_modes: frozenset[str]
    default_mode: str | None
    approval_required: bool
    senior_approval: bool


RULES: dict[Grade, GradeRules] = {
    Grade.CORE: GradeRules(frozenset(), None, True, True),
    Grade.IMPORTANT: GradeRules(frozenset({"dp"}), "dp", True, True),
    Grade.GENERAL: GradeRules(frozenset({"sdc", "dp"}), "sdc", False, False),
}


def _check_category(v: str | None) -> str | None:
    if v is not None and v not in INDUSTRY_CATEGORIES:
        raise ValueError(f"unknown industry category {v!r}; use one of {sorted(INDUSTRY_CATEGORIES)}")
    return v


class Classification(BaseModel):
    """A dataset's classification: its industry category and grade (manifest ``classification:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str
    grade: Grade
    #: a note for reviewers: why this grade (e.g. the catalogue entry it follows)
    basis: str = ""

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        return _check_category(v) or v


def effective_modes(grade: Grade, allowed: Iterable[str]) -> frozenset[str]:
    """The release modes a dataset of ``grade`` may use, with the admin's allowances."""
    modes = set(RULES[grade].release_modes)
    allowed = set(allowed)
    if grade is Grade.CORE and "dp" in allowed:
        modes.add("dp")
    if "sdc" in allowed and modes:  # core data opens to sdc only once an admin opened it at all
        modes.add("sdc")
    return frozenset(modes)


def default_release_mode(grade: Grade | None) -> str | None:
    """The release mode a policy gets from its grade when it declares none (``important``: ``dp``);
    None leaves the policy's own default (core data answers no query in any mode)."""
    return None if grade is None else RULES[grade].default_mode


def policy_shortfalls(raw: Mapping[str, Any], policy: Policy, grade: Grade, allowed: Iterable[str], *,
                      has_senior: bool = True) -> list[Decision]:
    """Where a policy is weaker than its grade allows (given the admin's ``allowed`` overrides).

    ``raw`` is the policy block as the steward wrote it (to tell a declared mode from a default),
    ``policy`` the validated one. One refusal per weakness, each naming the field and the allowance
    that would permit it; empty when the policy is at least as strict as the grade.
    """
    allowed = frozenset(allowed)
    rules = RULES[grade]
    out: list[Decision] = []
    modes = effective_modes(grade, allowed)
    if grade is Grade.CORE and not modes:
        if "release_mode" in raw:
            out.append(Decision(False, "grade_minimum",
                                f"release_mode: core data (核心数据) releases nothing, not even aggregates: remove "
                                f"release_mode {policy.release_mode!r} (or an admin records the allowance 'dp')"))
    elif policy.release_mode not in modes:
        need = "sdc" if policy.release_mode == "sdc" else "dp"
        out.append(Decision(False, "grade_minimum",
                            f"release_mode: {grade.value} data ({grade.zh}) may be released only as "
                            f"{' or '.join(sorted(modes)) or 'nothing'}, not {policy.release_mode!r} "
                            f"(or an admin records the allowance {need!r})"))
    if rules.approval_required and not policy.output.require_approval and "no_approval" not in allowed:
        out.append(Decision(False, "grade_minimum",
                            f"output.require_approval: {grade.value} data ({grade.zh}) is exported only with a "
                            "steward's approval (or an admin records the allowance 'no_approval')"))
    # important data, and core data an admin opened, is approved by its senior stewards: name them
    if rules.senior_approval and modes and not has_senior and "any_steward" not in allowed:
        out.append(Decision(False, "grade_minimum",
                            f"senior_stewards: {grade.value} data ({grade.zh}) is approved by a senior steward: "
                            "name at least one (or an admin records the allowance 'any_steward')"))
    return out


def query_decision(grade: Grade | None, release_mode: str, allowed: Iterable[str]) -> Decision:
    """May a query in ``release_mode`` be answered from a dataset of ``grade``? (None: unclassified,
    which the rules treat as general.)"""
    if grade is None or release_mode in effective_modes(grade, allowed):
        return Decision(True, "grade", f"{(grade or Grade.GENERAL).value} data may be released as {release_mode}")
    if grade is Grade.CORE and not effective_modes(grade, allowed):
        return Decision(False, "grade", "core data (核心数据): nothing leaves, not even aggregates")
    return Decision(False, "grade", f"{grade.value} data ({grade.zh}) may not be released as {release_mode}")


def approval_needed(grade: Grade | None, require_approval: bool, allowed: Iterable[str]) -> bool:
    """Does an export reading this dataset need its stewards' approval?"""
    if require_approval:
        return True
    return grade is not None and RULES[grade].approval_required and "no_approval" not in set(allowed)


def senior_needed(grade: Grade | None, allowed: Iterable[str]) -> bool:
    """Must a senior steward (not any steward) of the dataset decide on its exports?"""
    return grade is not None and RULES[grade].senior_approval and "any_steward" not in set(allowed)


def column_problems(grade: Grade, columns: Iterable[tuple[str, Grade | None, PersonalInfo]]) -> list[str]:
    """A dataset's grade must be at least each column's; sensitive personal information is at least
    important data (its leak harms people: PIPL art. 28)."""
    problems = []
    for name, col_grade, pi in columns:
        if col_grade is not None and col_grade.rank > grade.rank:
            problems.append(f"column {name!r} is graded {col_grade.value}, above its dataset's {grade.value}: a "
                            "dataset is graded by its most sensitive column")
        if pi is PersonalInfo.SENSITIVE and grade.rank < Grade.IMPORTANT.rank:
            problems.append(f"column {name!r} holds sensitive personal information (敏感个人信息): the dataset must "
                            "be graded important or core")
    return problems
