"""Dataset usage policies: a leaf library (pydantic and the standard library only).

Build a :class:`Policy` with :func:`load_policy`, then ask pure questions of it:
:func:`check_access`, :func:`check_group_release`, :func:`column_role`. The language is
documented in ``policies/README.md``; examples live in ``policies/examples/``.
"""

from .errors import PolicyError
from .evaluate import Decision, access_decisions, check_access, check_group_release, column_role, resolve_column
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
    "ANY_TENANT",
    "ColumnRole",
    "Decision",
    "OutputRules",
    "Policy",
    "PolicyError",
    "PTableSpec",
    "ReleaseBudget",
    "ReleaseMode",
    "SdcRules",
    "SubjectResults",
    "access_decisions",
    "check_access",
    "check_group_release",
    "column_role",
    "load_policy",
    "resolve_column",
]
