"""The audit log: an append-only, hash-chained, sealed record of everything that happens.

Each record carries the SHA-256 of the previous record (``prev_hash``) and its own ``hash`` over a
canonical JSON encoding of all its fields. ``seal`` is an HMAC of ``hash`` under a key kept in the
warehouse's ``secrets/`` directory (never in the database), so an attacker who can rewrite the
catalog still cannot rebuild a valid chain. The chain head (last seq and hash) lives in a one-row
table whose update serialises concurrent appenders; it is sealed too (HMAC over seq and hash), so
deleting the tail and rewriting the head needs the key. After each commit the head is appended
to the *anchors* file — configurable, and meant to live outside the warehouse home — and, when
configured, sent to syslog/journald, an append-only sink the warehouse cannot rewrite.

:func:`AuditLog.append` must be called inside the same transaction as the action it records: if
the audit write fails, the transaction — and with it the action — is rolled back.

:meth:`AuditLog.verify` never stops at the first problem and never crashes on a record it cannot
decode: it names the first bad record and reports how many are bad, which, and what else is wrong
(head, anchors). What it cannot find: a complete rewrite by someone who holds the key *and* can
rewrite every anchor sink (see ARCHITECTURE.md, "The audit log").

Records never hold raw values: ids, counts, hashes, SQL text written by the user, decisions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import logging.handlers
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Text, cast, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..catalog.db import AuditHead, AuditRecord, Database
from ..catalog.keys import load_or_create_key
from ..errors import AuditWriteFailed, InvalidInput
from .caps import RefusalCap

GENESIS = "0" * 64
_FIELDS = ("seq", "ts", "actor", "tenant", "action", "object_type", "object_id", "details", "prev_hash")
#: how many bad records and problems a verification lists by name (it counts all of them)
MAX_LISTED = 100
_ANCHOR = re.compile(r"^(\d{1,19}) ([0-9a-f]{64})$")
log = logging.getLogger(__name__)


def _same(expected: str, stored: Any) -> bool:
    """Constant-time comparison that takes whatever a tampered column holds (compare_digest
    refuses str with non-ASCII characters)."""
    return isinstance(stored, str) and hmac.compare_digest(expected.encode(), stored.encode("utf-8", "replace"))


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def record_hash(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: fields[k] for k in _FIELDS})).hexdigest()


@dataclass(frozen=True)
class Actor:
    """Who did something: a user name, its tenant, and through which entry point."""

    name: str
    tenant: str


#: the warehouse itself (the same name and tenant as ``sandbox.auth.SYSTEM``)
SYSTEM_ACTOR = Actor("system", "platform")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    #: records present in the log
    records: int
    #: seq of the first record found modified, deleted, reordered, unsealed or undecodable (None if ok)
    first_bad_seq: int | None = None
    #: the first problems, in one line
    problem: str = ""
    #: how many records failed a check (each counted once, whatever it failed)
    bad_records: int = 0
    #: how many seqs are absent (gaps, and a tail the head or the anchors say existed)
    missing: int = 0
    #: the first ``MAX_LISTED`` bad or missing seqs
    bad_seqs: tuple[int, ...] = ()
    #: every problem found, one line each (the first ``MAX_LISTED``)
    problems: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": self.records, "first_bad_seq": self.first_bad_seq, "problem": self.problem,
                "bad_records": self.bad_records, "missing": self.missing, "bad_seqs": list(self.bad_seqs),
                "problems": list(self.problems)}


class _Findings:
    """What a verification found so far: counts are exact, lists are capped."""

    def __init__(self) -> None:
        self.bad_records = 0
        self.missing = 0
        self.first: int | None = None
        self.seqs: list[int] = []
        self.problems: list[str] = []

    def note(self, seq: int | None, problem: str, *, bad_record: bool = False, missing: int = 0) -> None:
        self.bad_records += int(bad_record)
        self.missing += missing
        if seq is not None:
            self.first = seq if self.first is None else min(self.first, seq)
            if len(self.seqs) < MAX_LISTED:
                self.seqs.append(seq)
        if len(self.problems) < MAX_LISTED:
            self.problems.append(problem)

    def result(self, records: int) -> VerifyResult:
        if not self.problems:
            return VerifyResult(True, records)
        extent = [f"{self.bad_records} bad record(s)"] + ([f"{self.missing} missing"] if self.missing else [])
        return VerifyResult(False, records, self.first, "; ".join(self.problems[:3]) + f" ({', '.join(extent)})",
                            self.bad_records, self.missing, tuple(self.seqs), tuple(self.problems))


class _SyslogSink(logging.handlers.SysLogHandler):
    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        log.warning("the audit anchor could not be sent to syslog")  # the record itself is committed


def _syslog(address: str) -> logging.Logger | None:
    """A private logger (not in logging's registry: one per audit log) sending to ``address``."""
    if not address:
        return None
    host, _, port = address.rpartition(":")
    target: Any = address if address.startswith("/") else (host, int(port)) if port.isdigit() and host else None
    if target is None:
        raise InvalidInput(f"audit_syslog: use a socket path (/dev/log) or HOST:PORT, not {address!r}",
                           details={"field": "audit_syslog"})
    try:
        handler = _SyslogSink(address=target, facility=logging.handlers.SysLogHandler.LOG_AUTH)
    except OSError as exc:  # fail closed: an operator asked for this sink
        raise InvalidInput(f"audit_syslog: cannot open {address!r} ({exc.strerror or exc})",
                           details={"field": "audit_syslog"}) from None
    sink = logging.Logger("twh.audit.anchors", logging.INFO)
    sink.addHandler(handler)
    sink.propagate = False
    return sink


class AuditLog:
    def __init__(self, db: Database, secrets_dir: Path, anchors_path: Path, *, syslog: str = "",
                 refusals_per_job: int = 50) -> None:
        self.db = db
        self._key = load_or_create_key(secrets_dir / "audit.key")
        self._anchors = anchors_path
        self._anchors.parent.mkdir(parents=True, exist_ok=True)
        self._syslog = _syslog(syslog)
        #: per job: refused queries recorded verbatim up to a bound, the rest counted (:mod:`.caps`)
        self.refusals = RefusalCap(self._refusal_summary, refusals_per_job)
        self._seal_legacy_head()

    @property
    def anchors_path(self) -> Path:
        return self._anchors

    def _seal(self, digest: str) -> str:
        return hmac.new(self._key, digest.encode(), hashlib.sha256).hexdigest()

    def _head_seal(self, seq: int, digest: str) -> str:
        return hmac.new(self._key, f"head:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()

    def _refusal_summary(self, actor: Actor, job_id: str, details: dict[str, Any]) -> None:
        with self.db.transaction() as s:
            self.append(s, actor, "query.refusals_counted", "job", job_id, details)

    def _seal_legacy_head(self) -> None:
        # A catalog from before migration 0004 has an unsealed head. An empty chain's head is
        # sealed as it stands; a longer one by appending a record that says so (in the chain, for
        # the auditor) — the anchors outside the home still tell whether that head was the real one.
        with self.db.read() as s:
            head = s.execute(select(AuditHead.seq, AuditHead.seal).where(AuditHead.id == 1)).first()
        if head is None or head.seal is not None:
            return
        with self.db.transaction() as s:
            row = s.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
            if row.seal is not None:
                return  # another process sealed it meanwhile
            if row.seq == 0 and row.hash == GENESIS:
                row.seal = self._head_seal(0, GENESIS)
            else:
                self.append(s, SYSTEM_ACTOR, "audit.head_sealed", "audit", "chain",
                            {"reason": "the chain head had no seal (a catalog from before migration 0004)"})

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
            head.seq, head.hash, head.seal = rec.seq, digest, self._head_seal(rec.seq, digest)
            session.flush()
        except SQLAlchemyError as exc:
            raise AuditWriteFailed(f"audit record for {action} could not be written; the action was not done") from exc
        # After commit, the head is also anchored outside the database (see module doc).
        _after_commit(session, lambda: self._anchor(rec.seq, digest))
        return rec

    def _anchor(self, seq: int, digest: str) -> None:
        with open(self._anchors, "a", encoding="ascii") as fh:
            fh.write(f"{seq} {digest}\n")
        if self._syslog is not None:
            self._syslog.info("twh audit head %d %s", seq, digest)

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

    # -- verification ---------------------------------------------------------------------
    def _raw_rows(self, session: Session, batch: int = 5000) -> Iterator[Any]:
        """Every record as stored, ``details`` as text: a record whose JSON was broken must not
        stop the reading of the others (the ORM would raise while loading the whole batch)."""
        cols = [getattr(AuditRecord, k) for k in _FIELDS if k != "details"]
        last = 0
        while True:
            rows = session.execute(
                select(*cols, cast(AuditRecord.details, Text).label("details"), AuditRecord.hash, AuditRecord.seal)
                .where(AuditRecord.seq > last).order_by(AuditRecord.seq).limit(batch)).all()
            if not rows:
                return
            yield from rows
            try:
                last = int(rows[-1].seq)
            except (TypeError, ValueError):
                return  # a seq that is not a number sorts last: nothing readable follows it

    def _check(self, row: Any, prev: str, expected: int, found: _Findings) -> tuple[str, int]:
        """Check one stored record; note what is wrong; return the (stored) hash and seq to go on from."""
        try:
            seq = int(row.seq)
        except (TypeError, ValueError):
            found.note(None, f"a record after {expected - 1} has no readable seq ({str(row.seq)[:20]!r})",
                       bad_record=True)
            return prev, expected
        issues = []
        gap = seq - expected
        if gap > 0:
            found.note(expected, f"record {expected} is missing" if gap == 1 else
                       f"records {expected}–{seq - 1} are missing (next present is {seq})", missing=gap)
        try:
            details = json.loads(row.details) if isinstance(row.details, str) else row.details
            fields = {k: getattr(row, k) for k in _FIELDS if k != "details"} | {"details": details}
            if record_hash(fields) != row.hash:
                issues.append("was modified (hash mismatch)")
            if gap <= 0 and row.prev_hash != prev:  # after a gap the link is broken by the gap itself
                issues.append(f"does not follow record {seq - 1} (reordered or replaced)")
            if not _same(self._seal(str(row.hash)), row.seal):
                issues.append("has an invalid seal (rewritten)")
        except (ValueError, TypeError, RecursionError) as exc:
            issues.append(f"cannot be decoded ({type(exc).__name__}): its details are not JSON")
        if issues:
            found.note(seq, f"record {seq} " + " and ".join(issues), bad_record=True)
        return str(row.hash), seq + 1

    def verify(self) -> VerifyResult:
        """Recompute the chain, the head's seal and the anchors; name every record that fails."""
        found = _Findings()
        with self.db.read() as session:
            prev, expected, count = GENESIS, 1, 0
            for row in self._raw_rows(session):
                count += 1
                prev, expected = self._check(row, prev, expected, found)
            last_seq = expected - 1
            head = session.execute(select(AuditHead.seq, AuditHead.hash, AuditHead.seal)
                                   .where(AuditHead.id == 1)).first()
            self._check_head(head, last_seq, prev, count, found)
            self._check_anchors(session, last_seq, found)
        return found.result(count)

    def _check_head(self, head: Any, last_seq: int, last_hash: str, count: int, found: _Findings) -> None:
        if head is None:
            if count:
                found.note(None, "the chain has records but no head row (audit_head was deleted)")
            return
        seq, digest, seal = head
        try:
            seq = int(seq)
        except (TypeError, ValueError):
            found.note(None, f"the head row cannot be read (seq {str(seq)[:20]!r})")
            return
        if not _same(self._head_seal(seq, str(digest)), seal):
            found.note(None, "the chain head's seal is " + ("missing" if seal is None else "invalid") +
                       " (audit_head was rewritten without the key)")
        if seq > last_seq:
            found.note(last_seq + 1, f"chain ends at record {last_seq} but its head says {seq}: records were removed "
                       "(truncated)", missing=seq - last_seq)
        elif (seq, digest) != (last_seq, last_hash):
            found.note(seq + 1 if seq < last_seq else seq,
                       f"the head says record {seq} but the chain ends at {last_seq}: the head or the tail was replaced")

    def _check_anchors(self, session: Session, last_seq: int, found: _Findings, batch: int = 2000) -> None:
        """Every anchored (seq, hash) must be in the log with that hash: a tail that was cut or
        rewritten after it was anchored is found, also when the head was re-sealed with the key."""
        highest = 0
        for chunk in self._anchor_chunks(batch):
            highest = max(highest, *chunk)
            stored = dict(session.execute(select(AuditRecord.seq, AuditRecord.hash)
                                          .where(AuditRecord.seq.in_([s for s in chunk if s <= last_seq]))).all())
            for seq, digest in chunk.items():
                if seq <= last_seq and seq in stored and stored[seq] != digest:
                    found.note(seq, f"record {seq} differs from its anchor in {self._anchors.name} (rewritten)",
                               bad_record=True)
        if highest > last_seq:
            found.note(last_seq + 1, f"the anchors have record {highest} but the log ends at {last_seq}: "
                       "truncated or rewritten", missing=highest - last_seq)

    def _anchor_chunks(self, batch: int) -> Iterator[dict[int, str]]:
        try:
            fh = open(self._anchors, "rb")
        except FileNotFoundError:
            return
        with fh:
            chunk: dict[int, str] = {}
            for raw in fh:
                m = _ANCHOR.match(raw.decode("ascii", "replace").strip())
                if m:  # a line cut short by a crash mid-write is no anchor
                    chunk[int(m.group(1))] = m.group(2)
                if len(chunk) >= batch:
                    yield chunk
                    chunk = {}
            if chunk:
                yield chunk

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

