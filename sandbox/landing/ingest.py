"""Landing: source → declared schema → data contract → one atomic Delta commit → catalog.

* The source is a file given on the command line, or the manifest's ``source:`` block (any
  connector kind: ``twh ingest DATASET`` re-runs it). Every batch is converted strictly to the
  declared types and checked against the dataset's Great Expectations suite while it streams
  into the Delta writer; the first failure aborts the write, so a bad load commits nothing (its
  Parquet parts are never added to the Delta log), and it is quarantined with a report for the
  steward. With ``load.bad_rows: quarantine`` (a steward's opt-in) failing rows are set aside
  with the report and the good rows commit — unless more than ``load.max_bad_rows`` fail.
* Load modes (``load.mode``, or ``--mode``): append, overwrite, merge on ``load.keys``,
  incremental on ``load.watermark`` (only rows above the last committed watermark, which the
  commit records). See :mod:`sandbox.landing.loads`.
* The load id is a hash of the dataset, the mode and the content (the file's SHA-256; for
  ``sql``/``http`` the staged rows' hash): re-running a finished load changes nothing. A crash
  after the Delta commit but before the catalog update is repaired on the retry.
* Missing, undeclared or retyped columns are schema drift: refused, naming the columns, until a
  steward runs ``twh dataset migrate``.
* Each version's lineage (source, connector, load id, file hash or query, rows in / out /
  quarantined, validation result) is stored in the catalog; ``twh dataset history`` shows it.
* With the ``spark`` engine (``--engine spark`` or ``TWH_ENGINE=spark``) CSV and Parquet files in
  append/overwrite mode land on Spark + delta-spark instead, same rules: :mod:`sandbox.landing.spark`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from connectors import (
    FILE_KINDS,
    SUFFIXES,
    ConnectorError,
    Contract,
    ContractReport,
    RejectedRow,
    Rejects,
    SourceError,
    file_sha256,
    get_source,
    schema_report,
)

from ..auth import Principal, Role
from ..catalog.db import Dataset, DatasetVersion, Quarantine
from ..context import Context, get_dataset, stewards_of
from ..datasets.declared import column_specs, contract_of
from ..datasets.manifest import DatasetManifest, parse_manifest
from ..datasets.sources import LoadMode, SourceBlock
from ..errors import Conflict, Forbidden, InvalidInput, NotFound, ValidationFailed
from ..tables import staged as two_step
from ..tables import storage
from ..tables.uris import Location
from .loads import LoadWriter, NothingToLoad, WriteResult
from .plan import LoadPlan, load_id_for, validation_summary
from .staging import Staged, stage

log = logging.getLogger(__name__)

#: called after each batch with (rows so far, bytes read so far or None, total bytes or None)
Progress = Callable[[int, int | None, int | None], None]


class _ContractFailed(Exception):
    def __init__(self, report: ContractReport) -> None:
        super().__init__("contract failed")
        self.report = report


@dataclass
class _Counts:
    rows_in: int = 0
    rows_out: int = 0
    report: ContractReport | None = None
    contract_rejects: list[RejectedRow] = field(default_factory=list)
    contract_rejected: int = 0
    #: rows the connector set aside (to map stream rows back to source rows)
    source_rejects: Rejects = field(default_factory=Rejects)


class Ingest:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- the entry point ----------------------------------------------------------------------
    def ingest(self, principal: Principal, dataset: str, path: Path | None = None, *, encoding: str | None = None,
               kind: str | None = None, source_name: str | None = None, mode: str | None = None,
               progress: Progress | None = None, engine: str | None = None) -> dict[str, Any]:
        return self._ingest(principal, dataset, path, encoding=encoding, kind=kind, source_name=source_name,
                            mode=mode, progress=progress, engine=engine)

    def _reconcile(self, principal: Principal, dataset: str) -> None:
        """Record every committed load the catalog never heard of. A load killed between its Delta
        commit and the catalog write is repaired when it is retried (``already_loaded``); if it is
        never retried, the next load into the table would publish its rows (queries pin the latest
        recorded version, which includes them) without lineage. So each ingest first walks the
        table's history and records such commits, marked ``recovered``, before writing anything."""
        with self.ctx.db.read() as s:
            ds = get_dataset(s, dataset)
            known = set(s.execute(select(DatasetVersion.load_id).where(DatasetVersion.dataset_id == ds.id)).scalars())
            table = self.ctx.table(ds.table_path)
        try:
            commits = storage.history(table)
        except NotFound:  # no table yet
            return
        for c in commits:
            meta = c["metadata"]
            load_id = meta.get(storage.LOAD_ID_KEY)
            if not load_id or load_id in known or meta.get("twh.operation") == "migrate":
                continue
            self.record(principal, dataset, load_id, c["version"], c["rows_added"],
                        {"file_name": meta.get("twh.file_name"), "source_sha256": meta.get("twh.source_sha256"),
                         "load_id": load_id, "recovered": True, "rows": c["rows_added"],
                         "rows_out": c["rows_added"]})

    def _ingest(self, principal: Principal, dataset: str, path: Path | None, *, encoding: str | None,
                kind: str | None, source_name: str | None, mode: str | None, progress: Progress | None,
                engine: str | None) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            ds = get_dataset(s, dataset)
            if principal.role is not Role.ADMIN and principal.name not in stewards_of(s, ds.id):
                raise Forbidden(f"only a steward of {dataset} (or an admin) may ingest into it")
            manifest = parse_manifest(ds.manifest, source=dataset)
            table = self.ctx.table(ds.table_path)
        self._reconcile(principal, dataset)
        try:
            load_mode = LoadMode(mode) if mode else manifest.load.mode
        except ValueError:
            raise InvalidInput(f"unknown load mode {str(mode)[:20]!r}; use one of {[m.value for m in LoadMode]}",
                               details={"field": "mode"}) from None
        problem = manifest.load.check_columns({c.name: c.type for c in manifest.columns}, load_mode)
        if problem:
            raise InvalidInput(problem, details={"field": "load"})
        plan = self._plan(manifest, path, kind, encoding, source_name)
        if (engine or self.ctx.settings.engine) == "spark":
            from .spark import SparkLoad, spark_unsupported

            why_not = spark_unsupported(plan, load_mode, manifest, remote=bool(self.ctx.settings.spark_remote))
            if why_not is None:
                return SparkLoad(self).run(principal, dataset, manifest, plan, load_mode, table)
            if engine == "spark":  # asked for explicitly: say why it cannot be
                raise InvalidInput(f"--engine spark lands CSV and Parquet files in append or overwrite mode: "
                                   f"{why_not}", details={"field": "engine"})
        elif engine not in (None, "duckdb"):
            raise InvalidInput(f"unknown engine {str(engine)[:20]!r}; use duckdb or spark", details={"field": "engine"})
        specs = column_specs(manifest)
        bad_rows = manifest.load.bad_rows
        staged: Staged | None = None
        stream: Any = None
        open_error: SourceError | None = None
        writer = LoadWriter(table, load_mode, manifest.load)
        try:
            try:
                if plan.is_file and load_mode is not LoadMode.INCREMENTAL:
                    # Opening a file source is its first pass (hash + file checks): its SHA-256
                    # names the load, so the file is not hashed twice before a row is read. A
                    # source that can read in one pass (CSV) defers the hash to the parse in an
                    # append or overwrite: the load's parts are staged, and committed under the
                    # id that hash gives (_load_in_one_pass).
                    source = get_source(plan.kind)
                    one_pass = (load_mode in (LoadMode.APPEND, LoadMode.OVERWRITE) and table.is_local
                                and getattr(source, "one_pass", False))  # local: see tables.staged._remove
                    try:
                        stream = source.open(plan.target, specs, plan.options, bad_rows=bad_rows,
                                             **({"hash_first": False} if one_pass else {}))
                        sha = getattr(stream, "sha256", None) or (None if one_pass else file_sha256(plan.target))
                    except SourceError as exc:  # reported with the load id below (quarantine)
                        open_error, sha = exc, file_sha256(plan.target)
                    if sha is None:
                        return self._load_in_one_pass(principal, dataset, manifest, plan, specs, table, stream,
                                                      writer, progress)
                    load_id = load_id_for(dataset, sha, load_mode.value)
                    content = {"source_sha256": sha}
                else:
                    if plan.is_file:
                        sha = file_sha256(plan.target)
                        load_id = load_id_for(dataset, sha, load_mode.value)
                        done = self.already_loaded(dataset, table, load_id, principal, plan.name, sha)
                        if done is not None:
                            return done
                    stream = get_source(plan.kind).open(plan.target, specs, plan.options, bad_rows=bad_rows)
                    with stream:
                        staged = stage(self.ctx.settings.home / "staging" / dataset, stream.schema,
                                       _reporting(stream, progress), writer.incremental_filter())
                    content = {"source_sha256": sha} if plan.is_file else {"content_sha256": staged.sha256}
                    if not plan.is_file:
                        load_id = load_id_for(dataset, staged.sha256, load_mode.value)
            except SourceError as exc:
                failed_id = load_id_for(dataset, hashlib.sha256(json.dumps(
                    [plan.source, time.time()], default=str).encode()).hexdigest(), "failed")
                self.refuse_drift(principal, dataset, plan, exc)
                self.quarantine(principal, dataset, failed_id, plan, {}, schema_report(exc))
            except ConnectorError as exc:  # bad options: the request is wrong, not the data
                raise InvalidInput(str(exc)) from exc

            done = self.already_loaded(dataset, table, load_id, principal, plan.name,
                                        content.get("source_sha256") or content.get("content_sha256"))
            if done is not None:
                return done
            if staged is not None and staged.rows == 0 and stream is not None and stream.rejects.count == 0:
                if load_mode is LoadMode.INCREMENTAL:
                    return {"status": "up_to_date", "dataset": dataset, "version": storage.latest_version(table),
                            "rows": 0, "load_id": load_id, "watermark": writer.previous_watermark}
            return self._load(principal, dataset, manifest, plan, specs, load_id, content, stream, staged, writer,
                              progress, open_error)
        finally:
            if staged is not None:
                staged.remove()
            if stream is not None:
                stream.close()

    def _load_in_one_pass(self, principal: Principal, dataset: str, manifest: DatasetManifest, plan: LoadPlan,
                          specs: list, table: Location, stream: Any, writer: LoadWriter,
                          progress: Progress | None) -> dict[str, Any]:
        """An append or overwrite of a file read once: its Parquet parts are staged while it is
        parsed and hashed; the hash then names the load, and the parts are committed under that
        id, or discarded if that file is already in the table (the same answer as a re-ingest
        that hashed first). Nothing is in any version before the commit."""
        counts = _Counts()
        rejects: Rejects = stream.rejects
        checked = self._checked(_reporting(stream, progress), manifest, counts, rejects)

        def quarantine(report: ContractReport) -> None:  # a failed load is named by the file as it is now
            sha = stream.sha256 or file_sha256(plan.target)
            self.quarantine(principal, dataset, load_id_for(dataset, sha, writer.mode.value), plan,
                            {"source_sha256": sha}, report)

        with self._refusing(principal, dataset, plan, quarantine):
            try:
                parts = writer.stage(checked, stream.schema)
            except (_ContractFailed, NothingToLoad, SourceError) as exc:
                skipped = stream.skipped_check()  # e.g. a NUL byte: refused first, as a first pass would
                if skipped is not None and skipped is not exc:
                    raise skipped from None
                raise
        try:
            sha = stream.sha256
            load_id = load_id_for(dataset, sha, writer.mode.value)
            content = {"source_sha256": sha}
            done = self.already_loaded(dataset, table, load_id, principal, plan.name, sha)
            if done is not None:
                two_step.discard(table, parts)
                return done
            metadata = _commit_metadata(load_id, dataset, writer, plan, content)
        except BaseException:
            two_step.discard(table, parts)
            raise
        with self.ctx.commit_lock(writer.table):  # object storage: one writer per table (catalog.locks)
            result = writer.commit(parts, metadata)  # discards the parts itself if it does not land
        return self._recorded(principal, dataset, plan, load_id, content, stream, writer, counts, rejects, result)

    def _load(self, principal: Principal, dataset: str, manifest: DatasetManifest, plan: LoadPlan, specs: list,
              load_id: str, content: dict[str, Any], stream: Any, staged: Staged | None, writer: LoadWriter,
              progress: Progress | None, open_error: SourceError | None = None) -> dict[str, Any]:
        counts = _Counts()
        bad_rows = manifest.load.bad_rows

        def quarantine(report: ContractReport) -> None:
            self.quarantine(principal, dataset, load_id, plan, content, report)

        try:
            with self._refusing(principal, dataset, plan, quarantine):
                if open_error is not None:
                    raise open_error
                if staged is None:
                    if stream is None:
                        stream = get_source(plan.kind).open(plan.target, specs, plan.options, bad_rows=bad_rows)
                    batches: Iterator[pa.RecordBatch] = _reporting(stream, progress)
                    schema = stream.schema
                else:
                    batches, schema = staged.batches(), staged.schema
                rejects: Rejects = stream.rejects if stream is not None else Rejects()
                checked = self._checked(batches, manifest, counts, rejects)
                metadata = _commit_metadata(load_id, dataset, writer, plan, content)
                with self.ctx.commit_lock(writer.table):  # object storage: one writer per table (catalog.locks)
                    result = writer.write(checked, schema, metadata, staged=staged)
        finally:
            if stream is not None:
                stream.close()
        return self._recorded(principal, dataset, plan, load_id, content, stream, writer, counts, rejects, result)

    @contextmanager
    def _refusing(self, principal: Principal, dataset: str, plan: LoadPlan,
                  quarantine: Callable[[ContractReport], None]) -> Iterator[None]:
        """How a load that fails while its rows are read ends: a failed contract or source is
        quarantined (a drifted schema refused first); no rows, or bad options, are the caller's error."""
        try:
            yield
        except _ContractFailed as exc:
            quarantine(exc.report)
        except SourceError as exc:
            self.refuse_drift(principal, dataset, plan, exc)
            quarantine(schema_report(exc))
        except NothingToLoad as exc:
            raise InvalidInput(f"{plan.name}: {exc}; nothing was committed") from None
        except ConnectorError as exc:
            raise InvalidInput(str(exc)) from exc

    def _recorded(self, principal: Principal, dataset: str, plan: LoadPlan, load_id: str, content: dict[str, Any],
                  stream: Any, writer: LoadWriter, counts: _Counts, rejects: Rejects,
                  result: WriteResult) -> dict[str, Any]:
        """The catalog and audit record of a committed load, with its lineage."""
        rejected = rejects.count + counts.contract_rejected
        lineage = {
            "source": plan.source, "connector": stream.kind if stream is not None else plan.kind,
            "file_name": plan.name, "load_id": load_id, "mode": writer.mode.value, **content,
            "query": plan.source.get("query"), "options": plan.options,
            "rows_in": counts.rows_in + rejects.count, "rows_out": counts.rows_out, "rows_quarantined": rejected,
            "rows": counts.rows_out,
            "validation": validation_summary(counts.report, rejected),
            **result.lineage,
        }
        if stream is not None:
            lineage["connector_lineage"] = {k: v for k, v in stream.describe().items() if k not in ("options",)}
            lineage["query"] = lineage["connector_lineage"].get("query") or lineage["query"]
        if rejected:
            self._write_row_quarantine(dataset, load_id, plan, rejects.rows + counts.contract_rejects, rejected,
                                       counts.report)
        return self.record(principal, dataset, load_id, result.version, counts.rows_out, lineage,
                            quarantined=rejected)

    # -- pieces -------------------------------------------------------------------------------
    def _plan(self, manifest: DatasetManifest, path: Path | None, kind: str | None, encoding: str | None,
              source_name: str | None) -> LoadPlan:
        declared: SourceBlock | None = manifest.source
        if path is None:
            if declared is None:
                raise InvalidInput(f"{manifest.name} has no source: block in its manifest; give a file to ingest",
                                   details={"field": "file"})
            target, options, kind = declared.target(), dict(declared.options), declared.kind
            if declared.inner_kind in FILE_KINDS:
                _require_file(Path(target))
            name = source_name or (Path(target).name if declared.inner_kind in FILE_KINDS else declared.kind)
            return LoadPlan(kind, target, options, name, declared.inner_kind in FILE_KINDS, declared.describe())
        path = Path(path)
        _require_file(path)
        if kind is None and declared is not None and (declared.inner_kind in FILE_KINDS):
            kind = declared.kind  # the manifest says how its files are read (e.g. ohlc via csv)
        kind = kind or SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise InvalidInput(f"cannot tell the format of {path.name!r}: use a .csv, .parquet, .xlsx or .jsonl file "
                               "(or --kind)", details={"field": "file"})
        options: dict[str, Any] = dict(declared.options) if (declared is not None and declared.kind == kind) else {}
        inner = options.get("via", "csv") if kind == "ohlc" else kind
        if inner not in FILE_KINDS:
            raise InvalidInput(f"a file cannot be read by the {kind} connector", details={"field": "kind"})
        if encoding:
            if inner != "csv":
                raise InvalidInput("--encoding applies to CSV files only", details={"field": "encoding"})
            if kind == "ohlc":
                options["via_options"] = {**options.get("via_options", {}), "encoding": encoding}
            else:
                options["encoding"] = encoding
        if path.suffix.lower() == ".tsv" and kind == "csv":
            options.setdefault("delimiter", "\t")
        name = source_name or path.name
        return LoadPlan(kind, path, options, name, True, {"kind": kind, "file_name": name})

    def _checked(self, batches: Iterator[pa.RecordBatch], manifest: DatasetManifest, counts: _Counts,
                 rejects: Rejects) -> Iterator[pa.RecordBatch]:
        contract = contract_of(manifest)
        counts.source_rejects = rejects
        row_mode = manifest.load.bad_rows == "quarantine"
        limit = manifest.load.max_bad_rows
        for batch in batches:
            offset = counts.rows_in
            counts.rows_in += batch.num_rows
            if contract is not None:
                report = contract.validate(batch, row_offset=offset)
                if not report.success and row_mode:
                    batch, report = self._drop_failing_rows(contract, batch, offset, counts, limit, report)
                counts.report = report if counts.report is None else counts.report.merge(report)
                if not report.success:
                    raise _ContractFailed(counts.report)
            if rejects.count + counts.contract_rejected > limit:
                raise _ContractFailed(_too_many(rejects.count + counts.contract_rejected, limit, counts))
            counts.rows_out += batch.num_rows
            yield batch

    def _drop_failing_rows(self, contract: Contract, batch: pa.RecordBatch, offset: int, counts: _Counts,
                           limit: int, first: ContractReport) -> tuple[pa.RecordBatch, ContractReport]:
        """Row-quarantine mode: find the failing rows by bisection, set them aside, re-check the rest."""
        bad: list[int] = []

        def walk(lo: int, hi: int) -> None:
            if lo >= hi or counts.contract_rejected + len(bad) > limit:
                return
            if contract.validate(batch.slice(lo, hi - lo)).success:
                return
            if hi - lo == 1:
                bad.append(lo)
                return
            mid = (lo + hi) // 2
            walk(lo, mid)
            walk(mid, hi)

        walk(0, batch.num_rows)
        if counts.contract_rejected + len(bad) > limit or not bad:
            return batch, first  # too many, or an aggregate check: the whole load fails
        skipped = sorted(r.row for r in counts.source_rejects.rows)
        for p in bad:
            one = contract.validate(batch.slice(p, 1), row_offset=offset + p)
            counts.contract_rejected += 1
            if len(counts.contract_rejects) < 1000:
                counts.contract_rejects.append(RejectedRow(
                    row=_source_row(offset + p + 1, skipped), reasons=tuple(f.message for f in one.failures),
                    examples=tuple(e for f in one.failures for e in f.unexpected_examples)[:5]))
        keep = pa.array([i not in set(bad) for i in range(batch.num_rows)])
        good = batch.filter(keep)
        return good, contract.validate(good, row_offset=offset) if good.num_rows else _empty_report(first)

    def refuse_drift(self, principal: Principal, dataset: str, plan: LoadPlan, exc: SourceError) -> None:
        """Missing, undeclared or retyped columns: refuse (no quarantine) until a steward migrates."""
        retyped = [v.column for v in exc.violations if v.check == "retyped"]
        if exc.check != "header" and not retyped:
            return
        missing = list(exc.details.get("missing") or [])
        added = list(exc.details.get("extra") or [])
        if not (missing or added or retyped):
            return  # duplicate or empty header names: bad data, not a new schema
        drift: dict[str, Any] = {"added": added, "missing": missing, "retyped": retyped}
        if missing and added and len(missing) == len(added):
            drift["renamed"] = dict(zip(missing, added, strict=True))
        parts = [f"{k} {v}" for k, v in drift.items() if v]
        self.ctx.record(principal, "ingest.refused", "dataset", dataset,
                        {"reason": "schema_drift", "source": plan.name, "drift": drift})
        raise Conflict(f"schema drift in {plan.name}: " + "; ".join(parts) + f". Nothing was committed; a steward "
                       f"must approve the new schema with `twh dataset migrate {dataset} NEW_MANIFEST.yaml`",
                       details={"dataset": dataset, "drift": drift, "rule": "schema_drift"})

    def already_loaded(self, dataset: str, table: Location, load_id: str, principal: Principal, name: str,
                       source_sha: str | None) -> dict[str, Any] | None:
        with self.ctx.db.read() as s:
            ds = get_dataset(s, dataset)
            row = s.execute(select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id,
                                                         DatasetVersion.load_id == load_id)).scalar_one_or_none()
            if row is not None:
                return {"status": "already_loaded", "dataset": dataset, "version": row.version, "rows": row.rows,
                        "load_id": load_id}
        version = storage.find_load(table, load_id)
        if version is None:
            return None
        # The Delta commit landed but the catalog never heard of it (a crash in between): record it now.
        rows = storage.rows_added(table, version)
        return self.record(principal, dataset, load_id, version, rows,
                            {"file_name": name, "source_sha256": source_sha, "load_id": load_id, "recovered": True,
                             "rows": rows, "rows_out": rows})

    def record(self, principal: Principal, dataset: str, load_id: str, version: int, rows: int,
               lineage: dict[str, Any], *, quarantined: int = 0) -> dict[str, Any]:
        with self.ctx.recorded(principal, "ingest.committed", "dataset", dataset,
                               {"load_id": load_id, "version": version, "rows": rows,
                                "source_sha256": lineage.get("source_sha256") or lineage.get("content_sha256"),
                                "file_name": lineage.get("file_name"), "mode": lineage.get("mode", "append"),
                                "rows_quarantined": quarantined}) as s:
            ds = s.execute(select(Dataset).where(Dataset.name == dataset).with_for_update()).scalar_one()
            if s.execute(select(DatasetVersion.id).where(DatasetVersion.dataset_id == ds.id,
                                                         DatasetVersion.load_id == load_id)).first() is None:
                # (else a concurrent ingest's _reconcile recorded this commit first: same version, same rows)
                s.add(DatasetVersion(dataset_id=ds.id, version=version, load_id=load_id, rows=rows, lineage=lineage))
            if quarantined:
                s.add(Quarantine(dataset_id=ds.id, load_id=load_id,
                                 report={"load_id": load_id, "rows_quarantined": quarantined, "committed": True,
                                         "file": f"quarantine/{dataset}/{load_id}.json"}))
            ds.current_version = max(ds.current_version, version)
            manifest = ds.manifest
            table = self.ctx.table(ds.table_path)
        self._prepare_queries(dataset, manifest, table, version)
        out = {"status": "committed", "dataset": dataset, "version": version, "rows": rows, "load_id": load_id}
        if quarantined:
            out["rows_quarantined"] = quarantined
        if "watermark" in lineage:
            out["watermark"] = lineage["watermark"]
        if "merge" in lineage:
            out["merge"] = lineage["merge"]
        return out

    def _prepare_queries(self, dataset: str, manifest_json: dict[str, Any], table: Location, version: int) -> None:
        """After the commit, build what the version's first query would otherwise build: in dp
        mode its heavy-unit table and bounded copy (:func:`sandbox.gate.dp_bounding.prepare_version`),
        so that its first dp query costs what a later one does instead of ~20× more; in sdc mode with
        a privacy unit, the differencing guard's unit dictionary of the version. Best effort: if it
        fails, the first query builds them, as before."""
        policy_json = manifest_json.get("policy") or {}
        mode = policy_json.get("release_mode", "sdc")
        if not (mode == "dp" or (mode == "sdc" and policy_json.get("privacy_unit"))):
            return
        from ..broker.queries import BOUNDED_COPIES
        from ..gate import TableInfo
        from ..gate.differencing import DifferencingGuard
        from ..gate.dp_bounding import prepare_version

        try:
            manifest = parse_manifest(manifest_json, source=dataset)
            columns = tuple(c.name for c in manifest.columns)
            info = TableInfo(name=dataset, policy=manifest.build_policy(), columns=columns)
            snap = storage.pin_snapshot(table, dataset, version)
            if mode == "dp":
                prepare_version(snap, info, self.ctx.settings.home / BOUNDED_COPIES)
            else:  # sdc with a privacy unit: the differencing guard's unit dictionary of the version
                unit = [c for c in columns if c.casefold() == str(policy_json["privacy_unit"]).casefold()]
                if unit:
                    settings = self.ctx.settings
                    guard = DifferencingGuard.for_warehouse(self.ctx.db, settings.home, settings.secrets_dir,
                                                            shared=settings.shared_root)
                    guard.prepare_version(snap, unit[0])
        except Exception:  # noqa: BLE001 - an optimisation only: never fails a committed load
            log.warning("%s v%s could not be prepared for its queries; its first query will do it",
                        dataset, version, exc_info=True)

    def _write_row_quarantine(self, dataset: str, load_id: str, plan: LoadPlan, rows: list[RejectedRow], count: int,
                              report: ContractReport | None) -> None:
        storage.write_quarantine_report(self.ctx.settings.home, dataset, load_id, {
            "dataset": dataset, "load_id": load_id, "file_name": plan.name, "source": plan.source,
            "mode": "rows", "committed": True, "rows_quarantined": count,
            "rows": [r.to_dict(include_examples=True) for r in rows],
            "contract": report.to_dict(include_examples=True) if report is not None else None})

    def quarantine(self, principal: Principal, dataset: str, load_id: str, plan: LoadPlan, content: dict[str, Any],
                   contract: ContractReport) -> None:
        name = plan.name
        source_sha = content.get("source_sha256") or content.get("content_sha256")
        report = {"dataset": dataset, "load_id": load_id, "file_name": name, "source_sha256": source_sha,
                  "source": plan.source, "text": contract.to_text(include_examples=True),
                  **contract.to_dict(include_examples=True)}
        storage.write_quarantine_report(self.ctx.settings.home, dataset, load_id, report)
        # The audit record names the failed checks and counts, never the example values.
        failed = [{"type": f.type, "column": f.column, "count": f.unexpected_count} for f in contract.failures]
        with self.ctx.recorded(principal, "ingest.quarantined", "dataset", dataset,
                               {"load_id": load_id, "source_sha256": source_sha, "file_name": name,
                                "failed": failed}) as s:
            ds = s.execute(select(Dataset).where(Dataset.name == dataset)).scalar_one()
            s.add(Quarantine(dataset_id=ds.id, load_id=load_id, report=report))
        summary = "; ".join(f.message for f in contract.failures[:5])
        raise ValidationFailed(f"{name} failed its data contract and was quarantined (nothing committed): {summary}",
                               details={"load_id": load_id, "dataset": dataset, "failed": failed})


def _commit_metadata(load_id: str, dataset: str, writer: LoadWriter, plan: LoadPlan,
                     content: dict[str, Any]) -> dict[str, str]:
    """What the load's Delta commit carries (``commitInfo``): its id, dataset, mode, connector, content hash."""
    return {"twh.load_id": load_id, "twh.dataset": dataset, "twh.mode": writer.mode.value, "twh.connector": plan.kind,
            **{f"twh.{k}": v for k, v in content.items()}}


def _reporting(stream: Any, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    for batch in stream:
        if progress is not None:
            progress(stream.rows_read, stream.progress(), stream.size)
        yield batch


def _source_row(n: int, skipped: list[int]) -> int:
    """The source row number of the ``n``-th row that the connector kept (1-based), given the
    sorted source row numbers it set aside."""
    row = n
    for r in skipped:
        if r <= row:
            row += 1
        else:
            break
    return row


def _empty_report(like: ContractReport) -> ContractReport:
    from dataclasses import replace

    return ContractReport(success=True, results=tuple(replace(r, success=True, unexpected_count=0,
                                                              unexpected_examples=(), unexpected_rows=(),
                                                              message=r.message) for r in like.results),
                          rows_checked=0)


def _too_many(n: int, limit: int, counts: _Counts) -> ContractReport:
    from connectors import ExpectationOutcome

    return ContractReport(success=False, rows_checked=counts.rows_in, kind="schema", results=(ExpectationOutcome(
        type="row_quarantine_limit", column=None, success=False, unexpected_count=n,
        message=f"{n} row(s) failed, more than load.max_bad_rows={limit}: the whole load is quarantined"),))


def _require_file(path: Path) -> None:
    """A missing input is the request's mistake, not bad data: ``not_found`` naming the path, before
    any load id, quarantine report or ``ingest.quarantined`` record exists."""
    if not path.is_file():
        raise NotFound(f"input file {path} does not exist" if not path.exists() else f"input {path} is not a file",
                       details={"field": "file", "path": str(path)})
