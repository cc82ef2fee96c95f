"""The gate's Spark row source (``engine="spark"``): the checked plan, transpiled, over pinned Delta versions.

The plan's ``engine_sql`` is DuckDB SQL generated from the checked AST; here it is parsed back
with sqlglot and rewritten to Spark SQL so that every value equals DuckDB's (the parity tests
in ``tests/gate/test_spark_parity.py`` hold the two engines to that):

* each dataset is read at exactly its pinned version through a temp view kept warm across queries,
  one per (session, table, version), named from a hash (:mod:`.spark_views`: the Parquet files
  delta-rs pinned, read with the version's Delta schema, or the Delta read at ``versionAsOf``); the
  SQL reads ``(SELECT <the plan's columns> FROM view)`` under the dataset's name, so only the
  columns the plan reads are in scope, as in the DuckDB engine's views;
* ``MAX(x, n)`` (DuckDB's top-n list) becomes ``SLICE(SORT_ARRAY(COLLECT_LIST(x), FALSE), 1, n)``;
* ``AVG(x)`` and ``a / b`` are computed in DOUBLE, as DuckDB does (Spark keeps DECIMAL and
  rounds at scale + 4);
* ``SUM`` of an integer column is a ``DECIMAL(38, 0)`` sum: DuckDB sums into HUGEINT, Spark's
  ANSI BIGINT sum would fail on overflow instead;
* ``LIKE``/``ILIKE`` get an ``ESCAPE`` character absent from the pattern (DuckDB has no default
  escape, Spark's is the backslash);
* the dp rewrite's ``HASH(unit)`` becomes ``XXHASH64(unit)``, and the heavy-unit tables are
  computed here, on Spark, with the same hash (:func:`.spark_views.heavy_view`, cached);
* the differencing guard's unit lists (``ARRAY_AGG(HASH(unit))``) must hold DuckDB's hashes, which
  its unit dictionary is keyed on: Spark collects the unit values and DuckDB hashes the lists
  (:func:`_hash_units`, in this process; no unit value leaves it);
* NULL ordering is made explicit by sqlglot (DuckDB sorts NULLs last; Spark first when ASC).

The session must run with ANSI mode on, UTC, ordinals in ORDER BY and escapes in string
literals (sqlglot writes ``\\\\`` for a backslash): :data:`_REQUIRED_CONF` is checked before each
query (one round trip). Spark errors are translated without their messages (they can quote data values and paths).

The session is a classic one (a JVM in this process) or a Spark Connect client
(``Settings.spark_remote``): the code is the same for both — only DataFrame and SQL APIs, no RDDs,
no ``sparkContext`` except to quiet a classic driver's loggers (a Connect server is started with
its own quiet logging, :mod:`sandbox.engines.spark_cluster`). The time limit tags the query's
operations (``addTag``) and interrupts the tag (``interruptTag``) until the call returns: the
same calls on both kinds (classic Spark 4 supports them), where a job group exists only on classic.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlglot
from sqlglot import exp

from ..errors import InternalError, QueryRefused, TwhError
from ..tables.snapshot import Snapshot
from .plan import QueryPlan
from .rows import COMPATIBLE, EXPECTED, FETCH_BATCH, merge_rows, unit_arrays
from .scan import columns_for
from .spark_views import HEAVY, SNAPSHOTS, Entry, ViewCache, heavy_view, snapshot_view

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

    from ..engines.spark import SparkTarget

#: runtime settings the transpiled SQL relies on (values identical to DuckDB's)
_REQUIRED_CONF: dict[str, str] = {
    "spark.sql.ansi.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.orderByOrdinal": "true",
    "spark.sql.parser.escapedStringLiterals": "false",
    "spark.sql.caseSensitive": "false",
}
_INTEGRAL = {"tinyint", "smallint", "integer", "bigint"}
_ESCAPES = "!#$&~^|@"  # candidates for LIKE ... ESCAPE: any character absent from the pattern

_target: SparkTarget | None = None


def configure(target: SparkTarget | str, conf: Mapping[str, str] | None = None) -> None:
    """Which SparkSession queries run on (``Settings.spark_target``, or a master URL and its
    configuration); the session starts on the first query."""
    global _target
    from ..engines.spark import SparkTarget

    _target = target if isinstance(target, SparkTarget) else SparkTarget(
        master=target, conf=tuple(sorted((conf or {}).items())))


def session() -> SparkSession:
    from ..engines.spark import SparkTarget

    return (_target or SparkTarget()).session()


def _quiet_pyspark(spark: SparkSession) -> None:
    """PySpark 4 logs every SQL error's message to stderr (a cast error quotes the value), and
    the driver's task-failure logs quote the failed task's exception: neither may carry data."""
    from pyspark.logger import PySparkLogger

    from ..engines.spark import is_connect

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True
    if is_connect(spark):  # no driver here: the server's own logging is quiet (engines.spark_cluster)
        return
    try:
        jvm = spark.sparkContext._jvm
        off = jvm.org.apache.logging.log4j.Level.OFF
        for name in ("org.apache.spark.executor.Executor", "org.apache.spark.scheduler.TaskSetManager"):
            jvm.org.apache.logging.log4j.core.config.Configurator.setLevel(name, off)
    except Exception:  # noqa: BLE001 - another logging backend: its configuration is the operator's
        pass


def transpile(engine_sql: str, views: Mapping[str, str], integral: set[tuple[str, str]],
              columns: Mapping[str, Sequence[str]] | None = None) -> str:
    """The plan's DuckDB SQL as Spark SQL with identical results (see the module docstring).

    ``views``: table name in the SQL -> temp view name; ``integral``: (dataset, column) pairs of
    integer type, folded to lower case; ``columns``: table name -> the only columns the query may
    read of it (:func:`.scan.columns_for`): the view is read through ``(SELECT those FROM view)``,
    as the DuckDB engine's views project, so the warm view's other columns are not in scope.
    """
    tree = sqlglot.parse_one(engine_sql, read="duckdb")
    # AVG first: its SUM is then subject to the integer rule below.
    tree = tree.transform(lambda n: exp.Div(this=exp.Sum(this=n.this), expression=exp.Nullif(
        this=exp.Count(this=n.this.copy()), expression=exp.Literal.number(0))) if isinstance(n, exp.Avg) else n)

    def rewrite(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name in views:
            alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier(node.name, quoted=True))
            view = exp.Table(this=exp.to_identifier(views[node.name], quoted=True))
            if columns is None or node.name not in columns:
                view.set("alias", alias)
                return view
            projected = exp.select(*(exp.column(c, quoted=True) for c in columns[node.name])).from_(view)
            return exp.Subquery(this=projected, alias=alias)
        if isinstance(node, exp.Anonymous) and node.name.upper() == "HASH":
            if node.find_ancestor(exp.ArrayAgg) is not None:  # a unit list: DuckDB hashes it (_hash_units)
                return node.expressions[0].copy()
            return exp.Anonymous(this="XXHASH64", expressions=node.expressions)
        if isinstance(node, exp.Max) and node.args.get("count") is not None:
            arg = node.this
            top = exp.Anonymous(this="SLICE", expressions=[
                exp.Anonymous(this="SORT_ARRAY", expressions=[exp.Anonymous(this="COLLECT_LIST", expressions=[arg]),
                                                              exp.false()]),
                exp.Literal.number(1), node.args["count"]])
            # DuckDB's MAX(x, n) is NULL over no values, not an empty list
            return exp.Case(ifs=[exp.If(this=exp.EQ(this=exp.Count(this=arg.copy()), expression=exp.Literal.number(0)),
                                        true=exp.Null())], default=top)
        if isinstance(node, exp.Column) and node.table and (node.table.lower(), node.name.lower()) in integral \
                and node.find_ancestor(exp.Sum) is not None:
            return exp.Cast(this=node.copy(), to=exp.DataType.build("DECIMAL(38, 0)"))
        if isinstance(node, (exp.Like, exp.ILike)) and isinstance(node.expression, exp.Literal) \
                and not isinstance(node.parent, exp.Escape):
            pattern = node.expression.this
            char = next((c for c in _ESCAPES if c not in pattern), None)
            if char is None:  # every candidate in one pattern: fail closed rather than guess
                raise QueryRefused("the LIKE pattern cannot be passed to the engine unchanged",
                                   details={"rule": "engine_rejected", "error_class": "like_escape"})
            return exp.Escape(this=node.copy(), expression=exp.Literal.string(char))
        return node

    tree = tree.transform(rewrite)
    # Divisions last: both sides DOUBLE, as DuckDB's `/` is.
    tree = tree.transform(lambda n: exp.Div(
        this=exp.Cast(this=n.this, to=exp.DataType.build("double")),
        expression=exp.Cast(this=n.expression, to=exp.DataType.build("double"))) if isinstance(n, exp.Div) else n)
    return tree.sql(dialect="spark")


def check_literal_types(types: Mapping[str, Mapping[str, tuple[str, str]]], plan: QueryPlan) -> None:
    """:func:`.engine.check_literal_types` on Spark's schema: refuse comparisons that would cast a column."""
    for ref, kind in plan.literal_kinds:
        if kind == "null":
            continue
        type_id, type_name = types.get(ref.dataset, {}).get(ref.column.casefold(), ("unknown", "unknown"))
        if type_id not in COMPATIBLE[kind]:
            raise QueryRefused(
                f"column {ref.column!r} of {ref.dataset!r} is {type_name}: it cannot be compared with "
                f"{EXPECTED[kind]}",
                details={"rule": "literal_type", "column": str(ref), "column_type": type_name, "literal": kind},
            )


def _translate(exc: Exception) -> TwhError:
    """Spark error -> ours, naming only its error condition (messages may quote data or paths)."""
    from pyspark.errors import AnalysisException, ArithmeticException, NumberFormatException, PySparkException

    condition = ""
    if isinstance(exc, PySparkException):
        condition = (exc.getCondition() if hasattr(exc, "getCondition") else exc.getErrorClass()) or ""
    kind = condition or type(exc).__name__
    if "OutOfMemoryError" in str(exc) or condition.startswith("UNABLE_TO_ACQUIRE_MEMORY"):
        return QueryRefused("the query ran out of memory", details={"rule": "resource_limit"})
    if isinstance(exc, (AnalysisException, ArithmeticException, NumberFormatException)) or condition.startswith(
            ("CAST_", "ARITHMETIC_", "NUMERIC_", "DIVIDE_BY_ZERO", "INVALID_", "DATATYPE_MISMATCH")):
        return QueryRefused(
            f"the query engine could not run the query ({kind}); check literal types against the columns",
            details={"rule": "engine_rejected", "error_class": kind},
        )
    return InternalError(f"the query engine failed ({kind})", details={"error_class": kind})


def _require_conf(spark: SparkSession) -> None:
    """Set :data:`_REQUIRED_CONF` where the session differs (one round trip to read them all: over
    Connect each ``conf.get`` is one)."""
    current = spark.conf.getAll
    with warnings.catch_warnings():  # Connect warns that escapedStringLiterals is deprecated: we set it off
        warnings.simplefilter("ignore", UserWarning)
        for key, value in _REQUIRED_CONF.items():
            if current.get(key) != value:
                spark.conf.set(key, value)


def spark_rows(plan: QueryPlan, snapshots: Mapping[str, Snapshot], timeout_s: float | None) -> Iterator[Sequence[Any]]:
    """The row source registered as ``ENGINES["spark"]`` (see :func:`.engine.run_query`)."""
    spark = session()
    _quiet_pyspark(spark)
    _require_conf(spark)
    tag = uuid.uuid4().hex[:12]
    views: dict[str, str] = {}
    integral: set[tuple[str, str]] = set()
    types: dict[str, dict[str, tuple[str, str]]] = {}
    held: list[tuple[ViewCache, Entry]] = []
    bases: dict[str, Entry] = {}
    columns: dict[str, tuple[str, ...]] = {}
    try:
        for name in plan.tables:
            snap = snapshots[name]
            columns[name] = columns_for(plan, snap)  # and its refusals: no record keys, declared columns missing
            base = snapshot_view(spark, snap)
            held.append((SNAPSHOTS, base))
            bases[name] = base
            read = {c.casefold() for c in columns[name]}
            types[name] = {c: t for c, t in base.types.items() if c in read}
            integral |= {(name.lower(), c) for c, (t, _) in types[name].items() if t in _INTEGRAL}
            views[name] = base.name
        if plan.dp is not None:
            for i, h in enumerate(plan.dp.heavy):
                heavy = heavy_view(spark, snapshots[h.dataset], bases[h.dataset], h.unit, h.max_rows)
                held.append((HEAVY, heavy))
                views[h.view_name(i)] = heavy.name
        check_literal_types(types, plan)
        sql = transpile(plan.engine_sql, views, integral, columns)
        table = _collect(spark, sql, tag, timeout_s)
    finally:
        for cache, entry in held:
            cache.release(entry)
    if tuple(table.column_names) != plan.output_columns + plan.hidden_columns:
        raise InternalError("engine result columns do not match the plan")
    table = _hash_units(table, plan)
    # As the DuckDB engine yields them: unit lists as numpy uint64 arrays (empty for none), the
    # rest as Python values.
    units = set(plan.hidden_indices("units"))
    arrays = unit_arrays({i: table.column(i) for i in units})
    plain = [i for i in range(table.num_columns) if i not in units]
    rows = (values for batch in table.select(plain).to_batches(FETCH_BATCH)
            for values in zip(*(column.to_pylist() for column in batch.columns)))
    yield from merge_rows(table.num_columns, plain, rows, arrays)


def _hash_units(table: Any, plan: QueryPlan) -> Any:
    """The unit lists as DuckDB ``hash(unit)`` values, which the differencing guard's unit
    dictionary is keyed on: Spark collects the values (typed as in the table: Arrow carries the
    type, so DuckDB hashes a BIGINT as a BIGINT), DuckDB hashes them here."""
    units = set(plan.hidden_indices("units"))
    if not units:
        return table
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False, "enable_external_access": False,
                                             "python_enable_replacements": False})
    try:
        con.register("__twh_result", table)
        cols = ", ".join(
            f"list_transform({q}, lambda x: hash(x)) AS {q}"
            if i in units else q for i, q in enumerate('"' + n.replace('"', '""') + '"' for n in table.column_names))
        return con.sql(f"SELECT {cols} FROM __twh_result").to_arrow_table()  # order kept (insertion order)
    except duckdb.Error as exc:
        raise InternalError(f"the unit lists could not be hashed ({type(exc).__name__})") from None
    finally:
        con.close()


def _collect(spark: SparkSession, sql: str, tag: str, timeout_s: float | None) -> Any:
    """Run ``sql`` with operation tag ``tag`` (interrupted at ``timeout_s``) and fetch it as Arrow."""
    from ..engines.spark import is_connect, query_arrow

    expired, done = threading.Event(), threading.Event()

    def cancel() -> None:
        # An interrupt stops the operations running now: a query's next stage (or, on classic, its
        # next job) could start afterwards, so keep interrupting until the call returns.
        expired.set()
        while True:
            try:
                spark.interruptTag(tag)
            except Exception:  # noqa: BLE001 - the server is gone: the call below fails anyway
                pass
            if done.wait(0.2):
                return

    timer = threading.Timer(timeout_s, cancel) if timeout_s else None
    classic = not is_connect(spark)
    spark.addTag(tag)  # this thread's operations only (thread-local on both kinds of session)
    if classic:  # kill running tasks' threads on cancel, not only the scheduling of new ones
        spark.sparkContext.setInterruptOnCancel(True)
    try:
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            table = query_arrow(spark, sql)
        except Exception as exc:
            if expired.is_set():
                raise QueryRefused("the query ran past its time limit", details={"rule": "timeout"}) from None
            # `from None`: the original message may carry data values; it must not reach logs.
            raise _translate(exc) from None
        if expired.is_set():  # finished while being cancelled: past the limit all the same
            raise QueryRefused("the query ran past its time limit", details={"rule": "timeout"})
        return table
    finally:
        done.set()
        if timer is not None:
            timer.cancel()
        spark.removeTag(tag)
        if classic:
            spark.sparkContext.setInterruptOnCancel(False)
