"""Parse, check and rewrite one analyst query: :func:`plan_query`.

The gate accepts a deliberately small SQL language: one ``SELECT`` of grouped dimensions and
``COUNT``/``SUM``/``AVG`` aggregates over named datasets, optionally inner-joined on join keys,
filtered by simple predicates on dimensions (the rules are listed in :data:`~.plan.RULES`).

How: parse with sqlglot (DuckDB dialect), check the AST against an allowlist, and **build a new
AST** from the checked pieces (:mod:`.clauses`): fully qualified, quoted column references
resolved to declared names, re-created literals, our own aliases. The engine runs only that new
AST's SQL, so nothing of the user's text reaches DuckDB but literal values (re-quoted by
sqlglot). Anything the checker does not recognise is refused: fail closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from fractions import Fraction

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import TokenType

from policies import ColumnRole, Decision, SdcRules, column_role

from ..errors import InternalError
from ..tables.record_keys import RECORD_KEY
from .cellkey import CellKey
from .clauses import Checker, Item, group_sql, ident, only_args, ref_sql, refuse, short
from .modes import RELEASE_MODES
from .plan import AggregateSpec, BucketRef, ColumnRef, GroupKey, HiddenColumn, QueryPlan, TableInfo

DIALECT = "duckdb"
MAX_SQL_CHARS = 20_000
MAX_NESTING = 64
ROWS_COLUMN = "__twh_rows"
UNITS_COLUMN = "__twh_units"

#: Select clauses refused under a rule of their own; any other unknown clause is unsupported_clause.
_CLAUSE_RULES = {"distinct": "no_distinct", "limit": "limit", "offset": "limit", "sample": "sample",
                 "qualify": "qualify", "having": "having", "windows": "window_function", "with_": "no_cte"}
_SELECT_ARGS = {"expressions", "from_", "joins", "where", "group", "order"}


# --------------------------------------------------------------------------- parsing


def _parse(sql: str) -> exp.Select:
    if not isinstance(sql, str) or not sql.strip():
        refuse("query_text", "the query is empty")
    if len(sql) > MAX_SQL_CHARS:
        refuse("query_text", f"the query is longer than {MAX_SQL_CHARS} characters")
    if "\x00" in sql:
        refuse("query_text", "the query contains a NUL character")
    try:
        tokens = sqlglot.Dialect.get_or_raise(DIALECT).tokenize(sql)
        # Comments are refused rather than stripped: a comment can hide a ';' or text from a
        # reviewer reading the audit log, and gated queries never need one.
        if any(t.comments for t in tokens):
            refuse("no_comments", "remove the SQL comments (-- or /* */) from the query")
        depth = deepest = 0
        for t in tokens:  # the parser and the checker recurse: bound the nesting first
            depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(t.token_type, 0)
            deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            refuse("query_text", f"the query nests parentheses deeper than {MAX_NESTING} levels")
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        refuse("parse_error", f"the query could not be parsed{where}: {first.get('description', 'syntax error')}")
    except SqlglotError:
        # Tokenizer errors quote the query text back; say only what kind of problem it is.
        refuse("parse_error", "the query could not be tokenized (unterminated string, comment or quote?)")
    if len(statements) != 1:
        refuse("single_statement", f"exactly one statement is allowed, found {len(statements)}")
    root = statements[0]
    if isinstance(root, exp.SetOperation):
        refuse("no_set_operation", f"{type(root).__name__.upper()} is not supported: send one SELECT")
    if not isinstance(root, exp.Select):
        kind = str(root.this).split()[0].upper() if isinstance(root, exp.Command) else type(root).__name__.upper()
        refuse("select_only", f"only SELECT statements are allowed, not {short(kind, 32)}")
    return root


def _scan(root: exp.Select) -> None:
    """Refusals that apply wherever the construct appears, with the clearest reason."""
    if root.args.get("with_"):
        refuse("no_cte", "WITH (common table expressions) is not supported: write one SELECT")
    for node in root.walk():
        if isinstance(node, exp.SetOperation):
            refuse("no_set_operation", "UNION / INTERSECT / EXCEPT are not supported")
        nested_select = isinstance(node, exp.Select) and node is not root
        if isinstance(node, (exp.Subquery, exp.Exists, exp.Lateral)) or nested_select:
            refuse("no_subquery", "subqueries are not supported")
        if isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count):
            refuse("no_star", "SELECT * and t.* are not allowed: name the dimensions and aggregates you want")
        if isinstance(node, exp.Window):
            refuse("window_function", "window functions (OVER ...) are not allowed")
        if isinstance(node, exp.Distinct):
            refuse("no_distinct", "DISTINCT is not allowed (COUNT(DISTINCT ...) included)")


def parse_select(sql: str) -> exp.Select:
    """One SELECT, checked for what no path that touches rows accepts (comments, CTEs, subqueries,
    set operations, ``*``, windows, DISTINCT): shared by the gate and the training feature query."""
    root = _parse(sql)
    _scan(root)
    return root


# --------------------------------------------------------------------------- the plan


def plan_query(sql: str, lookup: Callable[[str], TableInfo], *, populations: bool = True) -> QueryPlan:
    """Check ``sql`` against the gate's rules and the datasets' policies; return the plan to run.

    ``populations``: also collect each cell's privacy units as ``hash(unit)`` (hidden ``units`` columns) for
    the differencing guard; only datasets with a privacy unit have any.

    Raises :class:`~sandbox.errors.QueryRefused` (``details["rule"]`` in :data:`RULES`);
    ``lookup`` raises :class:`~sandbox.errors.NotFound` for datasets the caller may not see.
    """
    try:
        return _plan(sql, lookup, populations)
    except RecursionError:  # long AND/OR chains nest without parentheses
        refuse("query_text", "the query is nested too deeply")


def _plan(sql: str, lookup: Callable[[str], TableInfo], populations: bool) -> QueryPlan:
    root = _parse(sql)
    _scan(root)
    for key, value in root.args.items():
        if key not in _SELECT_ARGS and value not in (None, False, []):
            refuse(_CLAUSE_RULES.get(key, "unsupported_clause"), f"{key.rstrip('_').upper()} is not supported")

    c = Checker(lookup)
    from_ = root.args.get("from_")
    if from_ is None:
        refuse("dataset_name", "the query reads no dataset: add FROM <dataset>")
    only_args(from_, {"this"}, "unsupported_clause", "FROM")
    c.table(from_.this)
    joins = [c.join(j) for j in root.args.get("joins") or []]
    c.refuse_identifiers(root)
    aliases = {e.alias.casefold(): e.this for e in root.expressions if isinstance(e, exp.Alias) and e.alias}
    groups = c.group_by(root.args.get("group"), aliases)
    items = c.select_list(root.expressions, groups)
    where = root.args.get("where")
    where_sql = c.predicate(where.this) if where is not None else None
    order_sql = c.order_by(root.args.get("order"), items)
    units, scopes = _units(c)
    mode = _release_mode(c.tables)
    for info in c.tables:  # both datasets' policies must allow a join (allowed_joins: None = any)
        allowed = info.policy.allowed_joins
        others = [t.name for t in c.tables if t.name != info.name]
        if allowed is not None and any(o not in allowed for o in others):
            refuse("join_condition", f"the policy of {info.name!r} does not allow joining it with "
                                     f"{', '.join(o for o in others if o not in allowed)}")
    if mode != "dp" and any(isinstance(i, AggregateSpec) and i.func == "quantile" for i, _ in items):
        refuse("aggregate_not_allowed", "MEDIAN / QUANTILE / PERCENTILE are answered only in release mode dp: "
                                        "under disclosure control an exact quantile is one record's value")
    if mode == "dp":  # noised aggregates: a rewrite of its own (contribution bounds, fixed point)
        from .dp_plan import plan_dp

        return plan_dp(sql, c, items, groups, joins, where_sql, order_sql)
    threshold = max(info.policy.min_group_size for info in c.tables)
    sdc = SdcRules.strictest([info.policy.sdc for info in c.tables])
    perturbed = mode == "sdc" and sdc.perturbation == "cell_key"
    _check_buckets(c, groups)
    # Dominance and p% need the largest per-unit contributions (at least two, for p%); the
    # cell-key magnitude perturbation needs the top ``magnitude_top`` with their keys.
    top_n = max(sdc.dominance_n, 2, sdc.magnitude_top if perturbed else 0) if mode == "sdc" else 0
    keys = [ColumnRef(t.name, RECORD_KEY) for t in c.tables] if mode == "sdc" else []
    for k in keys:  # every row's secret record key: the cell key, and the cell's identity
        c.mark_read(k)

    query, hidden = _rewrite(c, items, groups, joins, where_sql, units, top_n, populations, keys, perturbed)
    if order_sql is not None:
        query.set("order", order_sql)

    unit_desc = " and ".join(f"distinct {u}" for u in units) or "rows"
    decisions = [
        Decision(True, "select_only", "one SELECT statement without CTEs, subqueries, set operations or comments"),
        Decision(True, "table_function", f"reads only named datasets: {', '.join(t.name for t in c.tables)}"),
        Decision(True, "identifier_column", "no identifier column is used; dimensions are only grouped or filtered, "
                                            "measures only aggregated, join keys only joined on"),
    ]
    if joins:
        decisions.append(Decision(True, "join_condition", f"inner joins on join keys: {', '.join(c.joined)}"))
    decisions.append(Decision(True, "min_group_size", f"groups with fewer than {threshold} {unit_desc} are suppressed "
                                                      "(the strictest threshold of the datasets read)"))
    if mode == "sdc":
        contributor = "units" if units else "rows"
        decisions.append(Decision(True, "dominance", f"cells whose {sdc.dominance_n} largest {contributor} contribute "
                                                     f"at least {sdc.dominance_k:g} of a SUM/AVG are suppressed"))
        if sdc.p_ratio > 0:
            decisions.append(Decision(True, "p_percent", f"cells whose SUM/AVG less its two largest {contributor} is "
                                                         f"below {sdc.p_ratio:g} of the largest are suppressed"))
        decisions.append(Decision(True, "secondary", "further cells are suppressed so that no suppressed cell "
                                                     "can be recovered from its row or column totals"))
        if perturbed:
            decisions.append(Decision(True, "cell_key", "released counts and sums are perturbed consistently "
                                                        "(the cell-key method): the same rows always get the same "
                                                        "answer, and near-identical populations get unrelated noise"))
        else:
            decisions.append(Decision(True, "exact", "the policy releases exact values (perturbation: none): "
                                                     "reconstruction and differencing attacks apply"))
    categories: list[tuple[str, ...] | None] = []
    for g in groups:  # a bucket's keys are numbers of the query's making: no declared categories
        declared = dict(next(t for t in c.tables if t.name == g.dataset).categories)
        categories.append(declared.get(g.column) if isinstance(g, ColumnRef) else None)
    return QueryPlan(
        original_sql=sql,
        sql_sha256=hashlib.sha256(sql.encode("utf-8")).hexdigest(),
        tables=tuple(t.name for t in c.tables),
        engine_sql=query.sql(dialect=DIALECT),
        output_columns=tuple(name for _, name in items),
        group_columns=tuple(groups),
        aggregates=tuple(item for item, _ in items if isinstance(item, AggregateSpec)),
        columns_read=tuple((name, tuple(cols)) for name, cols in c.read.items()),
        literal_kinds=tuple(c.literal_kinds),
        hidden_columns=tuple(h.name for h in hidden),
        hidden=tuple(hidden),
        sdc=sdc,
        group_categories=tuple(categories),
        unit_scopes=tuple(scopes),
        decisions=tuple(decisions),
        min_group_size=threshold,
        unit_columns=tuple(units),
        release_mode=mode,
        require_approval=any(t.policy.output.require_approval for t in c.tables),
        perturbation=CellKey.from_rules(sdc) if perturbed else None,
        significant_digits=min(t.policy.output.significant_digits for t in c.tables),
        count_base=max(t.policy.output.count_base for t in c.tables),
    )


def _check_buckets(c: Checker, groups: list[GroupKey]) -> None:
    """sdc mode: a measure is a group key only through WIDTH_BUCKET with the policy's public edges.

    Buckets of the query's own choosing would let it bisect one unit's value (is it below H?),
    one released or suppressed cell at a time; edges the steward published are a fixed grid."""
    for g in groups:
        if not isinstance(g, BucketRef):
            continue
        info = next(t for t in c.tables if t.name == g.dataset)
        if column_role(info.policy, g.column) is not ColumnRole.MEASURE:
            continue
        edges = info.policy.sdc.bucket_edges.get(g.column)
        if edges is None:
            refuse("bucket_edges", f"{g.column!r} of {g.dataset!r} is a measure: it may be a group key only "
                                   "through WIDTH_BUCKET on the public edges its policy declares (sdc.bucket_edges), "
                                   "and it declares none")
        public = {Fraction(e) for e in edges}
        if g.kind != "width_bucket" or any(g.lo + k * (g.hi - g.lo) / g.count not in public
                                           for k in range(g.count + 1)):
            refuse("bucket_edges", f"the buckets of {g.column!r} must be WIDTH_BUCKET({g.column}, lo, hi, n) whose "
                                   f"edges are all among the policy's public edges {_edges_text(edges)}")


def _edges_text(edges: list[float]) -> str:
    shown = ", ".join(f"{e:g}" for e in edges[:12])
    return f"[{shown}{', …' if len(edges) > 12 else ''}]"


def _units(c: Checker) -> tuple[list[ColumnRef], list[tuple[str, ...]]]:
    """The privacy-unit columns to count: one per dataset that declares one, except a unit
    joined by equality to a unit already counted (same distinct count, counted once).

    Also, per unit column, the datasets whose unit it stands for (its scopes)."""
    units: list[ColumnRef] = []
    scopes: list[list[str]] = []
    joined_pairs = {frozenset(pair) for pair in c.equalities}
    for info in c.tables:
        unit = info.policy.privacy_unit
        if unit is None:
            continue
        physical = [col for col in info.columns if col.casefold() == unit.casefold()]
        if len(physical) != 1:
            raise InternalError(f"privacy unit of {info.name!r} is not a column of its table")
        unit_ref = ColumnRef(info.name, physical[0])
        c.mark_read(unit_ref)
        same = [j for j, u in enumerate(units) if frozenset((unit_ref, u)) in joined_pairs]
        if same:
            scopes[same[0]].append(info.name)
        else:
            units.append(unit_ref)
            scopes.append([info.name])
    return units, [tuple(s) for s in scopes]


def _release_mode(tables: list[TableInfo]) -> str:
    modes = {info.policy.release_mode for info in tables}
    if len(modes) != 1:
        refuse("release_mode", f"the datasets read use different release modes ({', '.join(sorted(modes))})")
    mode = modes.pop()
    if mode not in RELEASE_MODES:
        refuse("release_mode", f"release mode {mode!r} is not available yet")
    return mode


# --------------------------------------------------------------------------- the rewrite
#
# The release mode decides on per-group counts computed next to the user's aggregates (the
# "hidden" columns, all named __twh_*): rows, distinct privacy units, and for every aggregated
# column the units (or rows) where it is not NULL -- a SUM over 50 enterprises of which one has
# a known amount is that one enterprise's amount. A group's size is the minimum of them all.
#
# Without a privacy unit this is one GROUP BY. With one, the query aggregates twice: first per
# (group, unit), then per group. Distinct units are then plain counts of the first level's rows,
# whatever the number of aggregates (COUNT(DISTINCT ...) per aggregate costs a hash table each),
# and per-unit contributions exist as values, which dominance rules and DP contribution bounds
# will need.
#
# For the SDC mode, every SUM/AVG column also gets the ``top_n`` largest |contributions| (of
# units, or of rows without a unit) and their total: dominance and p% read them. With a privacy
# unit, each unit column gets the list of the cell's ``hash(unit)`` values (``units``) for the
# differencing guard. All hidden; the release mode drops them.


def _rewrite(c: Checker, items: list[Item], groups: list[GroupKey], joins: list[exp.Join],
             where_sql: exp.Expression | None, units: list[ColumnRef], top_n: int = 0,
             populations: bool = True, keys: list[ColumnRef] | None = None,
             perturbed: bool = False) -> tuple[exp.Select, list[HiddenColumn]]:
    aggregates = [item for item, _ in items if isinstance(item, AggregateSpec)]
    measured = list(dict.fromkeys(a.column for a in aggregates if a.column is not None))
    summed = [measured.index(col) for col in dict.fromkeys(
        a.column for a in aggregates if a.func in ("sum", "avg") and a.column is not None)] if top_n else []
    averaged = [measured.index(col) for col in dict.fromkeys(
        a.column for a in aggregates if a.func == "avg" and a.column is not None)] if perturbed else []
    # A joined row's record key: the sum of its tables' rows' keys (a cell key sums them all).
    row_key: exp.Expression | None = None
    for k in keys or []:
        if len(keys or []) == 1:
            row_key = ref_sql(k)
            break
        # 32-bit keys: widen before adding, or two keys could overflow (an error that depends on data)
        wide = exp.Cast(this=ref_sql(k), to=exp.DataType.build("bigint"))
        row_key = wide if row_key is None else exp.Add(this=row_key, expression=wide)

    def contributions(i: int, value: exp.Expression) -> list[tuple[HiddenColumn, exp.Expression]]:
        magnitude = exp.Abs(this=value)
        out = [(HiddenColumn(f"__twh_top_a{i}", "top", measure=measured[i]),
                exp.Max(this=magnitude, count=exp.Literal.number(top_n))),
               (HiddenColumn(f"__twh_total_a{i}", "total", measure=measured[i]), exp.Sum(this=magnitude.copy()))]
        return out
    base = exp.Select(from_=exp.From(this=exp.Table(this=ident(c.tables[0].name))))
    if joins:
        base.set("joins", joins)
    if where_sql is not None:
        base.set("where", exp.Where(this=where_sql))

    if not units:
        hidden = [(HiddenColumn(ROWS_COLUMN, "size"), exp.Count(this=exp.Star()))]
        hidden += [(HiddenColumn(f"{ROWS_COLUMN}_a{i}", "size"), exp.Count(this=ref_sql(col)))
                   for i, col in enumerate(measured)]
        for i in summed:
            hidden += contributions(i, ref_sql(measured[i]))
        hidden += [(HiddenColumn(f"__twh_nonnull_a{i}", "nonnull", measure=measured[i]),
                    exp.Count(this=ref_sql(measured[i]))) for i in averaged]
        if row_key is not None:
            hidden.append((HiddenColumn("__twh_ckey", "ckey"), exp.Sum(this=row_key.copy())))
        hidden += [(HiddenColumn(f"__twh_key{k}", "key"), group_sql(g)) for k, g in enumerate(groups)]
        exprs = [_aggregate_sql(item) if isinstance(item, AggregateSpec) else group_sql(item) for item, _ in items]
        _select(base, items, exprs, hidden)
        if groups:
            base.set("group", exp.Group(expressions=[group_sql(g) for g in groups]))
        return base, [h for h, _ in hidden]

    # Level 1: one row per (group, unit, ...), with that unit's row count, counts and sums.
    inner: list[exp.Expression] = [exp.alias_(group_sql(g), f"__twh_g{k}", quoted=True) for k, g in enumerate(groups)]
    inner += [exp.alias_(ref_sql(u), f"__twh_u{j}", quoted=True) for j, u in enumerate(units)]
    inner.append(exp.alias_(exp.Count(this=exp.Star()), "__twh_n", quoted=True))
    for i, col in enumerate(measured):
        inner.append(exp.alias_(exp.Count(this=ref_sql(col)), f"__twh_c{i}", quoted=True))
        inner.append(exp.alias_(exp.Sum(this=ref_sql(col)), f"__twh_s{i}", quoted=True))
    if row_key is not None:  # the sum of the unit's rows' keys in this cell (summed again per cell)
        inner.append(exp.alias_(exp.Sum(this=row_key.copy()), "__twh_k", quoted=True))
    base.set("expressions", inner)
    base.set("group", exp.Group(expressions=[*(group_sql(g) for g in groups), *(ref_sql(u) for u in units)]))

    # Level 2: per group. A unit is one level-1 row (NULL units are not counted); with several
    # units (a join of datasets whose units differ) each needs its distinct count.
    def col(name: str) -> exp.Column:
        return exp.Column(this=ident(name))

    def units_of(j: int) -> exp.Expression:
        return exp.Count(this=exp.Distinct(expressions=[col(f"__twh_u{j}")]) if len(units) > 1 else col(f"__twh_u{j}"))

    exprs = []
    for item, _ in items:
        if not isinstance(item, AggregateSpec):
            exprs.append(col(f"__twh_g{groups.index(item)}"))
            continue
        i = measured.index(item.column) if item.column is not None else -1
        if item.func == "count":
            exprs.append(exp.Sum(this=col("__twh_n" if i < 0 else f"__twh_c{i}")))
        elif item.func == "sum":
            exprs.append(exp.Sum(this=col(f"__twh_s{i}")))
        else:
            total, count = exp.Sum(this=col(f"__twh_s{i}")), exp.Sum(this=col(f"__twh_c{i}"))
            exprs.append(exp.Div(this=total, expression=exp.Nullif(this=count, expression=exp.Literal.number(0))))
    hidden = [(HiddenColumn(ROWS_COLUMN, "size"), exp.Sum(this=col("__twh_n")))]
    hidden += [(HiddenColumn(UNITS_COLUMN + (f"_{j}" if j else ""), "size"), units_of(j)) for j in range(len(units))]
    for i in range(len(measured)):
        known = exp.Where(this=exp.GT(this=col(f"__twh_c{i}"), expression=exp.Literal.number(0)))
        hidden += [(HiddenColumn(f"{UNITS_COLUMN}_{j}_a{i}", "size"), exp.Filter(this=units_of(j), expression=known))
                   for j in range(len(units))]
    for i in summed:
        # A level-1 row is one unit's contribution (with several unit columns: one combination's).
        hidden += contributions(i, col(f"__twh_s{i}"))
    hidden += [(HiddenColumn(f"__twh_nonnull_a{i}", "nonnull", measure=measured[i]),
                exp.Sum(this=col(f"__twh_c{i}"))) for i in averaged]
    if row_key is not None:
        hidden.append((HiddenColumn("__twh_ckey", "ckey"), exp.Sum(this=col("__twh_k"))))
    hidden += [(HiddenColumn(f"__twh_key{k}", "key"), col(f"__twh_g{k}")) for k in range(len(groups))]
    if populations:
        for j in range(len(units)):
            # DuckDB hash(unit): the guard maps it to dense ids through the snapshot's unit dictionary
            # (sandbox/gate/unit_dictionary.py), so no unit value leaves the engine.
            value = exp.Anonymous(this="hash", expressions=[col(f"__twh_u{j}")])
            listed = exp.ArrayAgg(this=exp.Distinct(expressions=[value]) if len(units) > 1 else value)
            not_null = exp.Where(this=exp.Not(this=exp.Is(this=col(f"__twh_u{j}"), expression=exp.Null())))
            hidden.append((HiddenColumn(f"__twh_ids_{j}", "units", unit=j), exp.Filter(this=listed, expression=not_null)))
    outer = exp.Select(from_=exp.From(this=base.subquery("__twh_per_unit")))
    _select(outer, items, exprs, hidden)
    if groups:
        outer.set("group", exp.Group(expressions=[col(f"__twh_g{k}") for k in range(len(groups))]))
    return outer, [h for h, _ in hidden]


def _select(query: exp.Select, items: list[Item], exprs: list[exp.Expression],
            hidden: list[tuple[HiddenColumn, exp.Expression]]) -> None:
    named = [exp.alias_(e, name, quoted=True) for e, (_, name) in zip(exprs, items)]
    query.set("expressions", named + [exp.alias_(e, h.name, quoted=True) for h, e in hidden])


def _aggregate_sql(spec: AggregateSpec) -> exp.Expression:
    if spec.column is None:
        return exp.Count(this=exp.Star())
    return {"count": exp.Count, "sum": exp.Sum, "avg": exp.Avg}[spec.func](this=ref_sql(spec.column))
