"""The per-subject ledger: daily quotas, the distinct-claims limit, and the rows binding every subject
asked about (answered or refused) to the audit record written in the same transaction.

    charge(s, [("tax_payments", 10_000)], "bank_a", n=len(subjects), now)   # QuotaExceeded, nothing written
    seq = record_run(s, audit, actor, "inference.scored", run_id, details, rows, flow="batch", ...)
    index_pending(db)                                  # subject_uses from runs not indexed yet
    claims_so_far(db, "bank_a", "vat_2023@1", subjects, since)   # subject -> claims answered this period

A run's rows (subject, claim, outcome, authorisations) are written once, as Parquet, in
``product_runs.rows``; the audit record of the same transaction carries their SHA-256
(``rows_sha256``), so they cannot change unnoticed. The by-subject index ``subject_uses`` is derived
from them: written at once for a small run (a decision, a verification), and for a batch when
first needed (the subject's view, the distinct-inputs limit), under the run's row lock — inserting
100k index rows in a B-tree costs more than the whole batch's feature query, and it is not what
the guarantee rests on (the rows and their hash in the audit chain are).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from policies import check_access

from ..audit.log import Actor, AuditLog
from ..catalog.db import Database
from ..catalog.products import ProductRun, SubjectQuota, SubjectUse
from ..errors import AccessRefused, QuotaExceeded, Refused

__all__ = ["NOT_AUTHORISED", "Rows", "charge", "claims_so_far", "index_pending", "period_start", "read_rows",
           "record_run"]

#: the one reason a subject without a valid authorisation is refused (whatever the cause: none,
#: expired, revoked, another purpose, a dataset missing — and whether or not it is in the data)
NOT_AUTHORISED = "not authorised"
#: runs at most this large are indexed by subject in their own transaction
INDEX_NOW = 1000


@dataclass(frozen=True)
class Rows:
    """A run's per-subject rows, as columns (lists or Arrow string arrays)."""

    subject: Any
    claim: Any
    outcome: Any  # answered | refused
    authorisations: Any  # comma-separated ids ("" when refused)

    def __len__(self) -> int:
        return len(self.subject)

    def table(self) -> Any:
        import pyarrow as pa

        return pa.table({k: v if isinstance(v := getattr(self, k), pa.Array) else pa.array(list(v), pa.string())
                         for k in ("subject", "claim", "outcome", "authorisations")})


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "year":
        return now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _parquet(table: Any) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="lz4")
    return buf.getvalue()


def read_rows(data: bytes) -> Any:
    """A run's rows as a pyarrow Table (written by :func:`record_run`)."""
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data))


def charge(s: Session, limits: Sequence[tuple[str, int]], tenant: str, n: int, now: datetime) -> None:
    """Count ``n`` subjects against each dataset's daily limit for ``tenant``, under a row lock; refuse
    the whole request (nothing written) when one would pass its limit."""
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    for dataset, limit in sorted(limits):
        s.execute(upsert(SubjectQuota).values(dataset=dataset, tenant=tenant, day=day, used=0).on_conflict_do_nothing())
        used = s.execute(select(SubjectQuota.used).where(SubjectQuota.dataset == dataset, SubjectQuota.tenant == tenant,
                                                         SubjectQuota.day == day).with_for_update()).scalar_one()
        if used + n > limit:
            raise QuotaExceeded(f"{dataset}: tenant {tenant} may ask about {limit} subjects a day (its policy's "
                                f"subject_results.max_subjects_per_day); {used} used today",
                                details={"rule": "max_subjects_per_day", "dataset": dataset, "limit": limit,
                                         "used": used})
        s.execute(update(SubjectQuota).where(SubjectQuota.dataset == dataset, SubjectQuota.tenant == tenant,
                                             SubjectQuota.day == day).values(used=SubjectQuota.used + n))


def record_run(s: Session, audit: AuditLog, actor: Actor, action: str, run_id: str, details: dict[str, Any],
               rows: Rows, *, flow: str, tenant: str, purpose: str, product_kind: str, product: str,
               now: datetime) -> int:
    """The audit record (with the rows' SHA-256 and counts) and the run, in ``s``'s transaction; its seq.
    A small run is indexed by subject at once."""
    import pyarrow.compute as pc

    table = rows.table()
    data = _parquet(table)
    digest = hashlib.sha256(data).hexdigest()
    answered = pc.sum(pc.equal(table.column("outcome"), "answered")).as_py() or 0
    rec = audit.append(s, actor, action, product_kind if product_kind == "verification" else "inference", run_id, {
        **details, "subjects": len(rows), "answered": answered, "refused": len(rows) - answered,
        "rows_sha256": digest})
    small = len(rows) <= INDEX_NOW
    s.add(ProductRun(id=run_id, flow=flow, tenant=tenant, actor=actor.name, purpose=purpose, product_kind=product_kind,
                     product=product, audit_seq=rec.seq, subjects=len(rows), rows=data, rows_sha256=digest,
                     indexed=small, created_at=now))
    s.flush()
    if small:
        t = table.to_pydict()
        s.execute(SubjectUse.__table__.insert(), [
            {"run_id": run_id, "subject": t["subject"][i], "claim": t["claim"][i], "outcome": t["outcome"][i],
             "authorisations": t["authorisations"][i]} for i in range(len(rows))])
    return rec.seq


def index_pending(db: Database, product: str | None = None) -> int:
    """Index by subject the rows of every run (of ``product``) not indexed yet (each under its row's
    lock, once)."""
    q = select(ProductRun.id).where(ProductRun.indexed.is_(False))
    with db.read() as s:
        pending = list(s.execute(q if product is None else q.where(ProductRun.product == product)).scalars())
    done = 0
    for run_id in pending:
        with db.transaction() as s:
            run = s.execute(select(ProductRun).where(ProductRun.id == run_id, ProductRun.indexed.is_(False))
                            .with_for_update()).scalar_one_or_none()
            if run is None:  # another reader indexed it meanwhile
                continue
            t = read_rows(run.rows).to_pydict()
            s.execute(SubjectUse.__table__.insert(), [
                {"run_id": run_id, "subject": t["subject"][i], "claim": t["claim"][i], "outcome": t["outcome"][i],
                 "authorisations": t["authorisations"][i]} for i in range(len(t["subject"]))])
            run.indexed = True
            done += 1
    return done


def claims_so_far(db: Database, tenant: str, product: str, subjects: Sequence[str],
                  since: datetime) -> dict[str, set[str]]:
    """The distinct claims answered about each subject for ``tenant`` by ``product`` since ``since``."""
    index_pending(db, product)
    q = (select(SubjectUse.subject, SubjectUse.claim).join(ProductRun, ProductRun.id == SubjectUse.run_id)
         .where(ProductRun.tenant == tenant, ProductRun.product == product, ProductRun.created_at >= since,
                SubjectUse.outcome == "answered"))
    if len(subjects) <= 500:
        q = q.where(SubjectUse.subject.in_(list(subjects)))
    wanted = set(subjects)
    out: dict[str, set[str]] = {}
    with db.read() as s:
        for subject, claim in s.execute(q):
            if subject in wanted:
                out.setdefault(subject, set()).add(claim)
    return out


def check_subject_results(manifests: Any, datasets: Sequence[str], tenant: str, purpose: str) -> None:
    """Every dataset a model or verification product reads allows per-subject results
    (``subject_results.allowed``) and this tenant and purpose; else the refusal naming the dataset."""
    for name in datasets:
        policy = manifests(name).build_policy()
        if not policy.subject_results.allowed:
            raise Refused(f"{name}: its policy does not allow per-subject results (subject_results.allowed)",
                          details={"rule": "subject_results", "dataset": name})
        decision = check_access(policy, tenant, purpose)
        if not decision.allowed:
            raise AccessRefused(f"{name}: {decision.reason}", details={"rule": decision.rule, "dataset": name})
