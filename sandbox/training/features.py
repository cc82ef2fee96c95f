"""The trusted feature-query path: a training job's feature matrix, built by the broker.

The gate refuses row-level queries because their rows would go to the job. A training job's
rows go nowhere the job can see: they become a Parquet file that only the trainer sandbox
reads. So this path allows row-level SELECTs, but only of what a model may learn from:

* one ``SELECT`` over the job's datasets (by name, optionally aliased), inner joins whose
  ``ON`` is an AND of equalities between **declared join keys**;
* output columns are **dimension/measure** columns or expressions/aggregates over them; an
  ``identifier`` column is refused anywhere; a ``join_key`` only in ``ON`` and ``GROUP BY``
  (never as a feature);
* operators and functions from an allow-list; no subqueries, CTEs, set operations, ``*``,
  windows, table functions, ``LIMIT``;
* with aggregates, the query must ``GROUP BY`` a privacy-unit column.

The privacy unit (the datasets' policy ``privacy_unit``) is selected as a hidden column; after
the run at most **one row per unit** is kept (chosen at random with a CSPRNG), so each unit
contributes one example and DP-SGD's per-example guarantee is per unit. The hidden column is
dropped before the file is written. The SQL runs on the job's pinned snapshots through the
gate's locked-down DuckDB connection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp

from ..errors import QueryRefused
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


@dataclass(frozen=True)
class FeatureInfo:
    """What the path needs of a dataset: column roles and its privacy-unit column."""

    name: str
    roles: Mapping[str, str]  # column -> identifier|dimension|measure|join_key
    privacy_unit: str | None


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


def _in_join_on(node: exp.Expression) -> bool:
    p = node.parent
    while p is not None:
        if isinstance(p, exp.Join):
            return True
        if isinstance(p, exp.Select):
            return False
        p = p.parent
    return False


def _in_group(node: exp.Expression) -> bool:
    p = node.parent
    while p is not None and not isinstance(p, exp.Select):
        if isinstance(p, exp.Group):
            return True
        p = p.parent
    return False


def plan_features(sql: str, lookup: Callable[[str], FeatureInfo]) -> FeaturePlan:
    try:
        statements = sqlglot.parse(sql, read="duckdb")
    except sqlglot.errors.ParseError:
        raise _refuse("it does not parse as SQL", "parse") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise _refuse("exactly one SELECT statement is allowed", "parse")
    tree = statements[0]
    for node in tree.walk():
        if not isinstance(node, _ALLOWED):
            raise _refuse(f"{type(node).__name__} is not allowed in a feature query")
    if tree.args.get("limit") or tree.args.get("order") or tree.args.get("having") or tree.args.get("distinct"):
        raise _refuse("LIMIT, ORDER BY, HAVING and DISTINCT are not allowed in a feature query")
    # tables and aliases
    aliases: dict[str, FeatureInfo] = {}
    order: list[str] = []
    for t in tree.find_all(exp.Table):
        if t.args.get("db") or t.args.get("catalog") or not isinstance(t.this, exp.Identifier):
            raise _refuse("tables are named by dataset only")
        info = lookup(t.name)
        alias = t.alias_or_name
        if alias in aliases:
            raise _refuse(f"table alias {alias!r} is used twice")
        aliases[alias] = info
        order.append(info.name)
    for j in tree.args.get("joins") or []:
        if j.args.get("using") or j.side or (j.kind and j.kind.upper() not in ("INNER",)):
            raise _refuse("only inner joins with ON are allowed")
        on = j.args.get("on")
        if on is None:
            raise _refuse("a join needs ON with equalities of join keys")
        conds = list(on.flatten()) if isinstance(on, exp.And) else [on]
        for c in conds:
            if not (isinstance(c, exp.EQ) and isinstance(c.left, exp.Column) and isinstance(c.right, exp.Column)):
                raise _refuse("join conditions must be equalities between declared join keys")
    # columns
    read: dict[str, set[str]] = {}

    def resolve(col: exp.Column) -> tuple[str, FeatureInfo, str]:
        if col.table:
            info = aliases.get(col.table)
            if info is None:
                raise _refuse(f"unknown table {col.table!r}")
            if col.name not in info.roles:
                raise _refuse(f"{info.name} has no declared column {col.name!r}")
            return col.table, info, col.name
        hits = [(a, i) for a, i in aliases.items() if col.name in i.roles]
        if len(hits) != 1:
            raise _refuse(f"column {col.name!r} is unknown or ambiguous: qualify it")
        return hits[0][0], hits[0][1], col.name

    unit_in_group: exp.Column | None = None
    for col in tree.find_all(exp.Column):
        alias, info, name = resolve(col)
        role = info.roles[name]
        if role == "identifier":
            raise _refuse(f"{info.name}.{name} is an identifier: never a feature", "identifier")
        if role == "join_key":
            if _in_group(col):
                if name == info.privacy_unit:
                    unit_in_group = col
            elif not _in_join_on(col):
                raise _refuse(f"{info.name}.{name} is a join key: allowed only in ON and GROUP BY, never as a "
                              "feature", "join_key")
        elif _in_join_on(col):
            raise _refuse(f"{info.name}.{name} is not a join key", "join_key")
        read.setdefault(info.name, set()).add(name)
    # output columns
    outputs: list[str] = []
    for e in tree.expressions:
        name = e.alias_or_name
        if not name or name.startswith("__") or name in outputs:
            raise _refuse("every output column needs a distinct plain name (use AS)")
        if not isinstance(e, exp.Alias | exp.Column):
            raise _refuse(f"name the expression for {name!r} with AS")
        outputs.append(name)
    has_agg = any(True for _ in tree.find_all(*_AGGREGATES))
    if has_agg or tree.args.get("group"):
        if unit_in_group is None:
            raise _refuse("a feature query with aggregates must GROUP BY the privacy unit (one row per unit)",
                          "privacy_unit")
        unit_expr: exp.Expression = unit_in_group.copy()
    else:
        first = next(iter(aliases))
        info = aliases[first]
        if not info.privacy_unit:
            raise _refuse(f"{info.name} declares no privacy unit", "privacy_unit")
        unit_expr = exp.column(info.privacy_unit, table=first)
        read.setdefault(info.name, set()).add(info.privacy_unit)
    units = {i.privacy_unit for i in aliases.values()}
    if None in units or len(units) != 1:
        raise _refuse("the datasets must share one declared privacy unit", "privacy_unit")
    engine_tree = tree.copy()
    engine_tree.select(exp.alias_(unit_expr, UNIT, quoted=True), copy=False)
    return FeaturePlan(sql=sql, engine_sql=engine_tree.sql(dialect="duckdb"), tables=tuple(dict.fromkeys(order)),
                       output_columns=tuple(outputs),
                       columns_read=tuple((t, tuple(sorted(read.get(t, ())))) for t in dict.fromkeys(order)))


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
