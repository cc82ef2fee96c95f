"""Dataset manifests: what a steward declares when registering a dataset.

A manifest is YAML validated by pydantic; a bad field gets an error naming its path::

    name: enterprise_registry          # lowercase identifier, unique in the warehouse
    provider_kind: government          # government | market  (the zone its Delta table lives in)
    title: Enterprise registry
    stewards: [tax_steward]            # user names who steward it
    classification:                    # GB/T 43697-2024: industry category and grade (policies.grading)
      category: market_regulation      # 行业领域 (policies.INDUSTRY_CATEGORIES)
      grade: general                   # core 核心 | important 重要 | general 一般: the policy's floor
    senior_stewards: []                # important data: the stewards who approve its exports
    schema:                            # types are declared, never inferred
      - {name: uscc, type: string, role: identifier, nullable: false, pi: none}   # pi: personal | sensitive
      - {name: industry, type: string, role: dimension, categories: [C, F, G], grade: general}
      - {name: registered_capital, type: float64, role: measure, min: 0, max: 1.0e9}
    expectations:                      # a Great Expectations suite, as expectation configs
      - {type: expect_column_values_to_match_regex, kwargs: {column: uscc, regex: "^[0-9A-Z]{18}$"}}
    policy:                            # see policies.Policy (column roles come from the schema)
      tenants: [bank_a]
      purposes: [credit_risk]
      output: {min_group_size: 10, require_approval: true}
    source: {kind: csv, path: /data/registry.csv}   # optional: see sandbox.datasets.sources (source:, load:)
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.schema import COLUMN_TYPES
from policies import ColumnRole, Policy, PolicyError, load_policy
from policies.grading import (
    INDUSTRY_CATEGORIES,
    Classification,
    Grade,
    PersonalInfo,
    column_problems,
    default_release_mode,
)

from ..errors import ManifestInvalid
from .sources import LoadBlock, SourceBlock

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class ProviderKind(StrEnum):
    GOVERNMENT = "government"
    MARKET = "market"


class DeclaredColumn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    type: str
    role: ColumnRole
    nullable: bool = True
    description: str = ""
    #: for mock data and contracts: allowed values of a categorical column
    categories: list[str] | None = None
    #: for mock data and contracts: the declared range of a numeric column
    min: float | None = None
    max: float | None = None
    #: GB/T 43697-2024 labels of the column: its grade (at most the dataset's; default: the
    #: dataset's), its industry category (default: the dataset's) and its personal-information flag
    grade: Grade | None = None
    category: str | None = None
    pi: PersonalInfo = PersonalInfo.NONE

    @field_validator("category")
    @classmethod
    def _category(cls, v: str | None) -> str | None:
        if v is not None and v not in INDUSTRY_CATEGORIES:
            raise ValueError(f"unknown industry category {v!r}; use one of {sorted(INDUSTRY_CATEGORIES)}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"column name {v!r} must match {NAME_RE.pattern}")
        return v

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in COLUMN_TYPES:
            raise ValueError(f"unknown column type {v!r}; use one of {sorted(COLUMN_TYPES)}")
        return v


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if not re.match(r"^expect_[a-z0-9_]+$", v):
            raise ValueError(f"expectation type {v!r} must be a Great Expectations name like expect_...")
        return v


class DatasetManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    provider_kind: ProviderKind
    title: str = ""
    description: str = ""
    stewards: list[str] = Field(min_length=1)
    #: the dataset's industry category and grade (GB/T 43697-2024); None: unclassified, which
    #: the rules treat as general data (``Settings.require_classification`` refuses it)
    classification: Classification | None = None
    #: stewards (of ``stewards``) who approve exports of important data (policies.grading)
    senior_stewards: list[str] = Field(default_factory=list)
    columns: list[DeclaredColumn] = Field(alias="schema", min_length=1)
    expectations: list[Expectation] = Field(default_factory=list)
    policy: dict[str, Any]
    #: where the data comes from and how it lands (see sandbox.datasets.sources)
    source: SourceBlock | None = None
    load: LoadBlock = Field(default_factory=LoadBlock)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"dataset name {v!r} must match {NAME_RE.pattern}")
        return v

    @model_validator(mode="after")
    def _unique_columns(self) -> DatasetManifest:
        seen: set[str] = set()
        for c in self.columns:
            if c.name in seen:
                raise ValueError(f"column {c.name!r} is declared twice")
            seen.add(c.name)
        problem = self.load.check_columns({c.name: c.type for c in self.columns})
        if problem:
            raise ValueError(problem)
        outside = [n for n in self.senior_stewards if n not in self.stewards]
        if outside:
            raise ValueError(f"senior_stewards {outside} must also be listed in stewards")
        labelled = [c.name for c in self.columns if c.grade is not None or c.category is not None
                    or c.pi is not PersonalInfo.NONE]
        if self.classification is None and labelled:
            raise ValueError(f"columns {labelled} carry classification labels but the dataset has no "
                             "classification: block (category and grade)")
        if self.classification is not None:
            problems = column_problems(self.classification.grade, [(c.name, c.grade, c.pi) for c in self.columns])
            if problems:
                raise ValueError("; ".join(problems))
        return self

    @property
    def grade(self) -> Grade | None:
        return self.classification.grade if self.classification else None

    def labels(self) -> dict[str, Any]:
        """The classification as the catalog shows it (``unclassified`` when none was declared)."""
        c = self.classification
        pi = {col.pi for col in self.columns}
        return {"grade": c.grade.value if c else "unclassified", "category": c.category if c else None,
                "basis": c.basis if c else "",
                "personal_information": PersonalInfo.PERSONAL in pi or PersonalInfo.SENSITIVE in pi,
                "sensitive_personal_information": PersonalInfo.SENSITIVE in pi,
                "senior_stewards": list(self.senior_stewards)}

    def column(self, name: str) -> DeclaredColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def build_policy(self) -> Policy:
        """The dataset's policy, with column roles taken from the declared schema."""
        data = dict(self.policy)
        if "columns" in data:
            raise ManifestInvalid(
                "policy.columns: column roles are declared in schema[].role, not in the policy",
                details={"field": "policy.columns"},
            )
        data["columns"] = {c.name: c.role.value for c in self.columns}
        default_mode = default_release_mode(self.grade)  # policies take their defaults from the grade
        if default_mode is not None and "release_mode" not in data:
            data["release_mode"] = default_mode
        try:
            return load_policy(data)
        except PolicyError as exc:
            raise ManifestInvalid(f"policy.{exc.field}: {exc.message}" if exc.field else str(exc),
                                  details={"field": f"policy.{exc.field}" if exc.field else "policy"}) from exc


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def parse_manifest(data: Any, *, source: str = "manifest") -> DatasetManifest:
    """Validate a manifest mapping; raise :class:`ManifestInvalid` naming the bad field."""
    if not isinstance(data, dict):
        raise ManifestInvalid(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        manifest = DatasetManifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_path(tuple(first["loc"]))
        problems = [f"{_field_path(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ManifestInvalid(f"{source}: {field}: {first['msg']}", details={"field": field, "problems": problems}) from exc
    manifest.build_policy()  # validates the policy block too
    return manifest


def load_manifest(path: str | Path) -> DatasetManifest:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestInvalid(f"manifest file {p} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise ManifestInvalid(f"manifest file {p} is not UTF-8 text") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestInvalid(f"manifest file {p} is not valid YAML: {exc}") from exc
    return parse_manifest(data, source=p.name)
