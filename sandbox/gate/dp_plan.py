"""The ``dp`` release mode's rewrite: contribution bounding and fixed point, in the engine's SQL.

From the checked pieces of the analyst's query (:class:`~.clauses.Checker`), build one
``GROUP BY`` whose per-group statistics have a known L1 sensitivity:

* **Clamping** — every measure value is clamped to the policy's declared ``dp.bounds``
  (a ``CASE``: cheaper per row than ``LEAST(GREATEST(..))``), multiplied by ``2**e`` and
  truncated toward zero (:class:`dp.grid.Grid`): sums are exact BIGINT sums.
* **Contribution bounding per privacy unit** — a unit with N > ``max_rows_per_unit`` (m) rows
  in the dataset gets the weight m/N on each row, so its rows weigh at most m in any query.
  Units are bucketed by ``hash(unit)``; a collision only bounds two units together (stricter).
  The heavy-unit table (``hash → m/N``, only units with N > m) is computed once per snapshot
  by trusted code (:mod:`.dp_bounding`) and joined with a LEFT JOIN, so a query costs one
  extra hash probe rather than a window over all rows (see ARCHITECTURE.md for the numbers).
  Weighted counts are fixed point too: the table's integer ``c = floor(m * 2**10 / N)`` (with
  several joined datasets, ``floor(w1 * w2 * 2**10)``). When no unit of the snapshot is heavy
  the engine runs ``light_sql`` instead: the same integers without the join. With one dataset
  and some heavy unit, DuckDB runs ``bounded_sql`` over the snapshot's *bounded copy* (its
  dimensions and measures plus each row's ``c``, written once by :mod:`.dp_bounding`): the same
  integers again, with no unit column read, hashed or probed per query.
* **Quantiles** — one more group key, the value's bin on a public grid over the bounds; the
  release noises the per-bin counts and post-processes them into quantiles (:mod:`dp.quantile`).
* **Group keys** — when every group column has a public key set, every key of their product
  is released (empty ones too); otherwise keys are chosen by DP partition selection in the
  release mode. A histogram bucket of a measure (``WIDTH_BUCKET(x, lo, hi, n)``,
  ``FLOOR(x / w) [* w]``) buckets the *clamped* value, so its key set is every index the
  declared bounds reach: public, whatever the data.

The SQL is built as a sqlglot AST (DuckDB dialect; it transpiles to Spark SQL). ORDER BY is
never sent to the engine: the release mode orders the *noisy* rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction

from sqlglot import exp

from dp.budget import to_fraction
from dp.grid import COUNT_EXPONENT, Grid
from dp.quantile import QUANTILE_BINS
from policies import ColumnRole, Decision, Policy, PolicyError, column_role

from ..errors import InternalError
from .clauses import Checker, Item, bucket_sql, double_sql, ident, number_sql, ref_sql, refuse
from .plan import AggregateSpec, BucketRef, ColumnRef, GroupKey, QueryPlan

DIALECT = "duckdb"
MAX_PUBLIC_CELLS = 100_000
HEAVY_PREFIX = "__twh_heavy_"
BIN_COLUMN = "__twh_b"
#: the bounded copy's per-row count weight: ``COALESCE(c, 2**10)`` of the heavy-unit join
WEIGHT_COLUMN = "__twh_c"


@dataclass(frozen=True)
class HeavyUnits:
    """A per-snapshot table of heavy units the engine must register (``__twh_heavy_<i>``)."""

    dataset: str
    unit: str
    max_rows: int

    def view_name(self, i: int) -> str:
        return f"{HEAVY_PREFIX}{i}"


@dataclass(frozen=True)
class DpStat:
    """One noised statistic per group: a (weighted) count or a clamped fixed-point sum."""

    kind: str  # "count" | "sum"
    column: ColumnRef | None  # None: COUNT(*)
    #: fixed-point exponent: the engine's integer is value * 2**exponent
    exponent: int
    #: L1 sensitivity of the whole vector of this statistic over groups, in grid units
    sensitivity: int
    lo: Fraction | None = None
    hi: Fraction | None = None
    #: kind "hist": equal-width bins over [lo, hi]; the engine adds a bin column (``__twh_b``)
    bins: int = 0


@dataclass(frozen=True)
class DpPlan:
    stats: tuple[DpStat, ...]
    #: per output aggregate: ("count"|"sum"|"avg", stat index, count stat index or -1)
    outputs: tuple[tuple[str, int, int], ...]
    #: per group column: its public keys (a bucket's: its indices), or None
    public_keys: tuple[tuple[str | int, ...] | None, ...]
    #: the stat index partition selection counts on (-1 when keys are public)
    selection_stat: int
    rows_per_unit: int
    epsilon: Fraction
    delta: Fraction
    heavy: tuple[HeavyUnits, ...]
    order: tuple[tuple[int, bool], ...]
    #: datasets whose budget a run of this plan is charged to
    charged: tuple[str, ...]
    #: the user's output names, and per select item "group" or "agg", in select order
    names: tuple[str, ...] = ()
    item_kinds: tuple[str, ...] = ()
    #: per output aggregate: its quantile fraction (None for other aggregates)
    alphas: tuple[float | None, ...] = ()
    #: the index of the "hist" statistic (quantiles), -1 when none: engine rows then carry a bin
    #: column after the group keys, and the release sums the other statistics over bins
    hist: int = -1
    #: with privacy units: the same query with every weight 1 and no heavy-unit join. When no unit
    #: of the pinned snapshots has more than m rows (the cached heavy tables are empty) it computes
    #: the very same integers, so the engine may run it instead (:func:`.dp_bounding.engine_sql`):
    #: a choice between two plans whose released distributions are identical
    light_sql: str = ""
    #: one dataset with a privacy unit, no join: ``engine_sql`` with the heavy-unit join replaced by
    #: the bounded copy's weight column (:data:`WEIGHT_COLUMN`) -- the very same integers again
    bounded_sql: str = ""
    #: the columns a bounded copy of the dataset holds (its dimensions and measures)
    bounded_columns: tuple[str, ...] = ()
    #: per group column, its histogram bucket (the engine returns the index; the release shows
    #: :meth:`~.plan.BucketRef.label`), or None for a dimension
    buckets: tuple[BucketRef | None, ...] = ()

    @property
    def keys_public(self) -> bool:
        return all(k is not None for k in self.public_keys)

    def to_dict(self) -> dict[str, object]:
        return {"epsilon": str(self.epsilon), "delta": str(self.delta), "rows_per_unit": self.rows_per_unit,
                "keys": "public" if self.keys_public else "partition_selection",
                "statistics": [{"kind": s.kind, "column": str(s.column) if s.column else None,
                                "grid_exponent": s.exponent, "sensitivity": s.sensitivity} for s in self.stats]}


def _clamp(column: ColumnRef, lo: Fraction, hi: Fraction) -> exp.Expression:
    """``x`` clamped to the declared ``[lo, hi]`` as a CASE: measured 2-3x cheaper per row than
    ``LEAST(GREATEST(x, lo), hi)`` in DuckDB, and plain SQL on Spark. NULL stays NULL (SUM skips
    it); NaN compares greater than any number on both engines, so it becomes ``hi``."""
    return exp.Case(ifs=[exp.If(this=exp.LT(this=double_sql(column), expression=number_sql(lo)), true=number_sql(lo)),
                         exp.If(this=exp.GT(this=double_sql(column), expression=number_sql(hi)),
                                true=number_sql(hi))], default=double_sql(column))


def _bin(st: DpStat) -> exp.Expression:
    """The bin of a value on the public grid of ``st.bins`` equal-width bins over [lo, hi]: values
    below lo fall in the first bin, at or above hi in the last; NULL stays NULL (no bin). The
    release also clamps indices into range, whatever float rounding does at the edges."""
    assert st.column is not None and st.lo is not None and st.hi is not None
    x = double_sql(st.column)
    per_unit = Fraction(st.bins) / (st.hi - st.lo)
    index = exp.Cast(this=exp.Floor(this=exp.Mul(this=exp.Paren(this=exp.Sub(this=x.copy(), expression=number_sql(st.lo))),
                                                 expression=number_sql(per_unit))), to=exp.DataType.build("bigint"))
    return exp.Case(ifs=[exp.If(this=exp.LT(this=x.copy(), expression=number_sql(st.lo)), true=exp.Literal.number(0)),
                         exp.If(this=exp.GTE(this=x.copy(), expression=number_sql(st.hi)),
                                true=exp.Literal.number(st.bins - 1))], default=index)


def _role(policy: Policy, column: str) -> ColumnRole | None:
    try:
        return column_role(policy, column)
    except PolicyError:
        return None


def _bounded(query: exp.Select, dataset: str) -> exp.Select:
    """``query`` (the one-dataset weighted plan) reading each row's weight from the bounded copy's
    :data:`WEIGHT_COLUMN` instead of the heavy-unit join: ``COALESCE("__twh_h0"."c", 1024)``
    becomes ``COALESCE("<dataset>"."__twh_c", 1024)``, the same integer on every row."""
    out = query.copy()
    out.set("joins", [j for j in out.args.get("joins") or []
                      if not (isinstance(j.this, exp.Table) and j.this.alias == "__twh_h0")] or None)

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Column) and node.table == "__twh_h0":
            if node.name != "c":
                raise InternalError("the bounded plan reads only the heavy table's count weight")
            return exp.Column(this=ident(WEIGHT_COLUMN), table=ident(dataset))
        return node
    out = out.transform(swap)
    if "__twh_h0" in out.sql(dialect=DIALECT):
        raise InternalError("the bounded plan still names the heavy-unit table")
    return out


def plan_dp(sql: str, c: Checker, items: list[Item], groups: list[GroupKey], joins: list[exp.Join],
            where_sql: exp.Expression | None, order_sql: exp.Order | None) -> QueryPlan:
    rules = {t.name: t.policy.dp for t in c.tables}
    if any(r is None for r in rules.values()):  # the policy model requires it; fail closed anyway
        refuse("release_mode", "a dataset in dp mode declares no dp settings")
    # Units: one dataset without a unit is row-level; otherwise every dataset must declare a
    # unit and all of them must be joined by equality (one entity protected across the join).
    units_declared = [t for t in c.tables if t.policy.privacy_unit is not None]
    unit_refs: list[ColumnRef] = []
    for info in units_declared:
        physical = [col for col in info.columns if col.casefold() == info.policy.privacy_unit.casefold()]
        unit_refs.append(ColumnRef(info.name, physical[0]))
    if len(c.tables) > 1:
        if len(units_declared) != len(c.tables):
            refuse("dp_unit", "in dp mode every joined dataset must declare a privacy unit")
        linked = {frozenset(p) for p in c.equalities}
        first = unit_refs[0]
        for other in unit_refs[1:]:
            if frozenset((first, other)) not in linked and not any(
                    frozenset((u, other)) in linked for u in unit_refs if u != other):
                refuse("dp_unit", "in dp mode datasets must be joined on their privacy units "
                                  f"({', '.join(str(u) for u in unit_refs)})")
    heavy = tuple(HeavyUnits(t.name, ref.column, rules[t.name].max_rows_per_unit)
                  for t, ref in zip(units_declared, unit_refs))
    m = 1
    for h in heavy:
        m *= h.max_rows  # joined rows of one unit: the product of its rows in each dataset
    weighted = bool(heavy)

    # Statistics, deduplicated: COUNT(*) / COUNT(col) / SUM(col) (AVG = SUM / COUNT(col)).
    stats: list[DpStat] = []
    exprs: list[exp.Expression] = []
    #: the same statistics with every weight 1 (no heavy unit in the snapshots): identical values
    light: list[exp.Expression] = []
    weight: exp.Expression = exp.Literal.number(1)
    for i, _ in enumerate(heavy):
        # one table: c / 1024 (exact in binary floating point); several: their float weights' product
        w = (exp.Coalesce(this=exp.Column(this=ident("w"), table=ident(f"__twh_h{i}")),
                          expressions=[exp.Literal.number("1.0")]) if len(heavy) > 1 else
             exp.Div(this=exp.Coalesce(this=exp.Column(this=ident("c"), table=ident(f"__twh_h{i}")),
                                       expressions=[exp.Literal.number(2 ** COUNT_EXPONENT)]),
                     expression=exp.Literal.number(f"{float(2 ** COUNT_EXPONENT)}")))
        weight = w if i == 0 else exp.Mul(this=weight, expression=w)

    def bounds_of(column: ColumnRef, what: str) -> tuple[Fraction, Fraction]:
        bounds = rules[column.dataset].bounds.get(column.column)
        if bounds is None:
            refuse("dp_bounds", f"{what} of {column.column!r}: the policy of {column.dataset!r} declares no "
                                f"clamping bounds for it (dp.bounds)")
        if (column, "numeric") not in c.literal_kinds:  # CAST(x AS DOUBLE) of a string fails by the data
            c.literal_kinds.append((column, "numeric"))
        return to_fraction(bounds[0]), to_fraction(bounds[1])

    def dpq_stat(column: ColumnRef, lo: Fraction, hi: Fraction) -> DpStat:
        expr, light_expr, exponent, sensitivity = count_of(column)  # COUNT(col)'s weights, per (cell, bin)
        exprs.append(expr)
        light.append(light_expr)
        return DpStat("hist", column, exponent, sensitivity, lo, hi, bins=QUANTILE_BINS)

    def count_of(column: ColumnRef | None) -> tuple[exp.Expression, exp.Expression, int, int]:
        """A (weighted) count's SQL, the same with all weights 1, its grid exponent and its L1
        sensitivity in grid units."""
        plain = exp.Count(this=exp.Star() if column is None else ref_sql(column))
        if not weighted:  # COUNT(*) / COUNT(col): no per-row arithmetic at all
            return plain, plain.copy(), 0, 1
        if len(heavy) == 1:
            # the heavy table's integer c = floor(m * 2**10 / N) <= w * 2**10: sum c <= m * 2**10
            unit: exp.Expression = exp.Coalesce(this=exp.Column(this=ident("c"), table=ident("__twh_h0")),
                                                expressions=[exp.Literal.number(2 ** COUNT_EXPONENT)])
            sensitivity = m * 2 ** COUNT_EXPONENT
        else:
            unit = exp.Cast(this=exp.Floor(this=exp.Mul(this=weight.copy(),
                                                        expression=exp.Literal.number(2 ** COUNT_EXPONENT))),
                            to=exp.DataType.build("bigint"))
            # +1: the float product may round up by far less than one grid step in all
            sensitivity = m * 2 ** COUNT_EXPONENT + 1
        if column is not None:
            unit = exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=ref_sql(column), expression=exp.Null())),
                                        true=unit)], default=exp.Literal.number(0))
        return (exp.Sum(this=unit), exp.Mul(this=plain, expression=exp.Literal.number(2 ** COUNT_EXPONENT)),
                COUNT_EXPONENT, sensitivity)

    def stat(kind: str, column: ColumnRef | None) -> int:
        for j, s in enumerate(stats):
            if s.kind == kind and s.column == column:
                return j
        if kind == "hist":  # per-bin (weighted) counts of non-NULL values: a COUNT(col) per bin
            assert column is not None
            lo, hi = bounds_of(column, "MEDIAN/QUANTILE")
            st = dpq_stat(column, lo, hi)
            stats.append(st)
            return len(stats) - 1
        if kind == "count":
            expr, light_expr, exponent, sensitivity = count_of(column)
            exprs.append(expr)
            light.append(light_expr)
            st = DpStat("count", column, exponent, sensitivity)
        else:
            assert column is not None
            lo, hi = bounds_of(column, "SUM/AVG")
            grid = Grid.for_bounds(lo, hi)
            clamped = _clamp(column, lo, hi)
            for weighted_value in (True, False):  # weight 1: w * x == x exactly (1.0 * x)
                value: exp.Expression = (exp.Mul(this=weight.copy(), expression=clamped.copy())
                                         if weighted and weighted_value else clamped.copy())
                scaled = exp.Mul(this=value, expression=exp.Literal.number(2 ** grid.exponent)
                                 if grid.exponent >= 0 else exp.Literal.number(repr(2.0 ** grid.exponent)))
                (exprs if weighted_value else light).append(exp.Sum(this=exp.Cast(
                    this=exp.Anonymous(this="TRUNC", expressions=[scaled]), to=exp.DataType.build("bigint"))))
            # +1: w * x rounds to nearest, so a unit's truncated terms may exceed m * max|x| by far
            # less than one grid step in all
            st = DpStat("sum", column, grid.exponent, grid.sensitivity(m) + (1 if weighted else 0), lo, hi)
        stats.append(st)
        return len(stats) - 1

    outputs: list[tuple[str, int, int]] = []
    alphas: list[float | None] = []
    quantiled = list(dict.fromkeys(i.column for i, _ in items if isinstance(i, AggregateSpec) and i.func == "quantile"))
    if len(quantiled) > 1:
        refuse("dp_quantile", "quantiles of more than one measure in one query: ask one measure's quantiles per "
                              "query (they share one noisy histogram)")
    for item, _name in items:
        if isinstance(item, AggregateSpec):
            alphas.append(item.alpha if item.func == "quantile" else None)
            if item.func == "quantile":
                outputs.append(("quantile", stat("hist", item.column), -1))
            elif item.func == "count":
                outputs.append(("count", stat("count", item.column), -1))
            elif item.func == "sum":
                outputs.append(("sum", stat("sum", item.column), -1))
            else:
                outputs.append(("avg", stat("sum", item.column), stat("count", item.column)))

    public: list[tuple[str | int, ...] | None] = []
    keyed: list[tuple[exp.Expression, str]] = []
    group_names = [f"__twh_g{k}" for k in range(len(groups))]
    for g, name in zip(groups, group_names):
        if isinstance(g, BucketRef):
            # a histogram: the value clamped to the declared bounds, then bucketed by the query's
            # literals, so every index it can take is known without the data (a public key set)
            if _role(next(t.policy for t in c.tables if t.name == g.dataset), g.column) is not ColumnRole.MEASURE:
                refuse("dp_keys", f"{g}: in dp mode histograms bucket measures with declared bounds; group by "
                                  f"the dimension {g.column!r} itself (its keys public or selected) instead")
            lo, hi = bounds_of(g.ref, f"a histogram ({g})")
            indices = g.indices(lo, hi)
            if len(indices) > MAX_PUBLIC_CELLS:
                refuse("dp_keys", f"{g} has {len(indices)} buckets over the declared bounds [{lo}, {hi}] of "
                                  f"{g.column!r}: at most {MAX_PUBLIC_CELLS} (widen the buckets)")
            if max(abs(indices.start), abs(indices.stop)) > 2 ** 53:
                refuse("dp_keys", f"{g}: the bucket indices are too large (widen the buckets)")
            public.append(tuple(indices))
            keyed.append((bucket_sql(g, _clamp(g.ref, lo, hi)), name))
            continue
        keys = rules[g.dataset].public_keys.get(g.column)
        public.append(tuple(keys) if keys is not None else None)
        keyed.append((ref_sql(g), name))
    epsilon = min(to_fraction(r.epsilon_per_query) for r in rules.values())
    delta = min(to_fraction(r.delta_per_query) for r in rules.values())
    selection = -1
    if not all(k is not None for k in public):
        if delta <= 0:
            refuse("dp_keys", "group keys without a public key set need DP partition selection, and the policy "
                              "allows no delta for it (dp.delta_per_query): group by dimensions with public_keys")
        selection = stat("count", None)
    else:
        cells = 1
        for k in public:
            cells *= len(k or ())
        if cells > MAX_PUBLIC_CELLS:
            refuse("dp_keys", f"the public key sets span more than {MAX_PUBLIC_CELLS} cells")

    # The SQL: group columns, then one column per statistic.
    base = exp.Select(from_=exp.From(this=exp.Table(this=ident(c.tables[0].name))))
    light_base = base.copy()
    if joins:
        light_base.set("joins", [j.copy() for j in joins])
    all_joins = list(joins)
    for i, (h, ref) in enumerate(zip(heavy, unit_refs)):
        on = exp.EQ(this=exp.Anonymous(this="hash", expressions=[ref_sql(ref)]),
                    expression=exp.Column(this=ident("k"), table=ident(f"__twh_h{i}")))
        all_joins.append(exp.Join(this=exp.Table(this=ident(h.view_name(i)), alias=exp.TableAlias(
            this=ident(f"__twh_h{i}"))), side="LEFT", on=on))
    if all_joins:
        base.set("joins", all_joins)
    if where_sql is not None:
        base.set("where", exp.Where(this=where_sql))
        light_base.set("where", exp.Where(this=where_sql.copy()))
    stat_names = [f"__twh_dp{j}" for j in range(len(stats))]
    hist = next((j for j, s in enumerate(stats) if s.kind == "hist"), -1)
    if hist >= 0:  # one more key: the value's bin (the release sums the other statistics over it)
        keyed.append((_bin(stats[hist]), BIN_COLUMN))
        group_names.append(BIN_COLUMN)
    base.set("expressions", [exp.alias_(e, n, quoted=True) for e, n in keyed]
             + [exp.alias_(e, n, quoted=True) for e, n in zip(exprs, stat_names)])
    if keyed:
        base.set("group", exp.Group(expressions=[e.copy() for e, _ in keyed]))
    light_base.set("expressions", [exp.alias_(e.copy(), n, quoted=True) for e, n in keyed]
                   + [exp.alias_(e, n, quoted=True) for e, n in zip(light, stat_names)])
    if keyed:
        light_base.set("group", exp.Group(expressions=[e.copy() for e, _ in keyed]))
    for ref in unit_refs:
        c.mark_read(ref)

    bounded_sql, bounded_columns = "", ()
    if len(heavy) == 1 and not joins:
        bounded_sql = _bounded(base, c.tables[0].name).sql(dialect=DIALECT)
        table = c.tables[0]
        bounded_columns = tuple(col for col in table.columns
                                if _role(table.policy, col) in (ColumnRole.DIMENSION, ColumnRole.MEASURE))

    order: list[tuple[int, bool]] = []
    if order_sql is not None:
        for o in order_sql.expressions:
            order.append((int(o.this.this) - 1, bool(o.args.get("desc"))))
    dp_plan = DpPlan(tuple(stats), tuple(outputs), tuple(public), selection, m, epsilon, delta, heavy,
                     tuple(order), tuple(t.name for t in c.tables), tuple(name for _, name in items),
                     tuple("agg" if isinstance(i, AggregateSpec) else "group" for i, _ in items), tuple(alphas), hist,
                     light_base.sql(dialect=DIALECT) if heavy else "", bounded_sql, bounded_columns,
                     tuple(g if isinstance(g, BucketRef) else None for g in groups))
    unit_desc = ", ".join(str(u) for u in unit_refs) or "rows"
    decisions = [
        Decision(True, "select_only", "one SELECT statement without CTEs, subqueries, set operations or comments"),
        Decision(True, "identifier_column", "no identifier column is used; dimensions are only grouped or filtered, "
                                            "measures only aggregated, join keys only joined on"),
        Decision(True, "dp_bounds", f"each privacy unit ({unit_desc}) weighs at most {m} rows; measures are "
                                    "clamped to their declared bounds"),
        Decision(True, "dp_keys", "group keys are the public key sets" if selection < 0
                 else "group keys are chosen by DP partition selection"),
    ]
    if joins:
        decisions.append(Decision(True, "join_condition", f"inner joins on join keys: {', '.join(c.joined)}"))
    return QueryPlan(
        original_sql=sql,
        sql_sha256=hashlib.sha256(sql.encode("utf-8")).hexdigest(),
        tables=tuple(t.name for t in c.tables),
        engine_sql=base.sql(dialect=DIALECT),
        output_columns=tuple(group_names + stat_names),
        group_columns=tuple(groups),
        aggregates=tuple(item for item, _ in items if isinstance(item, AggregateSpec)),
        columns_read=tuple((name, tuple(cols)) for name, cols in c.read.items()),
        literal_kinds=tuple(c.literal_kinds),
        hidden_columns=(),
        decisions=tuple(decisions),
        min_group_size=1,
        unit_columns=tuple(unit_refs),
        release_mode="dp",
        require_approval=any(t.policy.output.require_approval for t in c.tables),
        significant_digits=min(t.policy.output.significant_digits for t in c.tables),
        dp=dp_plan,
    )
