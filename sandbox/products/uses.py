"""The per-subject ledger: daily quotas, the distinct-claims limit, and the rows binding every subject
asked about (answered or refused) to the audit record written in the same transaction.

    charge(s, [("tax_payments", 10_000)], "bank_a", n=len(subjects))    # QuotaExceeded, nothing written
    claims_so_far(s, "bank_a", "vat_2023@1", subjects, since)           # subject -> claims answered this period
    seq = record(s, audit, actor, "inference.scored", "inference", run_id, details, uses)

``record`` appends one audit record whose details carry ``rows_sha256`` — the SHA-256 over the
run's rows (:func:`rows_sha256`) — then writes the rows with that record's ``seq``; the subject's
view recomputes the digest from the rows, so a row added, removed or changed later shows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from ..audit.log import Actor, AuditLog
from ..catalog.products import SubjectQuota, SubjectUse
from ..errors import QuotaExceeded

__all__ = ["NOT_AUTHORISED", "Use", "charge", "claims_so_far", "period_start", "record", "rows_sha256"]

#: the one reason a subject without a valid authorisation is refused (whatever the cause: none,
#: expired, revoked, another purpose, a dataset missing — and whether or not it is in the data)
NOT_AUTHORISED = "not authorised"


@dataclass(frozen=True)
class Use:
    subject: str
    claim: str
    outcome: str  # answered | refused
    authorisations: str = ""  # comma-separated ids


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    if period == "day":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "year":
        return now.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _line(subject: str, claim: str, outcome: str, auths: str) -> bytes:
    return f"{subject}\t{claim}\t{outcome}\t{auths}\n".encode()


def rows_sha256(rows: Iterable[tuple[str, str, str, str]]) -> str:
    """SHA-256 over (subject, claim, outcome, authorisations) lines, sorted."""
    h = hashlib.sha256()
    for r in sorted(rows):
        h.update(_line(*r))
    return h.hexdigest()


def charge(s: Session, limits: Sequence[tuple[str, int]], tenant: str, n: int, now: datetime) -> None:
    """Count ``n`` subjects against each dataset's daily limit for ``tenant``, under a row lock; refuse
    the whole request (nothing written) when one would pass its limit."""
    day = now.astimezone(UTC).strftime("%Y-%m-%d")
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
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


def claims_so_far(s: Session, tenant: str, product: str, subjects: Sequence[str], since: datetime) -> dict[str, set[str]]:
    """The distinct claims answered about each subject for ``tenant`` by ``product`` since ``since``."""
    q = select(SubjectUse.subject, SubjectUse.claim).where(
        SubjectUse.tenant == tenant, SubjectUse.product == product, SubjectUse.outcome == "answered",
        SubjectUse.created_at >= since)
    if len(subjects) <= 500:
        q = q.where(SubjectUse.subject.in_(list(subjects)))
    wanted = set(subjects)
    out: dict[str, set[str]] = {}
    for subject, claim in s.execute(q):
        if subject in wanted:
            out.setdefault(subject, set()).add(claim)
    return out


def record(s: Session, audit: AuditLog, actor: Actor, action: str, object_type: str, run_id: str,
           details: dict[str, Any], uses: Sequence[Use], *, tenant: str, purpose: str, product_kind: str,
           product: str, now: datetime) -> int:
    """The audit record (with the rows' digest) and the rows, in ``s``'s transaction; its seq."""
    digest = rows_sha256((u.subject, u.claim, u.outcome, u.authorisations) for u in uses)
    rec = audit.append(s, actor, action, object_type, run_id, {
        **details, "subjects": len(uses), "answered": sum(1 for u in uses if u.outcome == "answered"),
        "refused": sum(1 for u in uses if u.outcome == "refused"), "rows_sha256": digest})
    if uses:
        s.execute(insert(SubjectUse), [
            {"run_id": run_id, "audit_seq": rec.seq, "subject": u.subject, "tenant": tenant, "actor": actor.name,
             "purpose": purpose, "product_kind": product_kind, "product": product, "claim": u.claim,
             "authorisations": u.authorisations, "outcome": u.outcome, "created_at": now} for u in uses])
    return rec.seq
