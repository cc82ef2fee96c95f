"""Run a checked :class:`~.plan.QueryPlan` over pinned snapshots, then release the result.

Each query gets a fresh in-memory DuckDB connection that can see only the snapshots it reads:

1. connect with extension auto-install/auto-load, community extensions, persistent secrets,
   Python replacement scans (DuckDB would otherwise resolve unknown table names to Python
   variables) and the spill directory all off;
2. register one view per dataset, named after it, projecting only the columns the plan reads:
   fast path ``read_parquet([...])`` over the snapshot's own file list (our list, each path
   quoted); or, when ``needs_delta_reader`` is set (deletion vectors, column mapping, partition
   columns) or the file list is not plain local paths, delta-rs's pyarrow dataset pinned at
   the snapshot's version;
3. lock down: ``allowed_paths`` = exactly the snapshot's data files,
   ``enable_external_access = false``, then ``lock_configuration = true``. Measured on DuckDB
   2.0: views over the allowed files still read, every other file (``/etc/passwd``, files of
   other versions of the same table) is refused, and the settings cannot be changed back.

DuckDB errors are translated at this boundary without their messages: a conversion error can
quote a data value, an IO error a host path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from ..errors import InternalError, QueryRefused, TwhError
from ..tables.snapshot import Snapshot
from .modes import RELEASE_MODES
from .plan import QueryPlan
from .rows import COMPATIBLE, EXPECTED, FETCH_BATCH, merge_rows, unit_arrays
from .scan import columns_for, quote_ident, quote_str, snapshot_source

if TYPE_CHECKING:
    from .dp_bounding import DpRun


#: what a job is told about cells it was not given (the same sentence whatever happened)
WITHHELD_NOTE = ("cells that did not pass disclosure control are not shown; how many there were, and why, is "
                 "withheld (it could carry the values they hide)")

_CONFIG: dict[str, Any] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_persistent_secrets": False,
    "python_enable_replacements": False,
    # No spill directory: it would be one more readable/writable place, and gated
    # aggregates are small. A query that needs to spill fails as resource_limit.
    "temp_directory": "",
}


@dataclass(frozen=True)
class GatedResult:
    """What the broker answers for a gated query."""

    columns: list[str]
    #: JSON-safe values (ints, floats, strings, booleans, None; dates as ISO strings)
    rows: list[list[Any]]
    suppressed_groups: int
    released_groups: int
    #: the checks passed and the release decision; no data values
    decisions: list[dict[str, Any]] = field(default_factory=list)
    mode: str = "sdc"
    #: internal, never in ``to_dict``: per released row, per unit column, the cell's ``hash(unit)``
    #: values as a numpy array (the differencing guard's populations)
    populations: list[tuple[Any, ...]] = field(default_factory=list, repr=False, compare=False)
    #: internal, never in ``to_dict``: per released row, which rows it holds (the release budget's unit)
    identities: list[str] = field(default_factory=list, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Everything the audit and the stewards see (suppression counts and per-rule decisions)."""
        return {
            "columns": list(self.columns),
            "rows": [list(r) for r in self.rows],
            "suppressed_groups": self.suppressed_groups,
            "released_groups": self.released_groups,
            "decisions": [dict(d) for d in self.decisions],
            "mode": self.mode,
        }

    def for_job(self) -> dict[str, Any]:
        """What the job's code is told: the released rows and the query's static checks.

        Nothing about suppressed cells -- how many, which, under which rule -- reaches the job in
        any mode: with a filter that isolates one unit and a group key over a measure, "how many
        cells were hidden" answers "is the value below H?" (stewards and auditors still see it).
        dp decisions are kept: ε, δ and bounds are public and data-independent."""
        decisions = [dict(d) for d in self.decisions
                     if self.mode == "dp" or ("suppressed" not in d and "released" not in d)]
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "released_groups": len(self.rows), "decisions": decisions, "mode": self.mode,
                "suppressed_groups": None, "notes": [WITHHELD_NOTE] if self.mode != "dp" else []}


def open_connection(plan: QueryPlan, snapshots: Mapping[str, Snapshot],
                    dp_run: DpRun | None = None) -> duckdb.DuckDBPyConnection:
    """A locked-down connection exposing one view per dataset of ``plan`` (see module docstring).

    ``dp_run`` (dp mode, :func:`.dp_bounding.choose`): datasets it names read their bounded copy
    (the plan's columns less the privacy unit, plus the weight column), and the heavy-unit tables
    are registered only when its SQL joins them. Without it they are always registered."""
    con = duckdb.connect(":memory:", config=dict(_CONFIG))
    copies = dp_run.copies if dp_run is not None else {}
    try:
        allowed: list[str] = []
        for i, name in enumerate(plan.tables):
            snap = snapshots[name]
            cols = columns_for(plan, snap)
            if name in copies:  # the bounded copy: no unit column, one weight per row
                from .dp_plan import WEIGHT_COLUMN

                unit = {h.unit.casefold() for h in plan.dp.heavy if h.dataset == name}
                cols = tuple(c for c in cols if c.casefold() not in unit) + (WEIGHT_COLUMN,)
                source, files = f"read_parquet([{quote_str(copies[name])}])", (copies[name],)
            else:
                source, files = snapshot_source(con, snap, f"__twh_src_{i}")
            projection = ", ".join(quote_ident(c) for c in cols) if cols else "*"
            allowed.extend(files)
            con.execute(f"CREATE VIEW {quote_ident(name)} AS SELECT {projection} FROM {source}")
        if plan.dp is not None and (dp_run is None or dp_run.joins_heavy):
            from .dp_bounding import heavy_units  # dp mode: per-snapshot heavy-unit weights

            for i, h in enumerate(plan.dp.heavy):
                con.register(h.view_name(i), heavy_units(snapshots[h.dataset], h.unit, h.max_rows))
        con.execute("SET allowed_paths = ?", [allowed])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        return con
    except BaseException:
        con.close()
        raise


def check_literal_types(con: duckdb.DuckDBPyConnection, plan: QueryPlan) -> None:
    """Refuse comparisons that would make DuckDB cast a column's values.

    `varchar_col = 5` casts every value to a number: it fails or not depending on the data (a
    one-bit oracle that bypasses the threshold) and its error message quotes a value. Column
    types come from the views (schema only, no rows read).
    """
    types: dict[str, dict[str, tuple[str, str]]] = {}
    for ref, kind in plan.literal_kinds:
        if kind == "null":
            continue
        if ref.dataset not in types:
            rel = con.sql(f"SELECT * FROM {quote_ident(ref.dataset)}")
            types[ref.dataset] = {c.casefold(): (t.id, str(t)) for c, t in zip(rel.columns, rel.types)}
        type_id, type_name = types[ref.dataset].get(ref.column.casefold(), ("unknown", "unknown"))
        if type_id not in COMPATIBLE[kind]:
            use = ("only numeric columns can be bucketed or clamped" if kind == "numeric"
                   else f"it cannot be compared with {EXPECTED[kind]}")
            raise QueryRefused(
                f"column {ref.column!r} of {ref.dataset!r} is {type_name}: {use}",
                details={"rule": "literal_type", "column": str(ref), "column_type": type_name, "literal": kind},
            )


def _translate(exc: duckdb.Error) -> TwhError:
    """DuckDB error -> ours, naming only the error class (messages may quote data or paths)."""
    kind = type(exc).__name__
    if isinstance(exc, duckdb.InterruptException):
        return QueryRefused("the query ran past its time limit", details={"rule": "timeout"})
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryRefused("the query ran out of memory", details={"rule": "resource_limit"})
    if isinstance(exc, (duckdb.ConversionException, duckdb.BinderException, duckdb.InvalidInputException,
                        duckdb.OutOfRangeException, duckdb.TypeMismatchException, duckdb.InvalidTypeException)):
        return QueryRefused(
            f"the query engine could not run the query ({kind}); check literal types against the columns",
            details={"rule": "engine_rejected", "error_class": kind},
        )
    return InternalError(f"the query engine failed ({kind})", details={"error_class": kind})


def _rows_with_units(con: duckdb.DuckDBPyConnection, plan: QueryPlan) -> Iterator[Sequence[Any]]:
    """Rows whose ``units`` columns (each cell's ``hash(unit)`` list, up to millions of values)
    are numpy arrays: fetched through Arrow, not as Python ints (the guard's cost at 1M units).
    The result is materialised once in memory; both reads keep its row order."""
    con.execute(f"CREATE TEMP TABLE __twh_result AS {plan.engine_sql}")
    names = [d[0] for d in con.execute("SELECT * FROM __twh_result LIMIT 0").description or []]
    if tuple(names) != plan.output_columns + plan.hidden_columns:
        raise InternalError("engine result columns do not match the plan")
    units = set(plan.hidden_indices("units"))
    lists = con.sql("SELECT " + ", ".join(quote_ident(names[i]) for i in sorted(units))
                    + " FROM __twh_result ORDER BY rowid").to_arrow_table()
    arrays = unit_arrays({i: lists.column(k) for k, i in enumerate(sorted(units))})
    plain = [i for i in range(len(names)) if i not in units]
    cur = con.execute("SELECT " + ", ".join(quote_ident(names[i]) for i in plain)
                      + " FROM __twh_result ORDER BY rowid")
    yield from merge_rows(len(names), plain, _batches(cur), arrays)


def _batches(cur: duckdb.DuckDBPyConnection) -> Iterator[Sequence[Any]]:
    while batch := cur.fetchmany(FETCH_BATCH):
        yield from batch


def _duckdb_rows(
    plan: QueryPlan, snapshots: Mapping[str, Snapshot], timeout_s: float | None, copies_dir: Path | None = None
) -> Iterator[Sequence[Any]]:
    dp_run = None
    if plan.dp is not None:  # dp: the light plan when no unit exceeds m, else a bounded copy (same integers)
        from .dp_bounding import choose

        dp_run = choose(plan, snapshots, copies_dir)
    try:
        con = open_connection(plan, snapshots, dp_run)
    except duckdb.Error as exc:  # e.g. a data file of the snapshot is gone: not the query's fault
        raise InternalError(f"the snapshots could not be opened ({type(exc).__name__})",
                            details={"error_class": type(exc).__name__}) from None
    timer = threading.Timer(timeout_s, con.interrupt) if timeout_s else None
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            check_literal_types(con, plan)
            if plan.hidden_indices("units"):
                yield from _rows_with_units(con, plan)
                return
            cur = con.execute(dp_run.sql if dp_run is not None else plan.engine_sql)
            names = [d[0] for d in cur.description or []]
            if tuple(names) != plan.output_columns + plan.hidden_columns:
                raise InternalError("engine result columns do not match the plan")
            while batch := cur.fetchmany(FETCH_BATCH):
                yield from batch
        except duckdb.Error as exc:
            # `from None`: the original message may carry data values; it must not reach logs.
            raise _translate(exc) from None
    finally:
        if timer is not None:
            timer.cancel()
        con.close()


def _spark_rows(
    plan: QueryPlan, snapshots: Mapping[str, Snapshot], timeout_s: float | None, copies_dir: Path | None = None
) -> Iterator[Sequence[Any]]:
    # copies_dir is not used: Spark runs the heavy-unit join (a bounded copy written by one machine
    # would undo the point of scaling out)
    # Imported on first use: importing the gate never imports pyspark.
    from .spark_engine import spark_rows

    return spark_rows(plan, snapshots, timeout_s)


#: engine name -> row source ``(plan, snapshots, timeout_s, copies_dir)``. A test engine plugs in here.
ENGINES: dict[str, Callable[[QueryPlan, Mapping[str, Snapshot], float | None, Path | None],
                            Iterator[Sequence[Any]]]] = {
    "duckdb": _duckdb_rows,
    "spark": _spark_rows,
}


def run_query(
    plan: QueryPlan,
    snapshots: Mapping[str, Snapshot],
    *,
    engine: str = "duckdb",
    timeout_s: float | None = None,
    copies_dir: Path | None = None,
) -> GatedResult:
    """Run ``plan`` over ``snapshots`` (dataset name -> pinned snapshot) and release the result
    by the plan's release mode. ``copies_dir``: where dp mode keeps bounded copies of snapshots
    (:mod:`.dp_bounding`; None: the heavy-unit join instead). Raises ``QueryRefused`` (timeout,
    resource_limit, engine_rejected) or ``InternalError``."""
    source = ENGINES.get(engine)
    if source is None:
        raise InternalError(f"unknown query engine {engine!r}")
    mode = RELEASE_MODES.get(plan.release_mode)
    if mode is None:
        raise InternalError(f"release mode {plan.release_mode!r} is not registered")
    for name in plan.tables:
        snap = snapshots.get(name)
        if snap is None or snap.dataset != name:
            raise InternalError(f"no snapshot pinned for dataset {name!r}", details={"dataset": name})
    try:
        released = mode.release(plan, source(plan, snapshots, timeout_s, copies_dir))
    except ValueError as exc:
        raise InternalError(str(exc)) from None
    decisions = ([d.to_dict() for d in plan.decisions] + [dict(released.decision)]
                 + [dict(d) for d in released.rule_decisions])
    return GatedResult(
        columns=list(released.columns or plan.output_columns),
        rows=released.rows,
        suppressed_groups=released.suppressed_groups,
        released_groups=released.released_groups,
        decisions=decisions,
        mode=mode.name,
        populations=released.populations,
        identities=released.identities,
    )
