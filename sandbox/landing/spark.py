"""Landing on Spark: large CSV and Parquet files read in parallel, checked, committed by delta-spark.

Used instead of the streaming path (:mod:`sandbox.landing.ingest`) when the engine is ``spark``
(``TWH_ENGINE=spark`` or ``twh ingest DATASET FILE --engine spark``) for append and overwrite
loads of CSV and Parquet files; everything else (merge, incremental, other connectors, CSV
options Spark cannot honour) stays on the streaming path. The rules are the same:

* Types are declared, never inferred. A CSV is read with every column as text (its columns named
  from its header, which must hold exactly the declared names) and converted with the same
  patterns as :mod:`connectors.schema`; ragged rows (Spark's corrupt-record column), wrong
  types, empty values in non-nullable columns, oversize fields and undecodable bytes are
  counted in ONE aggregate pass and fail the whole batch — nothing is silently nulled.
  A Parquet file's stored types must cast losslessly, as for the streaming connector.
* The dataset's contract runs on the Spark DataFrame: not-null / between / in-set checks in that
  same pass (as the streaming path runs them natively on Arrow), every other expectation
  through Great Expectations' Spark datasource (``SparkDFExecutionEngine``).
* A failure quarantines the load with the same steward-only report; nothing is committed.
* The write is ONE delta-spark commit carrying the commit metadata of the delta-rs path as JSON
  in ``userMetadata`` and the same application transaction (``txnAppId=twh.load:<load id>``),
  so :func:`sandbox.tables.storage.find_load`, re-runs (same load id → no-op) and ``twh dataset
  history`` work the same. The written expressions re-check every row-level rule and raise if
  one fails, so a file that changes between the check and the write aborts the job before the
  commit instead of landing unchecked rows.
* Spark reads CSV line by line (``multiLine`` is off so one file splits across tasks): a quoted
  field that spans lines shows up as a ragged row and the load fails closed.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors import ContractReport, ExpectationOutcome, SourceError, file_sha256, schema_report
from connectors.errors import MAX_EXAMPLES, SchemaError, SchemaViolation, truncate_example
from connectors.schema import ColumnSpec

from ..datasets.declared import column_specs
from ..datasets.sources import LoadMode
from ..engines.spark import functions
from ..engines.spark_rules import Check, Frame, csv_frame, native_unexpected, natively_counted, parquet_frame
from ..errors import Conflict, InternalError, InvalidInput
from ..tables import storage
from ..tables.record_keys import RECORD_KEY
from ..tables.uris import Location
from .plan import LoadBook, LoadPlan, load_id_for, validation_summary

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession

    from ..auth import Principal
    from ..datasets.manifest import DatasetManifest

#: connector kinds and load modes the Spark path lands
SPARK_KINDS = frozenset({"csv", "parquet"})
SPARK_MODES = {LoadMode.APPEND: "append", LoadMode.OVERWRITE: "overwrite"}
#: CSV options Spark honours exactly; any other option keeps the load on the streaming path
_SPARK_CSV_OPTIONS = frozenset({"encoding", "delimiter", "quotechar", "max_field_bytes"})


def spark_unsupported(plan: LoadPlan, mode: LoadMode, manifest: DatasetManifest | None = None,
                      remote: bool = False) -> str | None:
    """Why this load cannot run on Spark (it then takes the streaming path), or None.

    Over Spark Connect (``remote``), expectations that only Great Expectations evaluates keep the
    load on the streaming path: GE's Spark engine builds classic Columns, which a Connect plan cannot
    hold (the natively counted ones — not_null, between, in_set — run on Connect alike)."""
    if remote and manifest is not None and manifest.expectations:
        specs = {s.name: s for s in column_specs(manifest)}
        for e in manifest.expectations:
            spec = specs.get(str(dict(e.kwargs).get("column")))
            if spec is None or not natively_counted(e.type, dict(e.kwargs), spec):
                return f"expectation {e.type} needs Great Expectations, which runs on a classic SparkSession only"
    if not plan.is_file or plan.kind not in SPARK_KINDS:
        return f"the {plan.kind} connector is streamed"
    if mode not in SPARK_MODES:
        return f"{mode.value} loads are streamed"
    allowed = _SPARK_CSV_OPTIONS if plan.kind == "csv" else frozenset()
    extra = sorted(set(plan.options) - allowed)
    if extra:
        return f"option(s) {extra} are streamed"
    return None


# --- the contract -----------------------------------------------------------------------------


def _summary(etype: str, kwargs: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={json.dumps(v, default=str, ensure_ascii=False)}" for k, v in kwargs.items()
                     if k != "column")
    args = args[:80] + "…" if len(args) > 80 else args
    column = kwargs.get("column")
    return f"{etype}({column}{', ' if column and args else ''}{args})" if column else f"{etype}({args})"


class _SparkGx:
    """One ephemeral Great Expectations context with a Spark datasource, per process."""

    def __init__(self) -> None:
        from connectors.contracts import ephemeral_whole_dataframe

        self.gx, self.batch_definition = ephemeral_whole_dataframe("spark", "twh_spark", "load")


_GX: _SparkGx | None = None
_GX_LOCK = threading.Lock()


def _ge_outcomes(items: dict[int, tuple[str, dict[str, Any]]], frame: DataFrame, rows: int,
                 name: str) -> dict[int, ExpectationOutcome]:
    """Run the expectations Spark cannot count natively through GE's SparkDFExecutionEngine."""
    global _GX
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    with _GX_LOCK:
        if _GX is None:
            _GX = _SparkGx()
        suite = _GX.gx.ExpectationSuite(name=name)
        for i, (etype, kwargs) in items.items():
            suite.add_expectation(ExpectationConfiguration(type=etype, kwargs=kwargs,
                                                           meta={"twh_index": i}).to_domain_obj())
        batch = _GX.batch_definition.get_batch(batch_parameters={"dataframe": frame})
        results = batch.validate(suite, result_format={"result_format": "SUMMARY",
                                                       "partial_unexpected_count": MAX_EXAMPLES}).results
    out: dict[int, ExpectationOutcome] = {}
    for r in results:
        i = int((r.expectation_config.meta or {}).get("twh_index", -1))
        if i not in items:
            continue
        etype, kwargs = items[i]
        res, summary = r.result or {}, _summary(etype, kwargs)
        info = r.exception_info or {}
        raised = info.get("raised_exception") if isinstance(info, dict) else False
        count = int(res.get("unexpected_count") or 0)
        examples = tuple(truncate_example(v) for v in (res.get("partial_unexpected_list") or [])[:MAX_EXAMPLES])
        if not examples and "observed_value" in res and not r.success:
            examples = (truncate_example(res["observed_value"]),)
        message = (f"{summary}: could not be evaluated" if raised else f"{summary}: passed" if r.success
                   else f"{summary}: {count} of {rows} row(s) unexpected" if "unexpected_count" in res
                   else f"{summary}: failed")
        out[i] = ExpectationOutcome(type=etype, column=kwargs.get("column"), success=bool(r.success) and not raised,
                                    unexpected_count=count, unexpected_examples=examples, message=message)
    return out


# --- the load ---------------------------------------------------------------------------------


class SparkLoad:
    """One CSV/Parquet load on Spark; the catalog, quarantine and audit steps are the streaming
    path's own (:class:`sandbox.landing.ingest.Ingest`), so both engines record a load identically."""

    def __init__(self, ingest: LoadBook, spark: SparkSession | None = None) -> None:
        self.ingest = ingest
        self._spark = spark

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:  # this process's classic session, or a client of the Connect server
            self._spark = self.ingest.ctx.settings.spark_target.session()
        return self._spark

    def run(self, principal: Principal, dataset: str, manifest: DatasetManifest, plan: LoadPlan, mode: LoadMode,
            table: Location) -> dict[str, Any]:
        ing = self.ingest
        started = time.perf_counter()
        try:
            sha = file_sha256(plan.target)
        except SourceError as exc:
            raise InvalidInput(str(exc)) from None
        load_id = load_id_for(dataset, sha, mode.value)
        content = {"source_sha256": sha}
        done = ing.already_loaded(dataset, table, load_id, principal, plan.name, sha)
        if done is not None:
            return done
        specs = column_specs(manifest)
        try:
            frame = (csv_frame(self.spark, Path(plan.target), specs, plan.options) if plan.kind == "csv"
                     else parquet_frame(self.spark, Path(plan.target), specs))
            rows, counts = self._count(frame, manifest, specs)
        except SourceError as exc:
            ing.refuse_drift(principal, dataset, plan, exc)
            ing.quarantine(principal, dataset, load_id, plan, content, schema_report(exc))
        violations = [self._violation(frame, c, counts[i], rows) for i, c in enumerate(frame.checks) if counts[i]]
        if violations:
            ing.quarantine(principal, dataset, load_id, plan, content,
                            schema_report(SchemaError(violations, rows_checked=rows)))
        if rows == 0:
            raise InvalidInput(f"{plan.name}: no data rows; nothing was committed")
        report = self._contract(frame, manifest, specs, counts, rows)
        if report is not None and not report.success:
            ing.quarantine(principal, dataset, load_id, plan, content, report)
        meta = {"twh.load_id": load_id, "twh.dataset": dataset, "twh.mode": mode.value, "twh.connector": plan.kind,
                "twh.engine": "spark", **{f"twh.{k}": v for k, v in content.items()}}
        version = self._write(frame, manifest, specs, table, SPARK_MODES[mode], meta)
        lineage = {"source": plan.source, "connector": plan.kind, "engine": "spark", "file_name": plan.name,
                   "load_id": load_id, "mode": mode.value, **content, "query": None, "options": plan.options,
                   "rows_in": rows, "rows_out": rows, "rows_quarantined": 0, "rows": rows,
                   "validation": validation_summary(report, 0), "seconds": round(time.perf_counter() - started, 3)}
        out = ing.record(principal, dataset, load_id, version, rows, lineage)
        out["engine"] = "spark"
        return out

    # -- passes ---------------------------------------------------------------------------------
    def _native_checks(self, frame: Frame, manifest: DatasetManifest,
                       specs: list[ColumnSpec]) -> tuple[dict[int, Column], dict[int, tuple[str, dict[str, Any]]]]:
        by_name = {s.name: s for s in specs}
        native: dict[int, Column] = {}
        rest: dict[int, tuple[str, dict[str, Any]]] = {}
        for i, e in enumerate(manifest.expectations or []):
            etype, kwargs = e.type, dict(e.kwargs)
            spec = by_name.get(str(kwargs.get("column")))
            cond = native_unexpected(etype, kwargs, frame.typed[spec.name], spec) if spec is not None else None
            if cond is None:
                rest[i] = (etype, kwargs)
            else:
                native[i] = cond
        return native, rest

    def _count(self, frame: Frame, manifest: DatasetManifest, specs: list[ColumnSpec]) -> tuple[int, list[int]]:
        """ONE pass over the source: the row count, each schema rule's and each native
        expectation's failing rows (schema rules first, then expectations in manifest order)."""
        F = functions(frame.raw)  # Connect's or classic's: the session decides

        native, _ = self._native_checks(frame, manifest, specs)
        conds = [c.bad for c in frame.checks] + list(native.values())
        aggs = [F.count(F.lit(1)).alias("n")] + [F.sum(F.when(c, 1).otherwise(0)).alias(f"c{i}")
                                                 for i, c in enumerate(conds)]
        try:
            row = frame.raw.agg(*aggs).collect()[0]
        except Exception as exc:  # a Spark/JVM failure while reading: the file, not the request
            raise SourceError(f"Spark could not read the file ({_spark_error(exc)})", check="format") from None
        return int(row["n"]), [int(row[f"c{i}"] or 0) for i in range(len(conds))]

    def _violation(self, frame: Frame, check: Check, count: int, rows: int) -> SchemaViolation:
        examples: tuple[str, ...] = ()
        if check.shown is not None:  # steward-only examples: a few failing values, truncated
            got = frame.raw.filter(check.bad).select(check.shown.alias("v")).limit(MAX_EXAMPLES).collect()
            examples = tuple(truncate_example(r["v"]) for r in got)
        return SchemaViolation(check=check.check, column=check.column, count=count, rows=(), examples=examples,
                               message=f"{check.message} ({count} of {rows} row(s))")

    def _contract(self, frame: Frame, manifest: DatasetManifest, specs: list[ColumnSpec], counts: list[int],
                  rows: int) -> ContractReport | None:
        if not manifest.expectations:
            return None
        started = time.perf_counter()
        native, rest = self._native_checks(frame, manifest, specs)
        base = len(frame.checks)
        outcomes: dict[int, ExpectationOutcome] = {}
        for k, (i, cond) in enumerate(native.items()):
            e = manifest.expectations[i]
            kwargs = dict(e.kwargs)
            n = counts[base + k]
            examples: tuple[str, ...] = ()
            if n:
                got = frame.raw.filter(cond).select(frame.typed[kwargs["column"]].alias("v")).limit(
                    MAX_EXAMPLES).collect()
                examples = tuple(truncate_example(r["v"]) for r in got)
            summary = _summary(e.type, kwargs)
            outcomes[i] = ExpectationOutcome(type=e.type, column=kwargs.get("column"), success=n == 0,
                                             unexpected_count=n, unexpected_examples=examples,
                                             message=f"{summary}: passed" if n == 0
                                             else f"{summary}: {n} of {rows} row(s) unexpected")
        if rest:
            typed = frame.raw.select(*[frame.typed[s.name].alias(s.name) for s in specs])
            outcomes.update(_ge_outcomes(rest, typed, rows, manifest.name))
        results = []
        for i, e in enumerate(manifest.expectations):
            results.append(outcomes.get(i) or ExpectationOutcome(
                type=e.type, column=dict(e.kwargs).get("column"), success=False, unexpected_count=0,
                message=f"{_summary(e.type, dict(e.kwargs))}: no result was produced"))
        return ContractReport(success=all(o.success for o in results), results=tuple(results), rows_checked=rows,
                              kind="contract", seconds=time.perf_counter() - started)

    def _write(self, frame: Frame, manifest: DatasetManifest, specs: list[ColumnSpec], table: Location, mode: str,
               meta: dict[str, str]) -> int:
        """ONE delta-spark commit; every row-level rule re-checked in the written expressions."""
        F = functions(frame.raw)

        native, _ = self._native_checks(frame, manifest, specs)
        guards = [c.bad for c in frame.checks] + list(native.values())
        any_bad = guards[0]
        for g in guards[1:]:
            any_bad = any_bad | g
        first = specs[0].name
        cols = [F.when(F.coalesce(any_bad, F.lit(True)), F.raise_error(F.lit("twh: the source changed after it was "
                                                                              "checked"))).otherwise(
            frame.typed[first]).alias(first)] + [frame.typed[s.name].alias(s.name) for s in specs[1:]]
        # Record keys (sandbox.tables.record_keys): a keyed hash of each row's unique id under a salt
        # drawn from the OS CSPRNG for this load only and never stored, so no one can predict them.
        salt = os.urandom(16).hex()
        digest = F.sha2(F.concat(F.lit(salt), F.monotonically_increasing_id().cast("string")), 256)
        cols.append((F.conv(F.substring(digest, 1, 8), 16, 10).cast("long") - F.lit(2 ** 31)).cast("int")
                    .alias(RECORD_KEY))
        load_id = meta[storage.LOAD_ID_KEY]
        target = str(table.path) if table.is_local else table.uri  # s3:// is S3A (sandbox.engines.spark)
        try:
            # Object storage: the table's commit lock from reading the latest version to the commit
            # (delta-spark's S3 log store arbitrates only within one driver JVM).
            with self.ingest.ctx.commit_lock(table):
                (frame.raw.select(*cols).write.format("delta").mode(mode)
                 .option("txnAppId", storage.TXN_PREFIX + load_id).option("txnVersion", 1)
                 .option("userMetadata", json.dumps(meta, sort_keys=True))
                 .save(target))
        except Conflict:
            raise
        except Exception as exc:
            reason = _spark_error(exc)
            if "Concurrent" in reason or "ProtocolChanged" in reason or "MetadataChanged" in reason:
                raise Conflict(f"load {load_id} conflicted with a concurrent commit and was not committed; retry",
                               details={"load_id": load_id}) from None
            raise InvalidInput(f"Spark refused the load ({reason}); nothing was committed",
                               details={"load_id": load_id}) from None
        version = storage.find_load(table, load_id)
        if version is None:
            raise InternalError(f"load {load_id} was written by Spark but its commit cannot be found")
        return version


def _spark_error(exc: BaseException) -> str:
    """A Spark error's class (and error class), never its message: messages can quote row values."""
    cond = getattr(exc, "getCondition", None) or getattr(exc, "getErrorClass", None)
    try:
        code = cond() if callable(cond) else None
    except Exception:  # pragma: no cover - depends on the pyspark build
        code = None
    java = getattr(exc, "java_exception", None)
    java_name = java.getClass().getSimpleName() if java is not None else ""
    return ":".join(x for x in (type(exc).__name__, code, java_name) if x)
