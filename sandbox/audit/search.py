"""Searching the audit log: the filters an auditor combines, pages of matches, CSV/JSON-lines export.

Pure reading: the role check and the ``audit.exported`` record happen in the facade
(:meth:`sandbox.warehouse.Warehouse.audit_search` / ``audit_export``). Times are the records' ISO
``ts`` strings (UTC), compared as text, so ``since="2026-01-31"`` or ``"2026-01-31T12:00"`` work.

    flt = AuditFilter(action="query.*", job_id="job_0123456789abcdef")
    items, total = wh.audit_search(auditor, flt, offset=0, limit=50)
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import IO, Any

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from ..catalog.db import AuditRecord, Export
from ..errors import InvalidInput
from .log import record_dict

#: the columns of the CSV export, in order (details as one JSON cell)
CSV_FIELDS = ("seq", "ts", "actor", "tenant", "action", "object_type", "object_id", "details", "prev_hash", "hash",
              "seal")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")
_TEXT = re.compile(r"^[\w.*:@-]{1,80}$")


@dataclass(frozen=True)
class AuditFilter:
    """Every field optional; set ones are combined with AND. ``action`` takes ``*`` wildcards."""

    action: str | None = None
    actor: str | None = None
    tenant: str | None = None
    #: a record's object id: a dataset name, job, export, user or token fingerprint
    object_id: str | None = None
    #: everything about one job: its own records, its queries, its export and the decisions on it
    job_id: str | None = None
    since: str | None = None
    until: str | None = None
    #: only records after this seq (keyset paging through a long log)
    after: int | None = None

    def __post_init__(self) -> None:
        if self.after is not None and (not isinstance(self.after, int) or self.after < 0):
            raise InvalidInput("after: a record seq (>= 0)", details={"field": "after"})
        for name in ("action", "actor", "tenant", "object_id", "job_id"):
            value = getattr(self, name)
            if value is not None and not _TEXT.match(value):
                raise InvalidInput(f"{name}: letters, digits and . _ - * : @ only (at most 80)",
                                   details={"field": name})
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and not _TIME.match(value):
                raise InvalidInput(f"{name}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)", details={"field": name})

    @classmethod
    def of(cls, **values: str | int | None) -> AuditFilter:
        """From form or query values: blanks mean "not set"."""
        return cls(**{k: (v.strip() or None) if isinstance(v, str) else v for k, v in values.items()})  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _where(s: Session, q: Select[Any], flt: AuditFilter) -> Select[Any]:
    if flt.after:
        q = q.where(AuditRecord.seq > flt.after)
    if flt.action:
        q = q.where(AuditRecord.action.like(flt.action.replace("*", "%")))
    if flt.actor:
        q = q.where(AuditRecord.actor == flt.actor)
    if flt.tenant:
        q = q.where(AuditRecord.tenant == flt.tenant)
    if flt.object_id:
        q = q.where(AuditRecord.object_id == flt.object_id)
    if flt.job_id:
        export_ids = list(s.execute(select(Export.id).where(Export.job_id == flt.job_id)).scalars())
        q = q.where(or_(AuditRecord.object_id == flt.job_id,
                        AuditRecord.details["job_id"].as_string() == flt.job_id,
                        AuditRecord.object_id.in_(export_ids) if export_ids else false()))
    if flt.since:
        q = q.where(AuditRecord.ts >= flt.since.replace(" ", "T"))
    if flt.until:
        until = flt.until.replace(" ", "T")
        # a bare date means "through the end of that day"
        q = q.where(AuditRecord.ts <= (until + "T99" if len(until) == 10 else until + "\uffff"))
    return q


def search(s: Session, flt: AuditFilter, *, offset: int = 0, limit: int = 100,
           newest_first: bool = False) -> tuple[list[dict[str, Any]], int]:
    """One page of matching records and the number of all matches."""
    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidInput("offset must be >= 0 and limit between 1 and 1000")
    total = s.execute(_where(s, select(func.count()).select_from(AuditRecord), flt)).scalar_one()
    order = AuditRecord.seq.desc() if newest_first else AuditRecord.seq
    rows = s.execute(_where(s, select(AuditRecord), flt).order_by(order).offset(offset).limit(limit)).scalars()
    return [record_dict(r) for r in rows], int(total)


def iter_matching(s: Session, flt: AuditFilter, batch: int = 2000) -> Iterator[dict[str, Any]]:
    """Every matching record, oldest first, in batches (keyset: the log may be long)."""
    last = 0
    while True:
        q = _where(s, select(AuditRecord), flt).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(batch)
        rows = s.execute(q).scalars().all()
        if not rows:
            return
        for r in rows:
            yield record_dict(r)
        last = rows[-1].seq


def write(records: Iterator[dict[str, Any]], out: IO[str], fmt: str) -> int:
    """Write records as JSON lines or CSV; return how many."""
    n = 0
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_FIELDS)
        for r in records:
            row = [json.dumps(r["details"], ensure_ascii=False, sort_keys=True) if k == "details" else r[k]
                   for k in CSV_FIELDS]
            # a spreadsheet must not run what a user wrote (SQL text, names) as a formula
            w.writerow([("'" + c) if isinstance(c, str) and c[:1] in ("=", "+", "-", "@") else c for c in row])
            n += 1
        return n
    if fmt != "jsonl":
        raise InvalidInput("format must be 'jsonl' or 'csv'", details={"field": "format"})
    for r in records:
        out.write(json.dumps(r, ensure_ascii=False) + "\n")
        n += 1
    return n
