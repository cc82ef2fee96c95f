"""Features by name: library definitions checked and composed into one feature query.

A library feature (``sandbox.products.features`` publishes them) is a feature query that returns
exactly one column, named as the feature, and groups by the privacy unit only — one value per
subject. It is checked by **the same planner as any training feature query**
(:func:`.features.plan_features`: the gate's parser, roles and unit-only joins), at publication
(:func:`check_definition`) and every time it is used. Training and inference compose the same
definitions the same way (:func:`compose`): each definition's checked engine SQL is a subquery
keyed by the hidden unit column, LEFT JOINed on it to a base —

* training: the job's own query (``train.sql``, e.g. the label) or, without one, the label's
  library feature: the rows are the units that have a label;
* inference (``subjects=True``): the table ``__twh_subjects`` of the authorised subjects, which
  also filters every subquery (``unit IN (SELECT … FROM __twh_subjects)``), so only their rows are
  aggregated and a subject without data gets NULLs (encoded as the declared "missing" value, as
  in training).

The result is a :class:`.features.FeaturePlan`, run by :func:`.features.run_features` (training) or
by the products wing on a connection that also holds the subjects table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from ..errors import QueryRefused
from ..gate import TableInfo
from ..gate.check import parse_select
from .features import UNIT, FeatureInfo, FeaturePlan, plan_features

__all__ = ["SUBJECTS", "NamedFeature", "check_definition", "compose"]

#: the inference base table: one column, ``__twh_unit``, the authorised subjects
SUBJECTS = "__twh_subjects"
KINDS = ("numeric", "categorical")

Lookup = Callable[[str], TableInfo | FeatureInfo]


@dataclass(frozen=True)
class NamedFeature:
    """A published definition, as training and inference read it."""

    ref: str  # name@version
    name: str
    version: int
    kind: str  # numeric | categorical
    sql: str
    sha256: str
    #: the datasets the definition reads (its lineage; policies and authorisations apply to them)
    datasets: tuple[str, ...] = ()


def _refuse(reason: str, rule: str = "feature_library") -> QueryRefused:
    return QueryRefused(f"feature refused: {reason}", details={"rule": rule})


def _info(lookup: Lookup, name: str) -> TableInfo:
    info = lookup(name)
    return info.table_info() if isinstance(info, FeatureInfo) else info


def check_definition(name: str, sql: str, lookup: Lookup) -> FeaturePlan:
    """Plan a definition with the training planner; then: one output column named ``name``, and
    ``GROUP BY`` nothing but privacy-unit columns (one value per subject, never one per row)."""
    plan = plan_features(sql, lookup)
    if plan.output_columns != (name,):
        raise _refuse(f"a library feature's query returns exactly one column, named as the feature ({name}); "
                      f"this one returns {', '.join(plan.output_columns)}")
    root = parse_select(sql)
    group = root.args.get("group")
    if group is None or not group.expressions:
        raise _refuse("GROUP BY the privacy unit (one value per subject; an aggregate picks it, e.g. MAX(r.industry))",
                      "privacy_unit")
    aliases = {t.alias_or_name.casefold(): t.name for t in root.find_all(exp.Table)}
    only = next(iter(aliases.values())) if len(set(aliases.values())) == 1 else None
    for e in group.expressions:
        dataset = aliases.get(e.table.casefold()) if isinstance(e, exp.Column) and e.table else only
        unit = _info(lookup, dataset).policy.privacy_unit if isinstance(e, exp.Column) and dataset else None
        if unit is None or e.name.casefold() != unit.casefold():
            raise _refuse(f"GROUP BY {e.sql()[:60]}: a library feature groups by the privacy unit only (one value per "
                          "subject)", "privacy_unit")
    return plan


def _filtered(engine_sql: str) -> str:
    """The definition's engine SQL restricted to the subjects table (before it aggregates)."""
    sel = sqlglot.parse_one(engine_sql, dialect="duckdb")
    unit = next(e.this for e in sel.expressions if isinstance(e, exp.Alias) and e.alias == UNIT)
    cond = sqlglot.condition(f'{unit.sql(dialect="duckdb")} IN (SELECT "{UNIT}" FROM "{SUBJECTS}")', dialect="duckdb")
    return sel.where(cond, copy=False).sql(dialect="duckdb")


def compose(named: Sequence[NamedFeature], lookup: Lookup, *, extra_sql: str | None = None,
            base: str | None = None, subjects: bool = False) -> FeaturePlan:
    """One plan for ``named`` (and ``extra_sql``'s columns), keyed by the unit (see the module doc).

    ``base``: without ``extra_sql`` and ``subjects``, the named feature whose units are the rows."""
    if not named and not extra_sql:
        raise _refuse("no features")
    plans: list[tuple[str, FeaturePlan]] = []
    for nf in named:
        if nf.kind not in KINDS:
            raise _refuse(f"{nf.ref}: unknown kind {nf.kind!r}")
        plans.append((nf.name, check_definition(nf.name, nf.sql, lookup)))
    extra = plan_features(extra_sql, lookup) if extra_sql else None
    names = [n for n, _ in plans] + list(extra.output_columns if extra else ())
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _refuse(f"column {dupes[0]} comes from two features: every column needs one source")

    def sub(sql: str) -> str:
        return "(" + (_filtered(sql) if subjects else sql) + ")"

    select: list[str] = []
    joins: list[str] = []
    if subjects:
        source = f'"{SUBJECTS}" AS "b"'
    elif extra is not None:
        source = f'{sub(extra.engine_sql)} AS "b"'
        select += [f'"b"."{c}"' for c in extra.output_columns]
    elif base in dict(plans):
        source = f'{sub(dict(plans)[base].engine_sql)} AS "b"'
    else:
        raise _refuse("say which feature defines the rows (the label), or add a query of your own (sql:)")
    for i, (name, plan) in enumerate(plans):
        if not subjects and extra is None and name == base:
            select.append(f'"b"."{name}"')
            continue
        joins.append(f'LEFT JOIN {sub(plan.engine_sql)} AS "f{i}" ON "f{i}"."{UNIT}" = "b"."{UNIT}"')
        select.append(f'"f{i}"."{name}"')
    if subjects and extra is not None:
        raise _refuse("inference computes library features only")
    engine_sql = f'SELECT {", ".join(select)}, "b"."{UNIT}" AS "{UNIT}" FROM {source} ' + " ".join(joins)
    tables: list[str] = []
    read: dict[str, set[str]] = {}
    for p in [*(p for _, p in plans), *([extra] if extra else [])]:
        for t in p.tables:
            if t not in tables:
                tables.append(t)
        for t, cols in p.columns_read:
            read.setdefault(t, set()).update(cols)
    described = "features " + ", ".join(nf.ref for nf in named) + (f" + {extra_sql.strip()}" if extra_sql else "")
    return FeaturePlan(sql=described, engine_sql=engine_sql.strip(), tables=tuple(tables), output_columns=tuple(names),
                       columns_read=tuple((t, tuple(sorted(c))) for t, c in read.items()))


def refs_of(named: Sequence[NamedFeature]) -> dict[str, Any]:
    """ref -> definition hash: what a model card and a catalog model bind."""
    return {nf.ref: nf.sha256 for nf in named}
