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
from decimal import Decimal
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
_INF = float("inf")


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
ReleaseMode = Literal["sdc", "dp"]


class OutputRules(BaseModel):
    """What a result must satisfy before it leaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: a released group must hold at least this many privacy units (rows when no unit is set)
    min_group_size: StrictInt = Field(default=10, ge=1)
    #: a steward must approve the exact bytes before an export leaves
    require_approval: StrictBool = True
    #: released numbers (SUM, AVG, dp estimates) are rounded to this many significant digits:
    #: the last digits of an exact float carry nothing a reader needs and can carry a value
    significant_digits: StrictInt = Field(default=4, ge=1, le=17)
    #: released counts of the exact sdc mode (``sdc.perturbation: none``) are rounded to a multiple
    #: of this base (OpenSAFELY rounds to 5); the cell-key p-table decides perturbed counts
    count_base: StrictInt = Field(default=1, ge=1, le=1000)
    #: how many jobs reading this dataset one tenant may submit per day (UTC); bounds what the
    #: residual channels before a steward's review can carry (ARCHITECTURE.md "Channels before approval")
    max_jobs_per_day: StrictInt | None = Field(default=100, ge=1, le=100_000)


class SubjectResults(BaseModel):
    """Per-subject results (a catalog model's score, a verification product's answer) computed from
    this dataset: the only thing about one unit that ever leaves, and only to a tenant the subject
    authorised for a purpose (``sandbox.access.authorisations``). Off unless the steward says so."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: whether catalog models and verification products may read this dataset at all
    allowed: StrictBool = False
    #: the subject's authorisation must name this dataset (False: an authorisation of the tenant
    #: and purpose is still needed, but it need not list this dataset, e.g. a public registry or
    #: the tenant's own loan book)
    authorisation_required: StrictBool = True
    #: subjects one tenant may have scored or verified per UTC day from this dataset (refused
    #: subjects count too, so trying ids costs the same as using them)
    max_subjects_per_day: StrictInt = Field(default=10_000, ge=1, le=100_000_000)


class PTableSpec(BaseModel):
    """A generated count p-table: for each count, a perturbation in ``[-min(count, D), D]`` with
    mean 0 and the given variance (the maximum-entropy distribution under those constraints)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_perturbation: StrictInt = Field(ge=1, le=20)
    variance: float = Field(gt=0, le=50)


class ReleaseBudget(BaseModel):
    """Distinct released populations (cells) the ``sdc`` mode may release from a dataset.

    Counted per tenant and ``period`` (``month``: calendar month, UTC) and, with ``total``, over
    all tenants. A repeat of a population already released (the same rows) costs nothing.
    The default comes from a reconstruction experiment on the demo data (ARCHITECTURE.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_tenant: StrictInt = Field(default=200, ge=1, le=10_000_000)
    total: StrictInt | None = Field(default=1000, ge=1, le=100_000_000)
    period: Literal["none", "month", "year"] = "month"


class SdcRules(BaseModel):
    """Statistical disclosure control beyond the threshold (``release_mode: sdc``).

    Defaults are ACRO's (``acro/default.yaml``): dominance (n=2, k=0.9), p% 0.1, zeros
    disclosive. The threshold itself is ``output.min_group_size``. Rules apply per released cell
    (one result row), on every ``SUM``/``AVG`` in it, over per-privacy-unit contributions.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: dominance (n, k): a cell is suppressed when its ``dominance_n`` largest units contribute
    #: at least ``dominance_k`` of its total
    dominance_n: StrictInt = Field(default=2, ge=1, le=10)
    dominance_k: float = 0.9
    #: p%: a cell is suppressed when the total less its two largest contributions is below
    #: ``p_ratio`` times the largest (the second largest could estimate the largest too well);
    #: 0 turns the rule off
    p_ratio: float = 0.1
    #: a cell with no units while its categories are known is disclosive (e.g. "no firm of this
    #: district defaulted"): counted as suppressed and protected by secondary suppression
    zeros_disclosive: StrictBool = True
    #: consistent perturbation of released cells (the cell-key method of the ABS TableBuilder and
    #: the ONS Census 2021): ``cell_key`` (default) or ``none`` (exact releases, open to
    #: reconstruction and differencing of near-identical populations)
    perturbation: Literal["cell_key", "none"] = "cell_key"
    #: the count p-table: ``ons_10_5`` (the ONS "10/5 rule": counts below 10 become 0, others are
    #: rounded to 5) or a generated one, ``{max_perturbation: D, variance: V}``
    ptable: Literal["ons_10_5"] | PTableSpec = "ons_10_5"
    #: magnitude perturbation of SUM/AVG: noise of about ``magnitude_scale`` times the cell's
    #: ``magnitude_top`` largest contributions (each weighted by a key-drawn factor in [0.5, 1.5])
    magnitude_scale: float = 0.1
    magnitude_top: StrictInt = Field(default=2, ge=1, le=10)
    #: measure -> public bucket edges (ascending): a measure may be a group key (WIDTH_BUCKET) only
    #: when every edge of the query's buckets is one of these
    bucket_edges: dict[str, list[float]] = Field(default_factory=dict)
    #: how many distinct populations (released cells) one tenant may have released from the
    #: dataset per period, and all tenants together: linear reconstruction needs many equations
    release_budget: ReleaseBudget = Field(default_factory=lambda: ReleaseBudget())

    @field_validator("magnitude_scale", mode="before")
    @classmethod
    def _scale_number(cls, v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number")
        return v

    @field_validator("magnitude_scale")
    @classmethod
    def _scale(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("magnitude_scale must be greater than 0 and at most 1")
        return float(v)

    @field_validator("bucket_edges")
    @classmethod
    def _edges(cls, v: dict[str, list[float]]) -> dict[str, list[float]]:
        for col, edges in v.items():
            if len(edges) < 2 or len(edges) > 10_000 or any(not (abs(e) < _INF) for e in edges) \
                    or any(b <= a for a, b in zip(edges, edges[1:])):
                raise ValueError(f"bucket_edges of {col!r} must be 2 to 10000 finite, strictly ascending numbers")
        return v

    @field_validator("dominance_k", "p_ratio", mode="before")
    @classmethod
    def _number(cls, v: Any) -> Any:
        # Strict: "0.9" or true are typos in a YAML policy, not numbers.
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError("must be a number")
        return v

    @field_validator("dominance_k")
    @classmethod
    def _k(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("dominance_k must be greater than 0 and at most 1")
        return float(v)

    @field_validator("p_ratio")
    @classmethod
    def _p(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError("p_ratio must be at least 0 and less than 1")
        return float(v)

    @classmethod
    def strictest(cls, rules: list[SdcRules]) -> SdcRules:
        """One rule set at least as strict as each of ``rules`` (for a query reading several datasets)."""
        if not rules:
            return cls()
        perturbed = [r for r in rules if r.perturbation == "cell_key"]
        return cls(
            dominance_n=max(r.dominance_n for r in rules),
            dominance_k=min(r.dominance_k for r in rules),
            p_ratio=max(r.p_ratio for r in rules),
            zeros_disclosive=any(r.zeros_disclosive for r in rules),
            # perturbed if any dataset read asks for it; its p-table is the first such dataset's
            perturbation="cell_key" if perturbed else "none",
            ptable=perturbed[0].ptable if perturbed else "ons_10_5",
            magnitude_scale=max(r.magnitude_scale for r in rules),
            magnitude_top=max(r.magnitude_top for r in rules),
        )


class DpBudget(BaseModel):
    """A dataset's total differential-privacy budget, shared by every tenant unless split.

    ``per_tenant`` gives a tenant a share of ε and δ (``{bank_a: 0.5}``); tenants not listed
    share what the listed shares leave. Shares are fixed fractions of one budget, so colluding
    tenants together can never spend more than the whole. ``period: month`` restarts the budget
    every calendar month (UTC): the steward accepts a loss of ε per month, not ε in all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: Decimal = Field(gt=0, le=100)
    #: must be far below 1/N (N: the number of privacy units): at most 1e-5 here
    delta: Decimal = Field(default=Decimal(0), ge=0, le=Decimal("1e-5"))
    per_tenant: dict[str, Decimal] = Field(default_factory=dict)
    period: Literal["none", "month", "year"] = "none"

    @field_validator("per_tenant")
    @classmethod
    def _shares(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        for tenant, share in v.items():
            if not 0 < share <= 1:
                raise ValueError(f"the share of tenant {tenant!r} must be in (0, 1]")
        if sum(v.values(), Decimal(0)) > 1:
            raise ValueError("tenant shares add up to more than 1")
        return v


class DpSynthetic(BaseModel):
    """A DP synthetic development table, generated once and charged to the budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epsilon: Decimal = Field(gt=0, le=10)
    rows: StrictInt = Field(default=1000, ge=1, le=1_000_000)


class DpRules(BaseModel):
    """Settings of the ``dp`` release mode (and of DP synthetic data).

    Contribution bounds are declared, never taken from the data: a unit contributes at most
    ``max_rows_per_unit`` rows to any query, and each value of a measure is clamped to
    ``bounds[measure]`` before it is summed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows_per_unit: StrictInt = Field(default=1, ge=1, le=10_000)
    #: measure -> [lo, hi]; a SUM/AVG of a measure without bounds is refused
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    budget: DpBudget
    #: ε (and δ, needed only when keys are chosen by partition selection) each query costs
    epsilon_per_query: Decimal = Field(default=Decimal("0.1"), gt=0)
    delta_per_query: Decimal = Field(default=Decimal(0), ge=0, le=Decimal("1e-6"))
    #: dimension -> every value it can take (public knowledge): all are released, even empty
    public_keys: dict[str, list[str]] = Field(default_factory=dict)
    synthetic: DpSynthetic | None = None

    @field_validator("bounds")
    @classmethod
    def _bounds(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for col, (lo, hi) in v.items():
            if not (abs(lo) < _INF and abs(hi) < _INF) or not lo < hi:
                raise ValueError(f"bounds of {col!r} must be finite with lo < hi")
        return v

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for col, keys in v.items():
            if not keys or len(set(keys)) != len(keys) or len(keys) > 10_000:
                raise ValueError(f"public keys of {col!r} must be 1 to 10000 distinct values")
        return v

    @model_validator(mode="after")
    def _per_query(self) -> DpRules:
        if self.epsilon_per_query > self.budget.epsilon or self.delta_per_query > self.budget.delta:
            raise ValueError("epsilon_per_query/delta_per_query exceed the budget")
        return self


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
    #: settings of the dp release mode and of DP synthetic data; required when release_mode is dp
    dp: DpRules | None = None
    #: datasets this one may be joined with (both sides must allow the join); None: any
    allowed_joins: list[str] | None = None
    #: dominance, p% and zeros rules of the ``sdc`` release mode (ACRO's defaults)
    sdc: SdcRules = Field(default_factory=SdcRules)
    #: per-subject results of catalog models and verification products (off by default)
    subject_results: SubjectResults = Field(default_factory=lambda: SubjectResults())

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

    @model_validator(mode="after")
    def _sdc_rules(self) -> Policy:
        for col in self.sdc.bucket_edges:
            if self.columns.get(col) is not ColumnRole.MEASURE:
                raise ValueError(f"sdc.bucket_edges names {col!r}, which is not a measure column")
        return self

    @model_validator(mode="after")
    def _dp_rules(self) -> Policy:
        if self.release_mode == "dp" and self.dp is None:
            raise ValueError("release_mode dp needs a dp block (budget, bounds, max_rows_per_unit)")
        if self.dp is not None:
            for col in self.dp.bounds:
                if self.columns.get(col) is not ColumnRole.MEASURE:
                    raise ValueError(f"dp.bounds names {col!r}, which is not a measure column")
            for col in self.dp.public_keys:
                if self.columns.get(col) is not ColumnRole.DIMENSION:
                    raise ValueError(f"dp.public_keys names {col!r}, which is not a dimension column")
            unknown = [t for t in self.dp.budget.per_tenant if t not in self.tenants and ANY_TENANT not in self.tenants]
            if unknown:
                raise ValueError(f"dp.budget.per_tenant names tenants the policy does not allow: {unknown}")
        return self

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
