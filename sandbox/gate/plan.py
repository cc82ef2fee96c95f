"""The values the gate passes around: what a query reads, and the checked plan to run.

Plain frozen dataclasses (no pydantic inside the application). A :class:`QueryPlan` is built
only by :func:`sandbox.gate.check.plan_query`; the engine runs nothing else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from policies import Decision, Policy, SdcRules

#: Every rule the gate may refuse a query under (``QueryRefused.details["rule"]``), with what
#: it means. Stable strings: clients and audit readers key on them. A test pins this set.
RULES: dict[str, str] = {
    "query_text": "the query is not a non-empty string of reasonable length",
    "parse_error": "the query could not be parsed",
    "no_comments": "SQL comments are not accepted (they can hide text from reviewers)",
    "single_statement": "exactly one statement is allowed",
    "select_only": "only SELECT statements are allowed",
    "no_cte": "WITH (common table expressions) is not supported",
    "no_subquery": "subqueries are not supported",
    "no_set_operation": "UNION / INTERSECT / EXCEPT are not supported",
    "no_star": "SELECT * and t.* are not allowed: name the columns",
    "no_distinct": "DISTINCT is not allowed",
    "unsupported_clause": "a clause the gate does not support (e.g. PIVOT, INTO, WINDOW)",
    "limit": "LIMIT / OFFSET / FETCH are not allowed",
    "sample": "SAMPLE / TABLESAMPLE are not allowed",
    "qualify": "QUALIFY is not allowed",
    "having": "HAVING is not supported",
    "window_function": "window functions are not allowed",
    "table_function": "FROM may only name datasets: no table functions or file readers",
    "qualified_name": "schema- or catalog-qualified names are not allowed",
    "dataset_name": "a FROM item is not a plain dataset name",
    "dataset_repeated": "a dataset may appear only once in a query",
    "join_type": "only INNER JOIN ... ON is allowed (no CROSS, comma, OUTER, NATURAL, ASOF, ...)",
    "join_condition": "ON must be an AND of equalities between join_key columns of two datasets",
    "unknown_table": "a column names a table or alias that is not in FROM",
    "unknown_column": "a column that the dataset does not declare (fail closed)",
    "ambiguous_column": "an unqualified column that more than one joined dataset has",
    "identifier_column": "identifier columns may not appear anywhere in a query",
    "measure_outside_aggregate": "measure columns may appear only inside SUM, AVG or COUNT",
    "join_key_outside_on": "join_key columns may appear only in JOIN ... ON",
    "aggregate_not_allowed": "only COUNT(*), COUNT(col), SUM(measure), AVG(measure) are allowed",
    "aggregate_argument": "an aggregate's argument is not a single column of an allowed role",
    "aggregate_filter": "FILTER clauses on aggregates are not allowed",
    "function_not_allowed": "functions are not allowed outside the allowed aggregates",
    "select_item": "a select item is neither a grouped dimension nor an allowed aggregate",
    "not_grouped": "a selected column is not in GROUP BY",
    "alias": "an output name is invalid, reserved or duplicated",
    "where_clause": "WHERE allows AND/OR/NOT of comparisons, IN, BETWEEN, IS NULL, LIKE on dimensions vs literals",
    "group_by": "GROUP BY allows dimension columns by name, and histogram buckets of numeric columns "
                "(WIDTH_BUCKET(x, lo, hi, n), FLOOR(x / w), FLOOR(x / w) * w) that are also selected",
    "order_by": "ORDER BY allows output column names only",
    "release_mode": "the datasets read have no common, available release mode",
    "literal_type": "a literal's type does not match its column's type (no data-dependent casts)",
    "engine_rejected": "the query engine could not run the query (details withheld: they may quote data)",
    "timeout": "the query ran past its time limit",
    "resource_limit": "the query ran out of memory",
    "dp_bounds": "dp mode: a SUM/AVG of a measure whose policy declares no clamping bounds",
    "dp_unit": "dp mode: the datasets read must share one privacy unit (joined on it), or be one dataset",
    "dp_budget": "dp mode: the dataset's privacy budget (for this tenant and period) has too little left",
    "dp_keys": "dp mode: the group keys are neither public nor selectable (too many cells, or no delta)",
    "dp_quantile": "dp mode: quantiles take one bounded measure per query and a literal fraction in [0, 1]",
    "differencing": "a released cell's population would differ from an earlier release by fewer than the threshold",
    "bucket_edges": "sdc mode: a measure may be a group key only through WIDTH_BUCKET on the policy's public edges",
    "release_budget": "sdc mode: the dataset's release budget (distinct populations per tenant and period) is spent",
    "record_keys": "sdc mode: a table version without record keys cannot be released under the cell-key method",
}


@dataclass(frozen=True)
class TableInfo:
    """What the gate needs to know about a dataset: its name, policy and physical columns."""

    name: str
    policy: Policy
    columns: tuple[str, ...]
    #: declared categories of dimension columns (column -> values), when the manifest lists them;
    #: with them the SDC mode knows a table's empty (zero) cells
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class ColumnRef:
    """A resolved column: the dataset's name and the column's declared name."""

    dataset: str
    column: str

    def __str__(self) -> str:
        return f"{self.dataset}.{self.column}"


#: the most buckets one histogram group key may have (WIDTH_BUCKET's n; in dp mode also FLOOR's)
MAX_BUCKETS = 10_000


@dataclass(frozen=True)
class BucketRef:
    """A histogram bucket of a numeric column, used as a group key.

    ``WIDTH_BUCKET(x, lo, hi, n)`` (kind ``width_bucket``, SQL's definition: 0 below ``lo``,
    ``n + 1`` at or above ``hi``, else ``1 + floor((x - lo) * n / (hi - lo))``), or
    ``FLOOR(x / w)`` (kind ``floor``; ``scaled``: ``FLOOR(x / w) * w``, the bucket's lower edge).
    Bucket bounds are the query's literals, never the data's. In dp mode the value is clamped
    to the measure's declared bounds first, so the key set is public: :meth:`indices`."""

    dataset: str
    column: str
    kind: Literal["width_bucket", "floor"]
    lo: Fraction = Fraction(0)
    hi: Fraction = Fraction(0)
    count: int = 0
    width: Fraction = Fraction(0)
    scaled: bool = False

    @property
    def ref(self) -> ColumnRef:
        return ColumnRef(self.dataset, self.column)

    def index_of(self, x: Fraction) -> int:
        """The bucket index of the value ``x`` (exact arithmetic; the engine computes it in floats)."""
        if self.kind == "floor":
            return math.floor(x / self.width)
        if x < self.lo:
            return 0
        if x >= self.hi:
            return self.count + 1
        return min(math.floor((x - self.lo) * self.count / (self.hi - self.lo)) + 1, self.count)

    def indices(self, lo: Fraction, hi: Fraction) -> range:
        """Every index a value clamped to ``[lo, hi]`` can get: the public key set in dp mode."""
        return range(self.index_of(lo), self.index_of(hi) + 1)

    def label(self, index: int) -> int | float:
        """What the analyst sees for ``index``: the index, or (``scaled``) the bucket's lower edge."""
        if not self.scaled:
            return index
        edge = index * self.width
        return int(edge) if edge.denominator == 1 else float(edge)

    def __str__(self) -> str:
        x = f"{self.dataset}.{self.column}"
        if self.kind == "width_bucket":
            return f"WIDTH_BUCKET({x}, {self.lo}, {self.hi}, {self.count})"
        return f"FLOOR({x} / {self.width})" + (f" * {self.width}" if self.scaled else "")


#: a group key: a dimension column, or a histogram bucket of a numeric column
GroupKey = ColumnRef | BucketRef

AggregateFunc = Literal["count", "sum", "avg", "quantile"]


@dataclass(frozen=True)
class AggregateSpec:
    """One aggregate of the select list. ``column`` is ``None`` for ``COUNT(*)``.

    ``quantile`` (MEDIAN, QUANTILE_CONT/DISC, PERCENTILE_CONT/DISC): ``alpha`` is the fraction;
    only the dp release mode answers it (a DP quantile from a noisy histogram)."""

    func: AggregateFunc
    column: ColumnRef | None
    output: str
    alpha: float | None = None


#: Kinds of hidden columns (never released):
#: ``size`` -- a count the threshold applies to (rows, units, units with a known value);
#: ``top`` -- list of the largest per-unit |contributions| to ``measure`` (dominance, p%);
#: ``total`` -- sum of the per-unit |contributions| to ``measure``;
#: ``units`` -- list of the cell's DuckDB ``hash(unit)`` values (the differencing guard's populations);
#: ``key`` -- a group column's value, in ``group_columns`` order (selected or not: a cell's coordinates);
#: ``ckey`` -- the sum of the cell's rows' record keys (the cell key; also the cell's identity for
#: the release budget);
#: ``nonnull`` -- how many rows have a value of ``measure`` (an AVG's denominator).
HiddenKind = Literal["size", "top", "total", "units", "key", "ckey", "nonnull"]


@dataclass(frozen=True)
class HiddenColumn:
    """One hidden per-group column the engine appends after the output columns."""

    name: str
    kind: HiddenKind
    #: the aggregated column (``top``/``total``)
    measure: ColumnRef | None = None
    #: index into ``QueryPlan.unit_columns`` (``units``)
    unit: int | None = None


@dataclass(frozen=True)
class QueryPlan:
    """A checked query, rewritten for the engine. Everything the audit needs, no data."""

    original_sql: str
    sql_sha256: str
    #: datasets read, in FROM/JOIN order
    tables: tuple[str, ...]
    #: the rewritten SQL (DuckDB dialect), generated from the checked AST; views are named
    #: after the datasets and expose only ``columns_read``
    engine_sql: str
    #: user-visible output columns, in order
    output_columns: tuple[str, ...]
    #: group keys: dimension columns and histogram buckets (:class:`BucketRef`)
    group_columns: tuple[ColumnRef | BucketRef, ...]
    aggregates: tuple[AggregateSpec, ...]
    #: per dataset, the declared columns the engine SQL touches (the views project only these)
    columns_read: tuple[tuple[str, tuple[str, ...]], ...]
    #: every (column, literal kind) compared in WHERE; kinds: number, string, boolean, temporal,
    #: pattern, null. The engine checks them against the column types before running, so that
    #: DuckDB never casts a column's values (whose errors and successes depend on the data).
    literal_kinds: tuple[tuple[ColumnRef, str], ...]
    #: hidden per-group counts appended after the output columns; a group's size is their minimum
    hidden_columns: tuple[str, ...]
    #: the checks this query passed, for the audit record
    decisions: tuple[Decision, ...]
    #: the strictest threshold of the datasets read
    min_group_size: int
    #: privacy-unit columns whose distinct counts size a group; empty: rows are the unit
    unit_columns: tuple[ColumnRef, ...]
    release_mode: str
    #: True when any dataset read requires a steward's approval before export
    require_approval: bool
    #: release_mode "dp": the :class:`~sandbox.gate.dp_plan.DpPlan` (statistics, bounds, keys, ε)
    dp: Any = None
    #: what each hidden column is (same order as ``hidden_columns``); empty: all are ``size``
    hidden: tuple[HiddenColumn, ...] = ()
    #: the strictest SDC rules of the datasets read (dominance, p%, zeros)
    sdc: SdcRules = field(default_factory=SdcRules)
    #: per group column, its declared categories (None when not declared)
    group_categories: tuple[tuple[str, ...] | None, ...] = ()
    #: per unit column, the datasets whose privacy unit it stands for (itself and any unit
    #: joined to it by equality): the differencing ledgers its populations go to
    unit_scopes: tuple[tuple[str, ...], ...] = ()
    #: sdc mode with ``perturbation: cell_key``: the :class:`~.cellkey.CellKey` settings; None: exact
    perturbation: Any = None
    #: released numbers are rounded to this many significant digits (the strictest policy's)
    significant_digits: int = 15
    #: exact sdc counts are rounded to a multiple of this (the strictest policy's ``count_base``)
    count_base: int = 1

    def hidden_indices(self, kind: HiddenKind) -> list[int]:
        """Row positions of the hidden columns of ``kind`` (after the output columns)."""
        width = len(self.output_columns)
        if not self.hidden:
            return [width + i for i in range(len(self.hidden_columns))] if kind == "size" else []
        return [width + i for i, h in enumerate(self.hidden) if h.kind == kind]

    def columns_of(self, dataset: str) -> tuple[str, ...]:
        for name, cols in self.columns_read:
            if name == dataset:
                return cols
        return ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe summary for audit records (no data values: the query and its checks)."""
        return {
            "sql_sha256": self.sql_sha256,
            "tables": list(self.tables),
            "engine_sql": self.engine_sql,
            "output_columns": list(self.output_columns),
            "group_columns": [str(c) for c in self.group_columns],
            "aggregates": [
                {"func": a.func, "column": str(a.column) if a.column else None, "output": a.output}
                for a in self.aggregates
            ],
            "min_group_size": self.min_group_size,
            "unit_columns": [str(c) for c in self.unit_columns],
            "release_mode": self.release_mode,
            "require_approval": self.require_approval,
            "sdc": self.sdc.model_dump(mode="json"),
            "decisions": [d.to_dict() for d in self.decisions],
        }
