"""The policy a data steward attaches to a dataset, as a validated, frozen value.

A policy says *who* may use a dataset (tenants), *for what* (purposes), *how each column may
be used* (roles) and *what may leave* (output rules). It is written as YAML in a manifest and
validated here; a bad field raises :class:`~policies.errors.PolicyError` naming its path.

Release modes are a ``Literal`` so that adding differential privacy later is additive: a new
literal value (``"dp"``) plus an optional block of its own settings, without touching the
fields that exist today.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import PolicyError

#: Wildcard tenant: any tenant may use the dataset (the purposes still apply).
ANY_TENANT = "*"


class ColumnRole(StrEnum):
    """How a column may appear in a query. Anything not declared is treated as ``IDENTIFIER``."""

    #: never output, never grouped, never filtered (e.g. a person's ID number)
    IDENTIFIER = "identifier"
    #: may be grouped and filtered (e.g. industry, district)
    DIMENSION = "dimension"
    #: may appear only inside an aggregate (e.g. loan amount)
    MEASURE = "measure"
    #: may appear only in a join condition (e.g. the unified social credit code)
    JOIN_KEY = "join_key"


#: Release modes known today. Adding "dp" means adding it here and a mode in the gate's registry.
ReleaseMode = Literal["sdc"]


class OutputRules(BaseModel):
    """What a result must satisfy before it leaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: a released group must hold at least this many privacy units (rows when no unit is set)
    min_group_size: StrictInt = Field(default=10, ge=1)
    #: a steward must approve the exact bytes before an export leaves
    require_approval: StrictBool = True


def _clean_names(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for v in values:
        if not v or v != v.strip():
            raise ValueError(f"{what} must be non-empty and have no surrounding spaces, got {v!r}")
        if v in seen:
            raise ValueError(f"{what} {v!r} is listed twice")
        seen.add(v)
    return values


class Policy(BaseModel):
    """A dataset's usage policy. Frozen: build a new one to change it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Field order matters: validators of later fields read earlier ones from ``info.data``.
    #: tenants allowed to use the dataset; ``"*"`` means any; empty means none
    tenants: list[str]
    #: purposes the dataset may be used for (at least one)
    purposes: list[str] = Field(min_length=1)
    #: every column's role; a column not listed here is treated as an identifier
    columns: dict[str, ColumnRole] = Field(min_length=1)
    output: OutputRules = Field(default_factory=OutputRules)
    #: the column naming the entity protected (an enterprise, a person); when set, group
    #: thresholds count distinct units, not rows
    privacy_unit: str | None = None
    #: the columns whose role is ``join_key``, in declaration order; derived when omitted
    join_keys: list[str] = Field(default_factory=list)
    release_mode: ReleaseMode = "sdc"

    @model_validator(mode="before")
    @classmethod
    def _derive_join_keys(cls, data: Any) -> Any:
        # Derived rather than required so that stewards declare a role once; when given it is
        # checked against the roles below, so the two can never disagree.
        if isinstance(data, Mapping) and "join_keys" not in data and isinstance(data.get("columns"), Mapping):
            keys = [str(k) for k, role in data["columns"].items() if str(role) == ColumnRole.JOIN_KEY.value]
            data = {**data, "join_keys": keys}
        return data

    @field_validator("tenants")
    @classmethod
    def _tenants(cls, v: list[str]) -> list[str]:
        return _clean_names(v, "tenant")

    @field_validator("purposes")
    @classmethod
    def _purposes(cls, v: list[str]) -> list[str]:
        return _clean_names(v, "purpose")

    @field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, ColumnRole]) -> dict[str, ColumnRole]:
        # The gate resolves names case-insensitively, so two names differing only by case
        # would make a column's role ambiguous: refuse them here.
        seen: dict[str, str] = {}
        for name in v:
            if not name or name != name.strip():
                raise ValueError(f"column name must be non-empty and have no surrounding spaces, got {name!r}")
            folded = name.casefold()
            if folded in seen:
                raise ValueError(f"columns {seen[folded]!r} and {name!r} differ only by case")
            seen[folded] = name
        return v

    @field_validator("privacy_unit")
    @classmethod
    def _privacy_unit(cls, v: str | None, info: ValidationInfo) -> str | None:
        columns = info.data.get("columns")
        if v is not None and columns is not None and v not in columns:
            raise ValueError(f"privacy unit {v!r} is not one of the declared columns")
        return v

    @field_validator("join_keys")
    @classmethod
    def _join_keys(cls, v: list[str], info: ValidationInfo) -> list[str]:
        columns = info.data.get("columns")
        if columns is None:
            return v
        expected = [k for k, role in columns.items() if role is ColumnRole.JOIN_KEY]
        if sorted(v) != sorted(expected) or len(set(v)) != len(v):
            raise ValueError(
                f"join_keys must list exactly the columns whose role is join_key ({expected}); "
                "omit it to have it derived"
            )
        return expected

    @property
    def min_group_size(self) -> int:
        return self.output.min_group_size


def _field_path(loc: tuple[int | str, ...]) -> str | None:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or None


def load_policy(data: Mapping[str, Any]) -> Policy:
    """Validate a policy mapping (parsed YAML/JSON) into a :class:`Policy`.

    Raises :class:`PolicyError` whose ``field`` names the first offending field.

    >>> p = load_policy({"tenants": ["bank_a"], "purposes": ["credit_risk"],
    ...                  "columns": {"uscc": "join_key", "industry": "dimension"}})
    >>> p.join_keys, p.output.min_group_size
    (['uscc'], 10)
    >>> load_policy({"tenants": [], "purposes": ["x"], "columns": {"a": "dimension"},
    ...              "output": {"min_group_size": 0}})
    Traceback (most recent call last):
    ...
    policies.errors.PolicyError: output.min_group_size: Input should be greater than or equal to 1
    """
    if not isinstance(data, Mapping):
        raise PolicyError(f"a policy must be a mapping, got {type(data).__name__}")
    try:
        return Policy.model_validate(dict(data))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = tuple(
            f"{_field_path(tuple(e['loc'])) or '(policy)'}: {_strip_value_error(e['msg'])}" for e in errors
        )
        first = errors[0]
        raise PolicyError(
            _strip_value_error(first["msg"]), field=_field_path(tuple(first["loc"])), problems=problems
        ) from exc


def _strip_value_error(msg: str) -> str:
    # pydantic prefixes messages of ValueErrors raised by validators; the prefix says nothing.
    return msg.removeprefix("Value error, ")
