"""Dataset usage policies: a leaf library (pydantic and the standard library only).

Build a :class:`Policy` with :func:`load_policy`, then ask pure questions of it:
:func:`check_access`, :func:`check_group_release`, :func:`column_role`; and compare a policy with
its dataset's grade (GB/T 43697-2024, :mod:`.grading`). The language is
documented in ``policies/README.md``; examples live in ``policies/examples/``.
"""

from .errors import PolicyError
from .evaluate import Decision, access_decisions, check_access, check_group_release, column_role, resolve_column
from .grading import (
    ALLOWANCES,
    INDUSTRY_CATEGORIES,
    Classification,
    Grade,
    PersonalInfo,
    approval_needed,
    default_release_mode,
    policy_shortfalls,
    query_decision,
    senior_needed,
)
from .model import (
    ANY_TENANT,
    ColumnRole,
    OutputRules,
    Policy,
    PTableSpec,
    ReleaseBudget,
    ReleaseMode,
    SdcRules,
    SubjectResults,
    load_policy,
)

__all__ = [
    "ALLOWANCES",
    "ANY_TENANT",
    "Classification",
    "ColumnRole",
    "Decision",
    "Grade",
    "INDUSTRY_CATEGORIES",
    "OutputRules",
    "PersonalInfo",
    "Policy",
    "PolicyError",
    "PTableSpec",
    "ReleaseBudget",
    "ReleaseMode",
    "SdcRules",
    "SubjectResults",
    "access_decisions",
    "approval_needed",
    "check_access",
    "check_group_release",
    "column_role",
    "default_release_mode",
    "load_policy",
    "policy_shortfalls",
    "query_decision",
    "resolve_column",
    "senior_needed",
]
