"""Exports: what a job wants to take out, the stewards' decisions, and downloads.

An approval is bound to ``bundle_sha256`` — the hash over every file's name and SHA-256 — which
the steward's client sends back with the decision. An approval for other bytes is refused, and a
download re-hashes the stored bytes before anything leaves: bytes that no longer match are a
named, audited refusal (``tampered``, ``export.download_refused``), never served. A download is
audited (``export.downloaded``) with exactly the files it sends — one file, or the whole bundle.

The export of a job that read *important* data (GB/T 43697, :mod:`policies.grading`) is decided,
for that dataset, only by one of its ``senior_stewards`` (unless an admin allowed
``any_steward``). When the last required approval lands, the signed provenance statement
(:mod:`.attest`, :mod:`.provenance`) is made in the same transaction and named by digest in the
``export.approved`` record; every download carries it as ``provenance.intoto.jsonl``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.grading import Grade, senior_needed

from ..auth import Principal, Role
from ..catalog.db import Approval, Export, ExportFile, Job, utcnow
from ..catalog.states import ExportState, JobState, check_export_transition, check_job_transition
from ..context import Context, get_dataset, grade_allowances, require_role, stewarded_by, stewards_of
from ..errors import Forbidden, InternalError, InvalidInput, NotFound, Tampered
from . import provenance
from .attest import attest, public_key

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def bundle_hash(files: list[tuple[str, str]]) -> str:
    """SHA-256 over the sorted ``name:sha256`` lines of an export's files."""
    body = "".join(f"{name}:{digest}\n" for name, digest in sorted(files))
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class DownloadedFile:
    name: str
    sha256: str
    data: bytes


def export_dict(e: Export, files: list[ExportFile], approvals: list[Approval]) -> dict[str, Any]:
    return {
        "id": e.id,
        "job_id": e.job_id,
        "tenant": e.tenant,
        "state": e.state,
        "bundle_sha256": e.bundle_sha256,
        "needs_approval_from": e.needs_approval_from,
        "kind": e.kind,
        "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in files],
        "approvals": [
            {"dataset": a.dataset, "steward": a.steward, "decision": a.decision, "reason": a.reason,
             "bundle_sha256": a.bundle_sha256, "at": a.created_at.isoformat()} for a in approvals
        ],
        "created_at": e.created_at.isoformat(),
        "provenance_sha256": e.provenance_sha256,
    }


def seniors_only(s: Session, dataset: str) -> list[str] | None:
    """The stewards who alone decide on exports of ``dataset`` (its senior stewards, for important
    data without the ``any_steward`` allowance); None when any of its stewards may."""
    m = get_dataset(s, dataset).manifest
    grade = (m.get("classification") or {}).get("grade")
    if not senior_needed(Grade(grade) if grade else None, grade_allowances(s, dataset)):
        return None
    return list(m.get("senior_stewards") or [])


def decidable(s: Session, principal: Principal, e: Export) -> tuple[list[str], dict[str, list[str]]]:
    """The datasets of ``e`` that ``principal`` may decide now, and those they steward but may not
    (important data: only its senior stewards), with who may."""
    if principal.role is not Role.STEWARD or e.state != ExportState.PENDING.value:
        return [], {}
    decided = {a.dataset for a in s.execute(select(Approval).where(Approval.export_id == e.id)).scalars()}
    open_ = sorted((set(e.needs_approval_from) & stewarded_by(s, principal.name)) - decided)
    mine, seniors = [], {}
    for ds in open_:
        only = seniors_only(s, ds)
        if only is None or principal.name in only:
            mine.append(ds)
        else:
            seniors[ds] = only
    return mine, seniors


class Exports:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- visibility -----------------------------------------------------------------------
    def _visible(self, s: Session, principal: Principal, e: Export) -> bool:
        if principal.role in (Role.ADMIN, Role.AUDITOR):
            return True
        if principal.role is Role.ENTERPRISE:
            # A pending export does not exist for its submitter: that it exists, when it appeared and
            # whether it holds files or a failure notice would tell what the job did before review.
            # Once a steward has decided on it (a human act, not the job's), it shows, files withheld.
            return e.tenant == principal.tenant and (e.state != ExportState.PENDING.value or s.execute(
                select(Approval.id).where(Approval.export_id == e.id).limit(1)).first() is not None)
        if principal.role is Role.STEWARD:
            return bool(set(e.needs_approval_from) & stewarded_by(s, principal.name))
        return False

    def _load(self, s: Session, principal: Principal, export_id: str) -> Export:
        e = s.get(Export, export_id) if isinstance(export_id, str) and len(export_id) <= 40 else None
        # Another tenant's export answers exactly like a missing one: 404, never 403.
        if e is None or not self._visible(s, principal, e):
            raise NotFound(f"export {export_id!r} does not exist")
        return e

    def _dict(self, s: Session, e: Export, principal: Principal) -> dict[str, Any]:
        files = s.execute(select(ExportFile).where(ExportFile.export_id == e.id).order_by(ExportFile.name)).scalars().all()
        approvals = s.execute(select(Approval).where(Approval.export_id == e.id).order_by(Approval.id)).scalars().all()
        out = export_dict(e, list(files), list(approvals))
        out["waiting_for"] = _waiting(s, e)
        if principal.role is Role.STEWARD:
            out["yours"], seniors = decidable(s, principal, e)
            out["seniors_decide"] = seniors
        if principal.role is Role.ENTERPRISE and e.state != ExportState.APPROVED.value:
            # Names, sizes and hashes of unapproved files are job-chosen: a covert channel (a hash of a
            # single number can be brute-forced). The submitter sees them once the stewards approve.
            out["files"] = None
            out["bundle_sha256"] = None
            out["kind"] = None  # a failure notice and a job's files look alike until approved
        return out

    def get(self, principal: Principal, export_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            return self._dict(s, self._load(s, principal, export_id), principal)

    def list(self, principal: Principal, state: str | None = None) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            q = select(Export).order_by(Export.created_at.desc())
            if state:
                q = q.where(Export.state == ExportState(state).value)
            return [self._dict(s, e, principal) for e in s.execute(q).scalars() if self._visible(s, principal, e)]

    def preview(self, principal: Principal, export_id: str) -> list[DownloadedFile]:
        """The exact bytes, for the stewards who review them (and auditors)."""
        require_role(principal, Role.STEWARD, Role.AUDITOR, Role.ADMIN)
        with self.ctx.db.read() as s:
            e = self._load(s, principal, export_id)
            return [DownloadedFile(f.name, f.sha256, f.data) for f in
                    s.execute(select(ExportFile).where(ExportFile.export_id == e.id)).scalars()]

    # -- decisions ------------------------------------------------------------------------
    def decide(self, principal: Principal, export_id: str, decision: str, reason: str,
               bundle_sha256: str) -> dict[str, Any]:
        require_role(principal, Role.STEWARD)
        if decision not in ("approve", "deny"):
            raise InvalidInput("decision must be 'approve' or 'deny'", details={"field": "decision"})
        reason = (reason or "").strip()
        if not reason or len(reason) > 2000:
            raise InvalidInput("a reason (1-2000 characters) is required", details={"field": "reason"})
        if not _HEX64.match(bundle_sha256 or ""):
            raise InvalidInput("bundle_sha256 must be the 64-hex SHA-256 of the reviewed files",
                               details={"field": "bundle_sha256"})
        with self.ctx.db.transaction() as s:
            e = self._load(s, principal, export_id)
            job = s.get(Job, e.job_id)
            if job is None:
                raise InternalError("export without a job")
            if job.submitted_by == principal.name:
                raise Forbidden("nobody approves their own export")
            if e.bundle_sha256 != bundle_sha256:
                raise Forbidden("the decision is for other bytes than this export holds: review it again",
                                details={"expected": e.bundle_sha256})
            check_export_transition(e.state, ExportState.APPROVED)
            decided = {a.dataset for a in s.execute(select(Approval).where(Approval.export_id == e.id)).scalars()}
            yours, seniors = decidable(s, principal, e)
            mine = set(yours)
            if not mine and seniors:
                who = "; ".join(f"{d} ({', '.join(n) or 'none named'})" for d, n in sorted(seniors.items()))
                raise Forbidden(f"important data (重要数据) is approved by its senior stewards only: {who}",
                                details={"rule": "senior_steward", "datasets": sorted(seniors)})
            if not mine:
                raise Forbidden("you have no pending decision on this export")
            for ds in sorted(mine):
                s.add(Approval(export_id=e.id, dataset=ds, steward=principal.name, decision=decision,
                               reason=reason, bundle_sha256=bundle_sha256))
            outcome = e.state
            # a failed job's notice settles what the submitter learns; the job stays failed
            settles_job = not (e.kind == "notice" and job.state == JobState.FAILED.value)
            if decision == "deny":
                outcome = ExportState.DENIED.value
                if settles_job:
                    check_job_transition(job.state, JobState.DENIED)
                    job.state, job.reason = JobState.DENIED.value, "export denied by a steward"
            elif decided | mine >= set(e.needs_approval_from):
                outcome = ExportState.APPROVED.value
                if settles_job:
                    check_job_transition(job.state, JobState.RELEASED)
                    job.state = JobState.RELEASED.value
                    if e.kind != "notice":
                        job.reason = "export approved by every steward"
            e.state, e.updated_at, job.updated_at = outcome, utcnow(), utcnow()
            s.flush()
            # approved: the signed statement is made now, in this transaction, and named below
            signed = attest(self.ctx, s, e, job) if outcome == ExportState.APPROVED.value else {}
            self.ctx.audit.append(s, principal.actor, f"export.{'approved' if decision == 'approve' else 'denied'}",
                                  "export", e.id, {"datasets": sorted(mine), "reason": reason,
                                                   "bundle_sha256": bundle_sha256, "export_state": outcome,
                                                   "job_id": job.id, **signed})
            return self._dict(s, e, principal)

    def provenance_key(self) -> dict[str, str]:
        """The public key every release's provenance is signed with (anyone may have it)."""
        return public_key(self.ctx)

    # -- download -------------------------------------------------------------------------
    def download(self, principal: Principal, export_id: str) -> list[DownloadedFile]:
        """Every file of an approved export (the submitting tenant), re-hashed, audited."""
        return self._download(principal, export_id, None)

    def download_file(self, principal: Principal, export_id: str, name: str) -> DownloadedFile:
        """One file of an approved export: audited only when it exists and its bytes are sent."""
        return self._download(principal, export_id, name)[0]

    def _download(self, principal: Principal, export_id: str, only: str | None) -> list[DownloadedFile]:
        require_role(principal, Role.ENTERPRISE)
        with self.ctx.db.transaction() as s:
            e = self._load(s, principal, export_id)
            if e.state != ExportState.APPROVED.value:
                raise Forbidden(_not_downloadable(s, e), details={"state": e.state, "waiting_for": _waiting(s, e)})
            listed = [(n, d) for n, d in s.execute(select(ExportFile.name, ExportFile.sha256)
                                                   .where(ExportFile.export_id == e.id)).all()]
            signed = e.provenance is not None
            if only is not None and only not in {n for n, _ in listed} and not (signed and only == provenance.FILE_NAME):
                raise NotFound(f"export {e.id!r} has no file {str(only)[:60]!r}")
            q = select(ExportFile).where(ExportFile.export_id == e.id)
            rows = s.execute(q if only is None else q.where(ExportFile.name == only)).scalars().all()
            out = [DownloadedFile(f.name, f.sha256, f.data) for f in rows]
            if signed and only in (None, provenance.FILE_NAME):  # the statement travels with the bytes
                out.append(DownloadedFile(provenance.FILE_NAME, str(e.provenance_sha256), bytes(e.provenance)))
            # Re-hash what is about to leave: it must be exactly what was approved (and signed).
            changed = sorted(f.name for f in out if hashlib.sha256(f.data).hexdigest() != f.sha256)
            if bundle_hash(listed) != e.bundle_sha256:
                changed = changed or sorted(n for n, _ in listed)
            if not changed:
                self.ctx.audit.append(s, principal.actor, "export.downloaded", "export", e.id,
                                      {"bundle_sha256": e.bundle_sha256, "files": [[f.name, f.sha256] for f in out],
                                       "whole_bundle": only is None, "provenance_sha256": e.provenance_sha256})
                return out
            export_key = e.id
        # Nothing was sent; the attempt and what failed are recorded in a transaction of their own.
        self.ctx.record(principal, "export.download_refused", "export", export_key,
                        {"rule": "integrity", "changed": changed[:50], "bundle_sha256": e.bundle_sha256})
        raise Tampered(f"the stored bytes of export {export_key} do not match their approved hash; nothing was "
                       "released", details={"rule": "integrity", "files": changed[:50]})


def _waiting(s: Session, e: Export) -> list[str]:
    """The datasets of a pending export whose steward has not decided yet."""
    if e.state != ExportState.PENDING.value:
        return []
    decided = set(s.execute(select(Approval.dataset).where(Approval.export_id == e.id)).scalars())
    return [n for n in e.needs_approval_from if n not in decided]


def _not_downloadable(s: Session, e: Export) -> str:
    """Why an export cannot be downloaded yet, naming whose approval is missing (the submitter
    already sees the datasets and the decisions taken; stewards are listed in the catalog)."""
    waiting = _waiting(s, e)
    if not waiting:
        return f"export {e.id} is {e.state}; only approved exports can be downloaded"
    who = "; ".join(f"{n} (steward: {', '.join(sorted(stewards_of(s, get_dataset(s, n).id))) or 'none'})"
                    for n in waiting)
    return (f"export {e.id} is {e.state}: it still needs the approval of a steward of {who}; only approved "
            "exports can be downloaded")
