"""Landing: source file → declared schema → data contract → one atomic Delta commit → catalog.

* Every batch is converted strictly to the declared types and checked against the dataset's Great
  Expectations suite while it streams into the Delta writer; the first failure aborts the write,
  so a bad file commits nothing (its Parquet parts are never added to the Delta log), and the
  whole file is quarantined with a readable report for the steward.
* The load id is derived from the dataset and the file's SHA-256: re-ingesting the same file
  changes nothing. A crash after the Delta commit but before the catalog update is repaired on
  the retry (the load id is found in the Delta history and recorded then).
* The catalog's ``current_version`` is what queries pin, so a Delta version the catalog has not
  recorded is never read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from connectors import (
    Contract,
    ContractReport,
    ConnectorError,
    SourceError,
    file_sha256,
    get_source,
    schema_report,
)

from . import storage
from .auth import Principal, Role
from .context import Context, get_dataset, stewards_of
from .datasets import column_specs
from .db import Dataset, DatasetVersion, Quarantine
from .errors import Forbidden, InvalidInput, ValidationFailed
from .manifest import DatasetManifest, parse_manifest

_KINDS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class _ContractFailed(Exception):
    def __init__(self, report: ContractReport) -> None:
        super().__init__("contract failed")
        self.report = report


def load_id_for(dataset: str, source_sha256: str) -> str:
    return "ld_" + hashlib.sha256(f"{dataset}\0{source_sha256}".encode()).hexdigest()[:24]


class Ingest:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def ingest(self, principal: Principal, dataset: str, path: Path, *, encoding: str | None = None,
               kind: str | None = None, source_name: str | None = None) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            ds = get_dataset(s, dataset)
            if principal.role is not Role.ADMIN and principal.name not in stewards_of(s, ds.id):
                raise Forbidden(f"only a steward of {dataset} (or an admin) may ingest into it")
            manifest = parse_manifest(ds.manifest, source=dataset)
            table = Path(ds.table_path)
        path = Path(path)
        kind = kind or _KINDS.get(path.suffix.lower())
        if kind is None:
            raise InvalidInput(f"cannot tell the format of {path.name!r}: use a .csv or .parquet file",
                               details={"field": "file"})
        options: dict[str, Any] = {"encoding": encoding} if (encoding and kind == "csv") else {}
        if path.suffix.lower() == ".tsv":
            options["delimiter"] = "\t"
        try:
            source_sha = file_sha256(path)
        except ConnectorError as exc:
            raise InvalidInput(str(exc)) from exc
        load_id = load_id_for(dataset, source_sha)
        name = source_name or path.name

        done = self._already_loaded(dataset, table, load_id, principal, name, source_sha)
        if done is not None:
            return done
        lineage = {"connector": kind, "file_name": name, "source_sha256": source_sha, "options": options}
        try:
            stream = get_source(kind).open(path, column_specs(manifest), options)
            rows = [0]
            version = storage.append_batches(
                table, self._checked(stream, manifest, rows), stream.schema,
                metadata={"twh.load_id": load_id, "twh.source_sha256": source_sha, "twh.dataset": dataset},
            )
        except _ContractFailed as exc:
            self._quarantine(principal, dataset, load_id, name, source_sha, exc.report)
        except SourceError as exc:
            self._quarantine(principal, dataset, load_id, name, source_sha, schema_report(exc))
        except ConnectorError as exc:  # bad options: the request is wrong, not the data
            raise InvalidInput(str(exc)) from exc
        if rows[0] == 0:
            raise InvalidInput(f"{name} has no data rows; nothing was committed")
        return self._record(principal, dataset, load_id, version, rows[0], {**lineage, "rows": rows[0]})

    def _checked(self, stream: Any, manifest: DatasetManifest, rows: list[int]) -> Iterator[pa.RecordBatch]:
        contract = contract_of(manifest)
        with stream:
            for batch in stream:
                if contract is not None:
                    report = contract.validate(batch, row_offset=rows[0])
                    if not report.success:
                        raise _ContractFailed(report)
                rows[0] += batch.num_rows
                yield batch

    def _already_loaded(self, dataset: str, table: Path, load_id: str, principal: Principal, name: str,
                        source_sha: str) -> dict[str, Any] | None:
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
        return self._record(principal, dataset, load_id, version, rows,
                            {"file_name": name, "source_sha256": source_sha, "recovered": True, "rows": rows})

    def _record(self, principal: Principal, dataset: str, load_id: str, version: int, rows: int,
                lineage: dict[str, Any]) -> dict[str, Any]:
        with self.ctx.recorded(principal, "ingest.committed", "dataset", dataset,
                               {"load_id": load_id, "version": version, "rows": rows,
                                "source_sha256": lineage.get("source_sha256"),
                                "file_name": lineage.get("file_name")}) as s:
            ds = s.execute(select(Dataset).where(Dataset.name == dataset).with_for_update()).scalar_one()
            s.add(DatasetVersion(dataset_id=ds.id, version=version, load_id=load_id, rows=rows, lineage=lineage))
            ds.current_version = max(ds.current_version, version)
        return {"status": "committed", "dataset": dataset, "version": version, "rows": rows, "load_id": load_id}

    def _quarantine(self, principal: Principal, dataset: str, load_id: str, name: str, source_sha: str,
                    contract: ContractReport) -> None:
        report = {"dataset": dataset, "load_id": load_id, "file_name": name, "source_sha256": source_sha,
                  "text": contract.to_text(include_examples=True), **contract.to_dict(include_examples=True)}
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


def contract_of(manifest: DatasetManifest) -> Contract | None:
    """The dataset's Great Expectations suite, built once per ingest (not per batch)."""
    if not manifest.expectations:
        return None
    return Contract([e.model_dump() for e in manifest.expectations], columns=[c.name for c in manifest.columns],
                    name=manifest.name)

