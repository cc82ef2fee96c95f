"""Name resolution and the per-clause checks of one query (FROM/JOIN, select list, WHERE).

:class:`Checker` resolves every column case-insensitively against the datasets in FROM, checks
each use against the column's role, and returns *new* sqlglot nodes built from what it checked:
fully qualified, quoted references to declared names and re-created literals. Nothing it does
not recognise passes: fail closed. The statement-level checks and the plan are in :mod:`.check`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from fractions import Fraction
from typing import Any, Literal, NoReturn

from sqlglot import exp

from policies import ColumnRole, PolicyError, column_role

from ..errors import InternalError, QueryRefused
from .plan import MAX_BUCKETS, RULES, AggregateSpec, BucketRef, ColumnRef, GroupKey, TableInfo

MAX_IN_LIST = 1_000
#: output names starting with this are ours (hidden counts); users may not take them
HIDDEN_PREFIX = "__twh"

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER_RE = re.compile(r"^(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_COMPARISONS: tuple[type[exp.Expression], ...] = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE)
#: quantile aggregates: parsed and checked everywhere, answered only by the dp release mode
_QUANTILES: tuple[type[exp.Expression], ...] = (exp.Median, exp.Quantile, exp.PercentileCont, exp.PercentileDisc)
_TEMPORAL = {exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPNTZ,
             exp.DataType.Type.TIMESTAMPTZ}

#: a select item: a group key (a column or a bucket) or an aggregate, with its output name
Item = tuple[ColumnRef | BucketRef | AggregateSpec, str]
Context = Literal["select", "group", "bucket", "where", "count", "sum", "avg", "on"]
_ALLOWED_ROLES: dict[Context, frozenset[ColumnRole]] = {
    "select": frozenset({ColumnRole.DIMENSION}),
    "group": frozenset({ColumnRole.DIMENSION}),
    # a histogram of a measure: its value only ever leaves as the bucket of a gated cell
    "bucket": frozenset({ColumnRole.DIMENSION, ColumnRole.MEASURE}),
    "where": frozenset({ColumnRole.DIMENSION}),
    "count": frozenset({ColumnRole.DIMENSION, ColumnRole.MEASURE}),
    "sum": frozenset({ColumnRole.MEASURE}),
    "avg": frozenset({ColumnRole.MEASURE}),
    "on": frozenset({ColumnRole.JOIN_KEY}),
}


def refuse(rule: str, reason: str, **details: Any) -> NoReturn:
    """Raise the gate's refusal. ``rule`` must be one of :data:`RULES` (a stable string)."""
    if rule not in RULES:  # a typo here would hand clients an unstable rule name
        raise InternalError(f"gate refused under an undeclared rule {rule!r}")
    raise QueryRefused(reason, details={"rule": rule, **details})


def short(text: str, limit: int = 64) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def ref_sql(c: ColumnRef) -> exp.Column:
    return exp.Column(this=ident(c.column), table=ident(c.dataset))


def number_sql(x: Fraction | int | float) -> exp.Expression:
    v = float(x)
    return exp.Neg(this=exp.Literal.number(repr(-v))) if v < 0 else exp.Literal.number(repr(v))


def bucket_sql(b: BucketRef, x: exp.Expression) -> exp.Expression:
    """The bucket index of the DOUBLE value ``x`` (NULL stays NULL). ``TRY_CAST``: a value too large
    for BIGINT gets the NULL key rather than an error that would depend on the data."""
    def index(value: exp.Expression) -> exp.Expression:
        return exp.TryCast(this=exp.Floor(this=value), to=exp.DataType.build("bigint"))
    if b.kind == "floor":
        return index(exp.Div(this=x.copy(), expression=number_sql(b.width)))
    # (x - lo) * n / (hi - lo), dividing last: on an edge lo + k (hi - lo) / n with exact operands the
    # quotient is exactly k (multiplying by a rounded n / (hi - lo) can land just below it)
    scaled = exp.Div(this=exp.Mul(this=exp.Paren(this=exp.Sub(this=x.copy(), expression=number_sql(b.lo))),
                                  expression=exp.Literal.number(b.count)),
                     expression=number_sql(b.hi - b.lo))
    inner = exp.Least(this=exp.Add(this=index(scaled), expression=exp.Literal.number(1)),
                      expressions=[exp.Literal.number(b.count)])
    return exp.Case(ifs=[exp.If(this=exp.Is(this=x.copy(), expression=exp.Null()), true=exp.Null()),
                         exp.If(this=exp.LT(this=x.copy(), expression=number_sql(b.lo)), true=exp.Literal.number(0)),
                         exp.If(this=exp.GTE(this=x.copy(), expression=number_sql(b.hi)),
                                true=exp.Literal.number(b.count + 1))], default=inner)


def double_sql(c: ColumnRef) -> exp.Expression:
    return exp.Cast(this=ref_sql(c), to=exp.DataType.build("double"))


def group_sql(g: GroupKey) -> exp.Expression:
    """A group key's SQL without clamping (the sdc mode): the column, or the bucket (its lower
    edge for ``FLOOR(x / w) * w``)."""
    if isinstance(g, ColumnRef):
        return ref_sql(g)
    key = bucket_sql(g, double_sql(g.ref))
    return exp.Mul(this=key, expression=_number_literal(g.width)) if g.scaled else key


def _number_literal(x: Fraction) -> exp.Expression:
    text = str(x.numerator) if x.denominator == 1 else repr(float(x))
    return exp.Literal.number(text)


def _number(node: exp.Expression | None, what: str) -> Fraction:
    """A number literal's exact value (``-`` allowed), or a refusal naming ``what``."""
    negative = isinstance(node, exp.Neg)
    if negative:
        node = node.this
    if not (type(node) is exp.Literal and not node.is_string and _NUMBER_RE.match(node.this)):
        refuse("group_by", f"{what} must be a number literal")
    value = Fraction(node.this)
    return -value if negative else value


def only_args(node: exp.Expression, allowed: set[str], rule: str, what: str) -> None:
    extra = sorted(k for k, v in node.args.items() if k not in allowed and v not in (None, False, []))
    if extra:
        refuse(rule, f"{what} uses unsupported syntax ({', '.join(extra)})")


def _and_terms(node: exp.Expression) -> Iterator[exp.Expression]:
    node = node.unnest()
    if isinstance(node, exp.And):
        yield from _and_terms(node.this)
        yield from _and_terms(node.expression)
    else:
        yield node


class Checker:
    """Resolves names against the datasets in FROM and checks each use against its role."""

    def __init__(self, lookup: Callable[[str], TableInfo]) -> None:
        self.lookup = lookup
        self.scopes: dict[str, TableInfo] = {}  # folded alias (or name) -> dataset
        self.tables: list[TableInfo] = []
        self.read: dict[str, list[str]] = {}  # dataset -> declared columns touched, in order
        self.joined: list[str] = []  # "a.k = b.k", for the plan's decisions
        self.literal_kinds: list[tuple[ColumnRef, str]] = []
        self.equalities: list[tuple[ColumnRef, ColumnRef]] = []

    # -- FROM and JOIN

    def table(self, node: exp.Expression) -> TableInfo:
        if not isinstance(node, exp.Table):
            refuse("table_function", "FROM may only name datasets (no VALUES, table functions or subqueries)")
        name_node = node.this
        if not isinstance(name_node, exp.Identifier):
            fname = (name_node.name if isinstance(name_node, exp.Anonymous)
                     else name_node.sql_name() if isinstance(name_node, exp.Func) else type(name_node).__name__)
            refuse("table_function", f"FROM may only name datasets; {short(fname, 32)}(...) is a table function "
                                     "or file reader")
        if node.args.get("db") or node.args.get("catalog"):
            refuse("qualified_name", "name datasets without a schema or catalog (e.g. FROM registry)")
        if node.args.get("sample"):
            refuse("sample", "SAMPLE / TABLESAMPLE are not allowed")
        only_args(node, {"this", "alias"}, "unsupported_clause", "a FROM item")
        name = name_node.this
        if not _NAME_RE.match(name):
            refuse("dataset_name", f"{short(name)!r} is not a dataset name (paths and quoted names are not allowed)")
        alias = name
        if node.args.get("alias") is not None:
            alias_node = node.args["alias"]
            only_args(alias_node, {"this"}, "unsupported_clause", "a table alias")
            alias = alias_node.name
            if not _NAME_RE.match(alias):
                refuse("alias", f"table alias {short(alias)!r} must be a plain name")
        info = self.lookup(name.lower())  # NotFound propagates: unknown and not-yours look alike
        if not isinstance(info, TableInfo):
            raise InternalError("dataset lookup returned something other than a TableInfo")
        if info.name in self.read:
            refuse("dataset_repeated", f"dataset {info.name!r} appears twice; each dataset may be read once")
        if alias.casefold() in self.scopes:
            refuse("alias", f"the name {alias!r} is used for two FROM items")
        self.scopes[alias.casefold()] = info
        self.tables.append(info)
        self.read[info.name] = []
        return info

    def join(self, node: exp.Join) -> exp.Join:
        if node.args.get("using"):
            refuse("join_condition", "JOIN ... USING is not supported: write ON a.key = b.key")
        kind = (node.args.get("kind") or "").upper()
        if node.args.get("side") or node.args.get("method") or kind not in ("", "INNER"):
            bad = " ".join(str(node.args.get(k) or "") for k in ("method", "side", "kind")).split()
            refuse("join_type", f"only INNER JOIN is allowed, not {' '.join(bad).upper()} JOIN")
        only_args(node, {"this", "on", "kind"}, "join_type", "a JOIN")
        if node.args.get("on") is None:
            refuse("join_type", "comma and cross joins are not allowed: use INNER JOIN ... ON a.key = b.key")
        new = self.table(node.this)
        conditions: list[exp.Expression] = []
        for term in _and_terms(node.args["on"]):
            if not (isinstance(term, exp.EQ) and isinstance(term.this, exp.Column)
                    and isinstance(term.expression, exp.Column)):
                refuse("join_condition", "ON may only be an AND of equalities between join_key columns (a.k = b.k)")
            left, right = self.use(term.this, "on"), self.use(term.expression, "on")
            if left.dataset == right.dataset or new.name not in (left.dataset, right.dataset):
                refuse("join_condition", f"each ON equality must link {new.name!r} to a dataset joined before it")
            self.joined.append(f"{left} = {right}")
            self.equalities.append((left, right))
            conditions.append(exp.EQ(this=ref_sql(left), expression=ref_sql(right)))
        on: exp.Expression = conditions[0]
        for c in conditions[1:]:
            on = exp.And(this=on, expression=c)
        return exp.Join(this=exp.Table(this=ident(new.name)), kind="INNER", on=on)

    # -- columns

    def resolve(self, node: exp.Column) -> tuple[ColumnRef, ColumnRole]:
        if not isinstance(node.this, exp.Identifier):
            refuse("select_item", "a column reference could not be understood")
        if node.args.get("db") or node.args.get("catalog"):
            refuse("qualified_name", "qualify columns with at most a dataset name or alias (alias.column)")
        only_args(node, {"this", "table"}, "unsupported_clause", "a column reference")
        name = node.this.this
        if node.args.get("table") is not None:
            qualifier = node.args["table"].name
            info = self.scopes.get(qualifier.casefold())
            if info is None:
                refuse("unknown_table", f"{short(qualifier)!r} is not a dataset or alias in FROM")
            candidates = [info]
        else:
            candidates = self.tables
        matches = [(t, c) for t in candidates for c in t.columns if c.casefold() == name.casefold()]
        if not matches:
            names = ", ".join(repr(t.name) for t in candidates)
            refuse("unknown_column", f"column {short(name)!r} is not a column of {names}")
        if len({t.name for t, _ in matches}) > 1:
            refuse("ambiguous_column", f"column {name!r} is in more than one dataset: qualify it (alias.{name})")
        if len(matches) > 1:
            refuse("unknown_column", f"column {name!r} matches several columns differing only by case")
        info, column = matches[0]
        try:
            role = column_role(info.policy, column)
        except PolicyError:
            # Physically present but not in the policy: treated as an identifier, never used.
            refuse("unknown_column", f"column {column!r} of {info.name!r} has no role in the dataset's policy")
        return ColumnRef(info.name, column), role

    def use(self, node: exp.Column, context: Context) -> ColumnRef:
        ref, role = self.resolve(node)
        if role not in _ALLOWED_ROLES[context]:
            if role is ColumnRole.IDENTIFIER:
                refuse("identifier_column", f"column {ref.column!r} of {ref.dataset!r} is an identifier: "
                                            "it may not appear anywhere in a query")
            if context == "on":
                refuse("join_condition", f"column {ref.column!r} of {ref.dataset!r} is a {role.value}, "
                                         "not a join_key: only join keys may be joined on")
            if role is ColumnRole.JOIN_KEY:
                refuse("join_key_outside_on", f"column {ref.column!r} of {ref.dataset!r} is a join key: "
                                              "it may appear only in JOIN ... ON")
            if role is ColumnRole.MEASURE:
                refuse("measure_outside_aggregate", f"column {ref.column!r} of {ref.dataset!r} is a measure: "
                                                    "it may appear only inside SUM, AVG or COUNT")
            refuse("aggregate_argument", f"{context.upper()} takes a measure column; {ref.column!r} is a {role.value}")
        self.mark_read(ref)
        return ref

    def mark_read(self, ref: ColumnRef) -> None:
        cols = self.read[ref.dataset]
        if ref.column not in cols:
            cols.append(ref.column)

    def refuse_identifiers(self, root: exp.Expression) -> None:
        """Identifiers are refused wherever they appear, even inside otherwise refused syntax,
        so that `SELECT upper(uscc)` is reported as what it is."""
        for node in root.find_all(exp.Column):
            if not isinstance(node.this, exp.Identifier) or node.args.get("db") or node.args.get("catalog"):
                continue
            qualifier = node.args.get("table")
            if qualifier is not None and qualifier.name.casefold() not in self.scopes:
                continue
            candidates = [self.scopes[qualifier.name.casefold()]] if qualifier is not None else self.tables
            for info in candidates:
                for col in info.columns:
                    if col.casefold() == node.name.casefold():
                        try:
                            is_identifier = column_role(info.policy, col) is ColumnRole.IDENTIFIER
                        except PolicyError:
                            continue  # reported as unknown_column where it is used
                        if is_identifier:
                            refuse("identifier_column", f"column {col!r} of {info.name!r} is an identifier: "
                                                        "it may not appear anywhere in a query")

    # -- GROUP BY, select list, ORDER BY

    def group_by(self, group: exp.Group | None,
                 aliases: Mapping[str, exp.Expression] | None = None) -> list[GroupKey]:
        """The group keys: dimension columns, and histogram buckets (:meth:`bucket`), named in
        GROUP BY by their expression or by the alias the select list gives them."""
        groups: list[GroupKey] = []
        if group is None:
            return groups
        if any(group.args.get(k) for k in ("all", "cube", "rollup", "grouping_sets", "totals")):
            refuse("group_by", "GROUP BY ALL / CUBE / ROLLUP / GROUPING SETS are not supported: list the dimensions")
        only_args(group, {"expressions"}, "group_by", "GROUP BY")
        for g in group.expressions:
            if (isinstance(g, exp.Column) and g.args.get("table") is None and aliases
                    and g.name.casefold() in aliases and not self._names_column(g.name)):
                g = aliases[g.name.casefold()]  # GROUP BY band, band being a bucket of the select list
            key: GroupKey | None = self.bucket(g)
            if key is None:
                if not isinstance(g, exp.Column):
                    refuse("group_by", "GROUP BY takes dimension columns by name, or a histogram bucket of a numeric "
                                       "column (WIDTH_BUCKET(x, lo, hi, n), FLOOR(x / w), FLOOR(x / w) * w); no "
                                       "positions or other expressions")
                key = self.use(g, "group")
            if key not in groups:
                groups.append(key)
        return groups

    def _names_column(self, name: str) -> bool:
        return any(c.casefold() == name.casefold() for t in self.tables for c in t.columns)

    def bucket(self, node: exp.Expression) -> BucketRef | None:
        """``WIDTH_BUCKET(x, lo, hi, n)``, ``FLOOR(x / w)`` or ``FLOOR(x / w) * w`` of a numeric
        dimension or measure, with literal bounds, count and width; None for anything else."""
        if isinstance(node, exp.WidthBucket):
            only_args(node, {"this", "min_value", "max_value", "num_buckets"}, "group_by", "WIDTH_BUCKET")
            if not isinstance(node.this, exp.Column):
                refuse("group_by", "WIDTH_BUCKET takes a column, then literal lo, hi and a bucket count")
            lo = _number(node.args.get("min_value"), "WIDTH_BUCKET's lower bound")
            hi = _number(node.args.get("max_value"), "WIDTH_BUCKET's upper bound")
            n = _number(node.args.get("num_buckets"), "WIDTH_BUCKET's bucket count")
            if not lo < hi:
                refuse("group_by", "WIDTH_BUCKET's lower bound must be below its upper bound")
            if n.denominator != 1 or not 1 <= n <= MAX_BUCKETS:
                refuse("group_by", f"WIDTH_BUCKET's bucket count must be a whole number from 1 to {MAX_BUCKETS}")
            ref = self._numeric(node.this)
            return BucketRef(ref.dataset, ref.column, "width_bucket", lo=lo, hi=hi, count=int(n))
        scale: exp.Expression | None = None
        if isinstance(node, exp.Mul) and isinstance(node.this.unnest(), exp.Floor):
            node, scale = node.this.unnest(), node.expression
        if not isinstance(node, exp.Floor):
            return None
        only_args(node, {"this"}, "group_by", "FLOOR")
        div = node.this.unnest()
        if not (isinstance(div, exp.Div) and isinstance(div.this, exp.Column)):
            refuse("group_by", "FLOOR takes (column / width) with a literal width: FLOOR(x / 1000)")
        only_args(div, {"this", "expression"}, "group_by", "FLOOR's division")
        width = _number(div.expression, "FLOOR's bucket width")
        if width <= 0:
            refuse("group_by", "FLOOR's bucket width must be positive")
        if scale is not None and _number(scale, "the bucket width after FLOOR(x / w) *") != width:
            refuse("group_by", "FLOOR(x / w) * w multiplies by the same width w it divides by")
        ref = self._numeric(div.this)
        return BucketRef(ref.dataset, ref.column, "floor", width=width, scaled=scale is not None)

    def _numeric(self, node: exp.Column) -> ColumnRef:
        ref = self.use(node, "bucket")
        if (ref, "numeric") not in self.literal_kinds:  # the engine refuses a non-numeric column by its type
            self.literal_kinds.append((ref, "numeric"))
        return ref

    def select_list(self, expressions: list[exp.Expression], groups: list[GroupKey]) -> list[Item]:
        items = [self.select_item(e, groups) for e in expressions]
        seen: set[str] = set()
        for _, name in items:
            check_output_name(name)
            if name.casefold() in seen:
                refuse("alias", f"output column {name!r} appears twice: give each item its own alias (AS ...)")
            seen.add(name.casefold())
        return items

    def order_by(self, order: exp.Order | None, items: list[Item]) -> exp.Order | None:
        if order is None:
            return None
        only_args(order, {"expressions"}, "order_by", "ORDER BY")
        by_name = {name.casefold(): i for i, (_, name) in enumerate(items)}
        out: list[exp.Expression] = []
        for o in order.expressions:
            if not isinstance(o, exp.Ordered):
                refuse("order_by", "ORDER BY takes output column names")
            only_args(o, {"this", "desc", "nulls_first"}, "order_by", "ORDER BY")
            target = o.this
            position: int | None = None
            if isinstance(target, exp.Column) and target.args.get("table") is None:
                position = by_name.get(target.name.casefold())
            elif isinstance(target, exp.Column):  # alias.column: the grouped column it names
                ref, _ = self.resolve(target)
                position = next((i for i, (item, _) in enumerate(items) if item == ref), None)
            if position is None:
                refuse("order_by", "ORDER BY may name only output columns or their aliases "
                                   "(no positions or expressions)")
            # Positions in the rewritten SQL: unambiguous even where an alias equals a column name.
            out.append(exp.Ordered(this=exp.Literal.number(position + 1), desc=bool(o.args.get("desc")),
                                   nulls_first=bool(o.args.get("nulls_first"))))
        return exp.Order(expressions=out)

    def select_item(self, node: exp.Expression, groups: list[GroupKey]) -> Item:
        alias: str | None = None
        if isinstance(node, exp.Alias):
            only_args(node, {"this", "alias"}, "alias", "an alias")
            alias = node.alias
            if not alias:
                refuse("alias", "an empty output name is not allowed")
            node = node.this
        bucket = self.bucket(node)
        if bucket is not None:
            if bucket not in groups:
                refuse("not_grouped", f"{bucket} is selected but not in GROUP BY")
            return bucket, alias or f"bucket_{bucket.column}"
        if isinstance(node, exp.Column):
            ref = self.use(node, "select")
            if ref not in groups:
                refuse("not_grouped", f"column {ref.column!r} is selected but not in GROUP BY")
            return ref, alias or ref.column
        if type(node) in (exp.Count, exp.Sum, exp.Avg):
            spec = self.aggregate(node, alias)
            return spec, spec.output
        if type(node) in _QUANTILES or (isinstance(node, exp.WithinGroup) and type(node.this) in _QUANTILES):
            spec = self.quantile(node, alias)
            return spec, spec.output
        if isinstance(node, exp.Filter):
            refuse("aggregate_filter", "FILTER (WHERE ...) on aggregates is not allowed: use WHERE")
        agg = node if isinstance(node, exp.AggFunc) else node.find(exp.AggFunc)
        if agg is not None:
            refuse("aggregate_not_allowed", f"aggregate {agg.sql_name()} is not allowed: use COUNT, SUM or AVG")
        if isinstance(node, exp.Anonymous):  # a function sqlglot does not know: name it, whatever its args
            refuse("function_not_allowed", f"function {short(node.name, 32)} is not allowed")
        for col in node.find_all(exp.Column):  # e.g. `amount * 2`: say what the column is first
            self.use(col, "select")
        if isinstance(node, exp.Func):
            fname = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
            refuse("function_not_allowed", f"function {short(fname, 32)} is not allowed")
        refuse("select_item", "each select item must be a grouped dimension column or COUNT/SUM/AVG of one column")

    def aggregate(self, node: exp.Expression, alias: str | None) -> AggregateSpec:
        func: Literal["count", "sum", "avg"] = "count" if isinstance(node, exp.Count) else (
            "sum" if isinstance(node, exp.Sum) else "avg")
        only_args(node, {"this", "big_int"} if func == "count" else {"this"}, "aggregate_argument",
                   f"{func.upper()}(...)")
        arg = node.this
        if func == "count" and isinstance(arg, exp.Star):
            return AggregateSpec("count", None, alias or "count")
        if not isinstance(arg, exp.Column):
            hint = "* or one column" if func == "count" else "one measure column (no arithmetic)"
            refuse("aggregate_argument", f"{func.upper()} takes {hint}")
        ref = self.use(arg, func)
        return AggregateSpec(func, ref, alias or f"{func}_{ref.column}")

    def quantile(self, node: exp.Expression, alias: str | None) -> AggregateSpec:
        """MEDIAN(x), QUANTILE[_CONT|_DISC](x, a), PERCENTILE_CONT|DISC(a) WITHIN GROUP (ORDER BY x):
        one measure column and one literal fraction. The release mode decides whether it answers."""
        desc = False
        if isinstance(node, exp.WithinGroup):
            only_args(node, {"this", "expression"}, "aggregate_argument", "WITHIN GROUP")
            order = node.expression
            if not isinstance(order, exp.Order) or len(order.expressions) != 1:
                refuse("aggregate_argument", "WITHIN GROUP takes (ORDER BY one measure column)")
            only_args(order, {"expressions"}, "aggregate_argument", "WITHIN GROUP")
            ordered = order.expressions[0]
            only_args(ordered, {"this", "desc", "nulls_first"}, "aggregate_argument", "WITHIN GROUP")
            desc = bool(ordered.args.get("desc"))
            func, arg, fraction = node.this, ordered.this, node.this.this
            only_args(func, {"this"}, "aggregate_argument", func.sql_name())
        elif isinstance(node, exp.Median):
            only_args(node, {"this"}, "aggregate_argument", "MEDIAN")
            func, arg, fraction = node, node.this, exp.Literal.number("0.5")
        else:
            key = "quantile" if isinstance(node, exp.Quantile) else "expression"
            only_args(node, {"this", key}, "aggregate_argument", node.sql_name())
            func, arg, fraction = node, node.this, node.args.get(key)
        name = func.sql_name()
        if not isinstance(arg, exp.Column):
            refuse("aggregate_argument", f"{name} takes one measure column (no arithmetic)")
        if not (type(fraction) is exp.Literal and not fraction.is_string and _NUMBER_RE.match(fraction.this)):
            refuse("aggregate_argument", f"{name} takes one literal fraction between 0 and 1 (no lists)")
        alpha = float(fraction.this)
        if not 0 <= alpha <= 1:
            refuse("aggregate_argument", f"{name}'s fraction must lie between 0 and 1")
        ref = self.use(arg, "sum")  # a measure, like SUM's argument
        alpha = 1 - alpha if desc else alpha
        default = f"median_{ref.column}" if alpha == 0.5 else f"quantile_{ref.column}"
        return AggregateSpec("quantile", ref, alias or default, alpha=alpha)

    # -- WHERE

    def predicate(self, node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Paren):
            return exp.Paren(this=self.predicate(node.this))
        if isinstance(node, (exp.And, exp.Or)):
            return type(node)(this=self.predicate(node.this), expression=self.predicate(node.expression))
        if isinstance(node, exp.Not):
            return exp.Not(this=self.predicate(node.this))
        if isinstance(node, _COMPARISONS):
            only_args(node, {"this", "expression"}, "where_clause", "a comparison")
            left, right = node.this, node.expression
            if isinstance(left, exp.Column) and not isinstance(right, exp.Column):
                return type(node)(this=self.where_column(left, right), expression=_literal(right))
            if isinstance(right, exp.Column) and not isinstance(left, exp.Column):
                return type(node)(this=_literal(left), expression=self.where_column(right, left))
            refuse("where_clause", "each comparison must have a dimension column on one side and a literal "
                                   "on the other")
        if isinstance(node, exp.In):
            only_args(node, {"this", "expressions"}, "where_clause", "IN")
            values = node.expressions
            if not isinstance(node.this, exp.Column) or not values or len(values) > MAX_IN_LIST:
                refuse("where_clause", f"IN needs a dimension column and 1 to {MAX_IN_LIST} literals")
            return exp.In(this=self.where_column(node.this, *values), expressions=[_literal(v) for v in values])
        if isinstance(node, exp.Between):
            only_args(node, {"this", "low", "high"}, "where_clause", "BETWEEN")
            if not isinstance(node.this, exp.Column):
                refuse("where_clause", "BETWEEN needs a dimension column on its left")
            low, high = node.args["low"], node.args["high"]
            return exp.Between(this=self.where_column(node.this, low, high), low=_literal(low),
                               high=_literal(high))
        if isinstance(node, exp.Is):
            only_args(node, {"this", "expression", "negate"}, "where_clause", "IS")
            if not isinstance(node.this, exp.Column) or not isinstance(node.expression, exp.Null):
                refuse("where_clause", "IS is allowed only as column IS [NOT] NULL")
            out: exp.Expression = exp.Is(this=self.where_column(node.this), expression=exp.Null())
            return exp.Not(this=out) if node.args.get("negate") else out
        if type(node) in (exp.Like, exp.ILike):
            only_args(node, {"this", "expression", "negate"}, "where_clause", "LIKE")
            pattern = node.expression
            if not isinstance(node.this, exp.Column) or not (type(pattern) is exp.Literal and pattern.is_string):
                refuse("where_clause", "LIKE needs a dimension column and a string literal pattern")
            like = type(node)(this=self.where_column(node.this, kind="pattern"),
                              expression=exp.Literal.string(pattern.this))
            return exp.Not(this=like) if node.args.get("negate") else like
        if isinstance(node, exp.Column):
            refuse("where_clause", "a bare column is not a condition: compare it to a literal")
        if isinstance(node, exp.Func):
            for col in node.find_all(exp.Column):
                self.use(col, "where")
            refuse("where_clause", "functions are not allowed in WHERE")
        refuse("where_clause", f"{type(node).__name__} is not allowed in WHERE")

    def where_column(self, node: exp.Column, *literals: exp.Expression, kind: str | None = None) -> exp.Column:
        ref = self.use(node, "where")
        kinds = [kind] if kind else [_literal_kind(lit) for lit in literals]
        for k in dict.fromkeys(kinds):
            if (ref, k) not in self.literal_kinds:
                self.literal_kinds.append((ref, k))
        return ref_sql(ref)


def _literal(node: exp.Expression) -> exp.Expression:
    """Re-create a literal from its value, so only values (never syntax) pass through."""
    if type(node) is exp.Literal:
        if node.is_string:
            return exp.Literal.string(node.this)
        if _NUMBER_RE.match(node.this):
            return exp.Literal.number(node.this)
    elif isinstance(node, exp.Neg) and type(node.this) is exp.Literal and not node.this.is_string:
        return exp.Neg(this=_literal(node.this))
    elif isinstance(node, exp.Null):
        return exp.Null()
    elif isinstance(node, exp.Boolean):
        return exp.Boolean(this=bool(node.this))
    elif isinstance(node, exp.Cast) and type(node.this) is exp.Literal and node.this.is_string:
        to = node.args.get("to")
        if isinstance(to, exp.DataType) and to.this in _TEMPORAL and not to.expressions:
            only_args(node, {"this", "to"}, "where_clause", "a typed literal")
            return exp.Cast(this=exp.Literal.string(node.this.this), to=exp.DataType.build(to.this))
    refuse("where_clause", "compare columns only to literals (numbers, strings, TRUE/FALSE, NULL, DATE '...', "
                           "TIMESTAMP '...')")


def _literal_kind(node: exp.Expression) -> str:
    """The kind of a literal _literal() accepted (it is called first or right after)."""
    if isinstance(node, exp.Null):
        return "null"
    if isinstance(node, exp.Boolean):
        return "boolean"
    if isinstance(node, exp.Cast):
        return "temporal"
    if type(node) is exp.Literal and node.is_string:
        return "string"
    return "number"


def check_output_name(name: str) -> None:
    if not name or len(name) > 64 or not name.isidentifier():
        refuse("alias", f"output name {short(name)!r} must be a plain name of at most 64 characters")
    if name.casefold().startswith(HIDDEN_PREFIX):
        refuse("alias", f"output names starting with {HIDDEN_PREFIX!r} are reserved")

