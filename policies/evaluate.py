"""Pure decisions over a policy: who may use a dataset, which groups may be released.

Every function returns a :class:`Decision` that names the rule applied and explains itself.
Reasons never carry data values: only names the requester gave (tenant, purpose, column) and
the policy's own settings.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import PolicyError
from .model import ANY_TENANT, ColumnRole, Policy


@dataclass(frozen=True)
class Decision:
    """The outcome of one rule: allowed or not, which rule, and why."""

    allowed: bool
    #: stable rule name, e.g. ``tenant_allowed``, ``purpose_allowed``, ``min_group_size``
    rule: str
    #: a sentence for people; never contains data values
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"allowed": self.allowed, "rule": self.rule, "reason": self.reason}


def access_decisions(policy: Policy, tenant: str, purpose: str) -> tuple[Decision, Decision]:
    """Both access rules, evaluated independently (for an audit record that shows each)."""
    if ANY_TENANT in policy.tenants or tenant in policy.tenants:
        who = "any tenant" if ANY_TENANT in policy.tenants else f"tenant {tenant!r}"
        t = Decision(True, "tenant_allowed", f"the policy allows {who}")
    else:
        t = Decision(False, "tenant_allowed", f"tenant {tenant!r} is not among the tenants the policy allows")
    if purpose in policy.purposes:
        p = Decision(True, "purpose_allowed", f"the policy allows purpose {purpose!r}")
    else:
        p = Decision(
            False,
            "purpose_allowed",
            f"purpose {purpose!r} is not among the purposes the policy allows ({', '.join(policy.purposes)})",
        )
    return t, p


def check_access(policy: Policy, tenant: str, purpose: str) -> Decision:
    """May ``tenant`` use the dataset for ``purpose``? The first failing rule, else the last passed.

    >>> from policies import load_policy
    >>> p = load_policy({"tenants": ["bank_a"], "purposes": ["credit_risk"], "columns": {"d": "dimension"}})
    >>> check_access(p, "bank_b", "credit_risk").rule
    'tenant_allowed'
    >>> check_access(p, "bank_a", "credit_risk").allowed
    True
    """
    t, p = access_decisions(policy, tenant, purpose)
    return t if not t.allowed else p


def check_group_release(policy: Policy, n_units: int) -> Decision:
    """May a group of ``n_units`` privacy units (rows when no unit is set) be released?

    The reason states the threshold, never ``n_units``: the size of a small group is itself
    what suppression hides.

    >>> from policies import load_policy
    >>> p = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"d": "dimension"}})
    >>> check_group_release(p, 9).allowed, check_group_release(p, 10).allowed
    (False, True)
    """
    n = policy.output.min_group_size
    unit = f"distinct {policy.privacy_unit!r} values" if policy.privacy_unit else "rows"
    if n_units >= n:
        return Decision(True, "min_group_size", f"the group has at least {n} {unit}")
    return Decision(False, "min_group_size", f"the group has fewer than {n} {unit}: suppressed")


def resolve_column(policy: Policy, column: str) -> str:
    """The declared name of ``column``, matched case-insensitively; :class:`PolicyError` if unknown."""
    if column in policy.columns:
        return column
    folded = column.casefold()
    matches = [name for name in policy.columns if name.casefold() == folded]
    if len(matches) == 1:
        return matches[0]
    # Unknown (or, impossible after validation, ambiguous): fail closed.
    raise PolicyError(f"column {column!r} is not declared in the policy", field=f"columns.{column}")


def column_role(policy: Policy, column: str) -> ColumnRole:
    """The role of ``column`` (case-insensitive). Fails closed: an undeclared column raises
    :class:`PolicyError`, so no caller can mistake "unknown" for "allowed".

    >>> from policies import load_policy
    >>> p = load_policy({"tenants": ["*"], "purposes": ["x"], "columns": {"Industry": "dimension"}})
    >>> column_role(p, "INDUSTRY")
    <ColumnRole.DIMENSION: 'dimension'>
    """
    return policy.columns[resolve_column(policy, column)]
