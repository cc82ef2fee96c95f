"""The trusted feature-query path: a training job's feature matrix, built by the broker.

The gate refuses row-level queries because their rows would go to the job. A training job's
rows go nowhere the job can see: they become a Parquet file that only the trainer sandbox
reads. So this path allows row-level SELECTs, but only of what a model may learn from, and it is
planned by **the gate's own planner** (:func:`sandbox.gate.check.parse_select` and
:class:`sandbox.gate.clauses.Checker`): the same parser, the same refusals (comments, CTEs,
subqueries, set operations, ``*``, windows, DISTINCT, table functions, qualified names), the same
name resolution against the declared columns and the same join rules (INNER JOIN ... ON an AND
of equalities between join-key columns, each linking a dataset to one joined before it; a
dataset at most once, so ``ON a.k = a.k`` and self-joins are refused). On top of them:

* every ON equality joins the **privacy units** of two datasets (all datasets read declare one):
  so every joined row is one unit's, and an example can never carry another unit's values (a
  cross join, or a label copied from another firm, is refused, not noised);
* output columns are **dimension/measure** columns or expressions/aggregates over them; an
  ``identifier`` column is refused anywhere; a ``join_key`` only in ``ON`` and ``GROUP BY``;
* operators and functions from an allow-list; no ``LIMIT``, ``ORDER BY``, ``HAVING``;
* with aggregates (or ``GROUP BY``), the query must ``GROUP BY`` a privacy-unit column.

The engine SQL is rebuilt from the checked pieces: columns fully qualified by dataset (aliases
gone), the checked joins, and the privacy unit selected as a hidden column. After the run at most
**one row per unit** is kept (chosen at random with a CSPRNG), so each unit contributes one
example and DP-SGD's per-example guarantee is per unit. The hidden column is dropped before the
file is written. The SQL runs on the job's pinned snapshots through the gate's locked-down DuckDB
connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from policies import ColumnRole, load_policy

from ..errors import QueryRefused
from ..gate import TableInfo
from ..gate.check import parse_select
from ..gate.clauses import Checker, ref_sql
from ..gate.plan import ColumnRef
from ..tables.snapshot import Snapshot

UNIT = "__twh_unit"
MAX_ROWS = 2_000_000

_AGGREGATES = (exp.Avg, exp.Sum, exp.Count, exp.Min, exp.Max, exp.Stddev, exp.StddevSamp, exp.StddevPop,
               exp.Variance, exp.VariancePop)
_ALLOWED = (
    exp.Select, exp.From, exp.Join, exp.Table, exp.TableAlias, exp.Identifier, exp.Column, exp.Alias,
    exp.Where, exp.Group, exp.Literal, exp.Boolean, exp.Null, exp.Paren, exp.Neg, exp.Not, exp.And, exp.Or,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between,
    exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Case, exp.If, exp.Coalesce, exp.Cast, exp.DataType,
    exp.Abs, exp.Ln, exp.Log, exp.Round, exp.Greatest, exp.Least, exp.Year, exp.Month, exp.Sqrt,
    *_AGGREGATES,
)
_CLAUSES = {"expressions", "from_", "joins", "where", "group"}


@dataclass(frozen=True)
class FeatureInfo:
    """A dataset described by its column roles and privacy unit (tests and tools that have no
    manifest at hand); the planner reads a :class:`~sandbox.gate.TableInfo`."""

    name: str
    roles: Mapping[str, str]  # column -> identifier|dimension|measure|join_key
    privacy_unit: str | None

    def table_info(self) -> TableInfo:
        policy = load_policy({"tenants": ["*"], "purposes": ["training"], "columns": dict(self.roles),
                              "privacy_unit": self.privacy_unit})
        return TableInfo(self.name, policy, tuple(self.roles))


@dataclass(frozen=True)
class FeaturePlan:
    sql: str
    engine_sql: str
    tables: tuple[str, ...]
    output_columns: tuple[str, ...]
    columns_read: tuple[tuple[str, tuple[str, ...]], ...]
    dp: Any = None  # the gate engine's connection helper looks for it

    def columns_of(self, dataset: str) -> tuple[str, ...]:
        return dict(self.columns_read).get(dataset, ())


@dataclass(frozen=True)
class FeatureSnapshot:
    table: Any  # pyarrow.Table, without the unit column
    rows_read: int
    units: int
    dropped_duplicate_rows: int
    versions: dict[str, int] = field(default_factory=dict)


def _refuse(reason: str, rule: str = "feature_query") -> QueryRefused:
    return QueryRefused(f"feature query refused: {reason}", details={"rule": rule})


def _inside(node: exp.Expression, kind: type[exp.Expression]) -> bool:
    p = node.parent
    while p is not None and not isinstance(p, exp.Select):
        if isinstance(p, kind):
            return True
        p = p.parent
    return False


def plan_features(sql: str, lookup: Callable[[str], TableInfo | FeatureInfo]) -> FeaturePlan:
    """Check a feature query with the gate's planner and the rules above; the plan to run."""
    def tables(name: str) -> TableInfo:
        info = lookup(name)
        return info.table_info() if isinstance(info, FeatureInfo) else info

    try:
        root = parse_select(sql)
    except QueryRefused as exc:
        raise _refuse(exc.message, exc.details.get("rule", "parse")) from None
    for key, value in root.args.items():
        if key not in _CLAUSES and value not in (None, False, []):
            raise _refuse(f"{key.rstrip('_').upper()} is not allowed in a feature query (one row per unit, "
                          "nothing cut or ordered: no LIMIT, ORDER BY or HAVING)")
    for node in root.walk():
        if not isinstance(node, _ALLOWED):
            raise _refuse(f"{type(node).__name__} is not allowed in a feature query")
    c = Checker(tables)
    from_ = root.args.get("from_")
    if from_ is None:
        raise _refuse("the query reads no dataset")
    c.table(from_.this)  # the gate's checks: a plain dataset name, read once
    joins = [c.join(j) for j in root.args.get("joins") or []]  # the gate's join rules
    units = _units(c)
    c.refuse_identifiers(root)

    # every column of the select list, WHERE and GROUP BY: resolved and checked by role
    grouped_by_unit = False
    for col in root.find_all(exp.Column):
        if _inside(col, exp.Join):
            continue  # checked by the join
        ref, role = c.resolve(col)
        if role is ColumnRole.IDENTIFIER:
            raise _refuse(f"{ref} is an identifier: never a feature", "identifier")
        if role is ColumnRole.JOIN_KEY:
            if not _inside(col, exp.Group):
                raise _refuse(f"{ref} is a join key: allowed only in ON and GROUP BY, never as a feature", "join_key")
            grouped_by_unit = grouped_by_unit or ref in units
        c.mark_read(ref)
        col.replace(ref_sql(ref))
    outputs: list[str] = []
    for e in root.expressions:
        name = e.alias_or_name
        if not name or name.startswith("__") or name in outputs:
            raise _refuse("every output column needs a distinct plain name (use AS)")
        if not isinstance(e, exp.Alias | exp.Column):
            raise _refuse(f"name the expression for {name!r} with AS")
        outputs.append(name)
    aggregated = any(True for _ in root.find_all(*_AGGREGATES)) or root.args.get("group")
    if aggregated and not grouped_by_unit:
        raise _refuse("a feature query with aggregates must GROUP BY the privacy unit (one row per unit)",
                      "privacy_unit")
    unit = units[0]
    c.mark_read(unit)
    engine = exp.Select(expressions=[*root.expressions, exp.alias_(ref_sql(unit), UNIT, quoted=True)],
                        from_=exp.From(this=exp.Table(this=exp.to_identifier(c.tables[0].name, quoted=True))))
    if joins:
        engine.set("joins", joins)
    for key in ("where", "group"):
        if root.args.get(key) is not None:
            engine.set(key, root.args[key])
    return FeaturePlan(sql=sql, engine_sql=engine.sql(dialect="duckdb"), tables=tuple(t.name for t in c.tables),
                       output_columns=tuple(outputs),
                       columns_read=tuple((name, tuple(sorted(cols))) for name, cols in c.read.items()))


def _units(c: Checker) -> list[ColumnRef]:
    """Each dataset's privacy-unit column; refused unless every dataset declares one and every ON
    equality joins two of them (then every joined row is one unit's rows)."""
    units: list[ColumnRef] = []
    for info in c.tables:
        unit = info.policy.privacy_unit
        physical = [col for col in info.columns if unit is not None and col.casefold() == unit.casefold()]
        if len(physical) != 1:
            raise _refuse(f"{info.name} declares no privacy unit: a training example must be one unit's rows, "
                          "so every dataset read needs one", "privacy_unit")
        units.append(ColumnRef(info.name, physical[0]))
    for left, right in c.equalities:
        if left not in units or right not in units:
            raise _refuse(f"ON {left} = {right} does not join two datasets' privacy units: every joined row "
                          "must be one unit's (join on the privacy unit; other join keys could bring another "
                          "unit's values into this unit's example)", "join_condition")
    return units


def run_features(plan: FeaturePlan, snapshots: Mapping[str, Snapshot]) -> FeatureSnapshot:
    """Run on the pinned snapshots; keep one random row per unit; drop the unit column."""
    import duckdb
    import numpy as np
    import pyarrow as pa

    from ..gate.engine import open_connection

    con = open_connection(plan, {t: snapshots[t] for t in plan.tables})
    try:
        table = con.sql(plan.engine_sql).to_arrow_table()
    except duckdb.Error:
        # DuckDB messages can quote values: only the kind leaves
        raise _refuse("the query failed when run on the data (check types and names)", "engine") from None
    finally:
        con.close()
    if table.num_rows > MAX_ROWS:
        raise _refuse(f"more than {MAX_ROWS} rows", "size")
    rng = np.random.default_rng(int.from_bytes(os.urandom(16), "little"))
    perm = rng.permutation(table.num_rows)
    units = table.column(UNIT).to_pylist()
    seen: set[Any] = set()
    keep = []
    for i in perm:
        u = units[i]
        if u is None or u in seen:
            continue
        seen.add(u)
        keep.append(i)
    keep.sort()
    out = table.take(pa.array(keep, type=pa.int64())).drop_columns([UNIT])
    return FeatureSnapshot(out, table.num_rows, len(seen), table.num_rows - len(keep),
                           {t: snapshots[t].version for t in plan.tables})
