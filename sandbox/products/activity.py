"""The subject's view: who asked about a subject, when, for which purpose and product, under which
authorisation — read from the rows each audit record binds, and checked against it.

    wh.products.activity.of(subject_user, "91500000MA5U000001")
    # -> {"subject", "uses": [{when, tenant, actor, purpose, product, outcome, authorisations, audit_seq,
    #                          verified}], "authorisations": [...], "total", "offset", "limit"}

A subject's own account (role ``subject``, bound to the value) reads its own; auditors and admins
read any; anyone else gets ``not_found``. Every row names its run's audit record (``audit_seq``);
the row is ``verified`` when that record is intact (its hash recomputes) and names the run, the
run's stored rows hash to the record's ``rows_sha256``, and the subject's rows in the by-subject
index are exactly its rows there — so a row added to, removed from or altered in a run after the
fact shows as not verified. (A whole run's index rows deleted would hide it from this page; the
run, its rows and its record stay, and the auditor's log shows them.) Refused requests appear too: the subject sees that
a tenant asked without its authorisation.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import func, select

from ..access.authorisations import authorisation_dict
from ..access.users import check_subject_id
from ..audit.log import record_hash
from ..auth import Principal, Role
from ..catalog.db import AuditRecord
from ..catalog.products import Authorisation, ProductRun, SubjectUse
from ..context import Context
from ..errors import NotFound
from .uses import index_pending, read_rows

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
        index_pending(self.ctx.db)  # a batch's rows are indexed by subject when first needed
        with self.ctx.db.read() as s:
            total = s.execute(select(func.count()).select_from(SubjectUse).where(SubjectUse.subject == subject)).scalar()
            page = s.execute(select(SubjectUse, ProductRun).join(ProductRun, ProductRun.id == SubjectUse.run_id)
                             .where(SubjectUse.subject == subject).order_by(ProductRun.created_at.desc(),
                                                                           SubjectUse.id.desc())
                             .offset(max(0, offset)).limit(max(1, min(limit, 1000)))).all()
            runs = {r.id: r for _, r in page}
            records = {r.seq: r for r in s.execute(select(AuditRecord).where(
                AuditRecord.seq.in_({r.audit_seq for r in runs.values()}))).scalars()}
            verified = {run_id: self._verified(run, records.get(run.audit_seq), subject, [
                u for u, r in page if r.id == run_id]) for run_id, run in runs.items()}
            items = [{"when": r.created_at.isoformat() if r.created_at else None, "tenant": r.tenant,
                      "actor": r.actor, "purpose": r.purpose, "product_kind": r.product_kind, "product": r.product,
                      "flow": r.flow, "outcome": u.outcome, "claim": u.claim,
                      "authorisations": [a for a in u.authorisations.split(",") if a], "run_id": r.id,
                      "audit_seq": r.audit_seq, "action": records[r.audit_seq].action if r.audit_seq in records else None,
                      "verified": verified[r.id]} for u, r in page]
            auths = s.execute(select(Authorisation).where(Authorisation.subject == subject)
                              .order_by(Authorisation.created_at.desc())).scalars().all()
            return {"subject": subject, "items": items, "total": total, "offset": offset, "limit": limit,
                    "authorisations": [authorisation_dict(a) for a in auths]}

    @staticmethod
    def _verified(run: ProductRun, rec: AuditRecord | None, subject: str, uses: list[SubjectUse]) -> bool:
        """The record is intact and names the run; its rows hash to what it says; the subject's index
        rows are exactly its rows in them."""
        if rec is None or not _intact(rec) or rec.object_id != run.id:
            return False
        if rec.details.get("rows_sha256") != run.rows_sha256 or hashlib.sha256(run.rows).hexdigest() != run.rows_sha256:
            return False
        t = read_rows(run.rows).to_pydict()
        mine = sorted((t["claim"][i], t["outcome"][i], t["authorisations"][i])
                      for i, x in enumerate(t["subject"]) if x == subject)
        return mine == sorted((u.claim, u.outcome, u.authorisations) for u in uses)


def _intact(rec: AuditRecord) -> bool:
    fields = {k: getattr(rec, k) for k in ("seq", "ts", "actor", "tenant", "action", "object_type", "object_id",
                                           "details", "prev_hash")}
    return record_hash(fields) == rec.hash
