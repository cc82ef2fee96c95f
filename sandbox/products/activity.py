"""The subject's view: who asked about a subject, when, for which purpose and product, under which
authorisation — read from the rows each audit record binds, and checked against it.

    wh.products.activity.of(subject_user, "91500000MA5U000001")
    # -> {"subject", "uses": [{when, tenant, actor, purpose, product, outcome, authorisations, audit_seq,
    #                          verified}], "authorisations": [...], "total", "offset", "limit"}

A subject's own account (role ``subject``, bound to the value) reads its own; auditors and admins
read any; anyone else gets ``not_found``. Every row names its audit record (``audit_seq``); the row
is ``verified`` when that record is intact (its hash recomputes), names the row's run, and its
``rows_sha256`` equals the digest of the run's rows as stored now — so a row inserted, removed or
altered after the fact shows as not verified. Refused requests appear too: the subject sees that
a tenant asked without its authorisation.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from ..access.authorisations import authorisation_dict
from ..access.users import check_subject_id
from ..audit.log import record_hash
from ..auth import Principal, Role
from ..catalog.db import AuditRecord
from ..catalog.products import Authorisation, SubjectUse
from ..context import Context
from ..errors import NotFound
from .uses import rows_sha256

__all__ = ["Activity"]


class Activity:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def of(self, principal: Principal, subject: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        subject = check_subject_id(subject)
        allowed = principal.role in (Role.AUDITOR, Role.ADMIN) or (
            principal.role is Role.SUBJECT and principal.subject == subject)
        if not allowed:
            raise NotFound(f"subject {subject!r} has no activity you may read")
        with self.ctx.db.read() as s:
            total = s.execute(select(func.count()).select_from(SubjectUse).where(SubjectUse.subject == subject)).scalar()
            uses = s.execute(select(SubjectUse).where(SubjectUse.subject == subject).order_by(SubjectUse.id.desc())
                             .offset(max(0, offset)).limit(max(1, min(limit, 1000)))).scalars().all()
            records = {r.seq: r for r in s.execute(select(AuditRecord).where(
                AuditRecord.seq.in_({u.audit_seq for u in uses}))).scalars()}
            verified: dict[int, bool] = {}
            for seq, rec in records.items():
                rows = s.execute(select(SubjectUse.subject, SubjectUse.claim, SubjectUse.outcome,
                                        SubjectUse.authorisations).where(SubjectUse.audit_seq == seq)).all()
                verified[seq] = _intact(rec) and rec.details.get("rows_sha256") == rows_sha256(tuple(r) for r in rows)
            auths = s.execute(select(Authorisation).where(Authorisation.subject == subject)
                              .order_by(Authorisation.created_at.desc())).scalars().all()
            out = []
            for u in uses:
                rec = records.get(u.audit_seq)
                out.append({"when": u.created_at.isoformat() if u.created_at else None, "tenant": u.tenant,
                            "actor": u.actor, "purpose": u.purpose, "product_kind": u.product_kind,
                            "product": u.product, "outcome": u.outcome, "claim": u.claim,
                            "authorisations": [a for a in u.authorisations.split(",") if a], "run_id": u.run_id,
                            "audit_seq": u.audit_seq, "action": rec.action if rec else None,
                            "verified": bool(rec is not None and rec.object_id == u.run_id and verified.get(u.audit_seq))})
            return {"subject": subject, "items": out, "total": total, "offset": offset, "limit": limit,
                    "authorisations": [authorisation_dict(a) for a in auths]}


def _intact(rec: AuditRecord) -> bool:
    fields = {k: getattr(rec, k) for k in ("seq", "ts", "actor", "tenant", "action", "object_type", "object_id",
                                           "details", "prev_hash")}
    return record_hash(fields) == rec.hash
