"""The audit log: an append-only, hash-chained, sealed record of everything that happens.

Each record carries the SHA-256 of the previous record (``prev_hash``) and its own ``hash`` over a
canonical JSON encoding of all its fields. ``seal`` is an HMAC of ``hash`` under a key kept in the
warehouse's ``secrets/`` directory (never in the database), so an attacker who can rewrite the
catalog still cannot rebuild a valid chain. The chain head (last seq and hash) lives in a one-row
table whose update serialises concurrent appenders, and is appended to ``audit/anchors.log``
outside the database, so a truncated tail is found too.

:func:`append` must be called inside the same transaction as the action it records: if the
audit write fails, the transaction — and with it the action — is rolled back.

Records never hold raw values: ids, counts, hashes, SQL text written by the user, decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..catalog.db import AuditHead, AuditRecord, Database
from ..catalog.keys import load_or_create_key
from ..errors import AuditWriteFailed

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "actor", "tenant", "action", "object_type", "object_id", "details", "prev_hash")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: fields[k] for k in _FIELDS})).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who did something: a user name, its tenant, and through which entry point."""

    name: str
    tenant: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int
    #: seq of the first record found modified, deleted, reordered or unsealed (None if ok)
    first_bad_seq: int | None = None
    problem: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq, "problem": self.problem}


class AuditLog:
    def __init__(self, db: Database, secrets_dir: Path, anchors_path: Path) -> None:
        self.db = db
        self._key = load_or_create_key(secrets_dir / "audit.key")
        self._anchors = anchors_path
        self._anchors.parent.mkdir(parents=True, exist_ok=True)

    def _seal(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()

    def append(
        self,
        session: Session,
        actor: Actor,
        action: str,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
    ) -> AuditRecord:
        """Append one record inside ``session``'s transaction (the caller commits)."""
        try:
            head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
            if head is None:
                head = AuditHead(id=1, seq=0, hash=GENESIS)
                session.add(head)
                session.flush()
            fields: dict[str, Any] = {
                "seq": head.seq + 1,
                "ts": datetime.now(UTC).isoformat(timespec="microseconds"),
                "actor": actor.name,
                "tenant": actor.tenant,
                "action": action,
                "object_type": object_type,
                "object_id": str(object_id),
                "details": json.loads(canonical(details or {})),
                "prev_hash": head.hash,
            }
            digest = record_hash(fields)
            rec = AuditRecord(**fields, hash=digest, seal=self._seal(digest))
            session.add(rec)
            head.seq, head.hash = rec.seq, digest
            session.flush()
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"audit record for {action} could not be written; the action was not done") from exc
        # After commit, the head is also anchored outside the database (see module doc).
        _after_commit(session, lambda: self._anchor(rec.seq, digest))
        return rec

    def _anchor(self, seq: int, digest: str) -> None:
        with open(self._anchors, "a", encoding="ascii") as fh:
            fh.write(f"{seq} {digest}\n")

    def iter_records(self, session: Session, batch: int = 5000) -> Iterator[AuditRecord]:
        last = 0
        while True:
            rows = session.execute(
                select(AuditRecord).where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(batch)
            ).scalars().all()
            if not rows:
                return
            yield from rows
            last = rows[-1].seq

    def verify(self) -> VerifyResult:
        """Recompute the chain; name the first record that was modified, deleted or reordered."""
        with self.db.read() as session:
            prev, expected_seq, count = GENESIS, 1, 0
            for rec in self.iter_records(session):
                fields = {k: getattr(rec, k) for k in _FIELDS}
                if rec.seq != expected_seq:
                    return VerifyResult(False, count, expected_seq,
                                        f"record {expected_seq} is missing (next present is {rec.seq})")
                if record_hash(fields) != rec.hash:
                    return VerifyResult(False, count, rec.seq, f"record {rec.seq} was modified (hash mismatch)")
                if rec.prev_hash != prev:
                    return VerifyResult(False, count, rec.seq,
                                        f"record {rec.seq} does not follow record {rec.seq - 1} (reordered or replaced)")
                if not hmac.compare_digest(self._seal(rec.hash), rec.seal):
                    return VerifyResult(False, count, rec.seq, f"record {rec.seq} has an invalid seal (rewritten)")
                prev, expected_seq, count = rec.hash, expected_seq + 1, count + 1
            head = session.get(AuditHead, 1)
            head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
        if (head_seq, head_hash) != (count, prev):
            return VerifyResult(False, count, count + 1 if head_seq > count else head_seq,
                                f"chain ends at record {count} but its head says {head_seq}: records were removed")
        anchored = self._last_anchor()
        if anchored is not None and (anchored[0] > count or (anchored[0] == count and anchored[1] != prev)):
            return VerifyResult(False, count, min(anchored[0], count + 1),
                                f"anchors file has record {anchored[0]} but the log ends at {count}: truncated or rewritten")
        return VerifyResult(True, count)

    def _last_anchor(self) -> tuple[int, str] | None:
        try:
            with open(self._anchors, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 4096))
                lines = fh.read().decode("ascii", "replace").strip().splitlines()
        except FileNotFoundError:
            return None
        # Concurrent committers may append out of order: the highest seq is the head.
        best: tuple[int, str] | None = None
        for line in lines:
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and (best is None or int(parts[0]) > best[0]):
                best = (int(parts[0]), parts[1])
        return best

    def export_jsonl(self, out: Any) -> int:
        n = 0
        with self.db.read() as session:
            for rec in self.iter_records(session):
                out.write(json.dumps(record_dict(rec), ensure_ascii=False) + "\n")
                n += 1
        return n


def record_dict(rec: AuditRecord) -> dict[str, Any]:
    d = {k: getattr(rec, k) for k in _FIELDS}
    d["hash"] = rec.hash
    d["seal"] = rec.seal
    return d


def _after_commit(session: Session, fn: Any) -> None:
    from sqlalchemy import event

    def _run(_session: Session) -> None:
        try:
            fn()
        except OSError:
            pass  # the anchor is a second line of defence; the record itself is committed

    event.listen(session, "after_commit", _run, once=True)
