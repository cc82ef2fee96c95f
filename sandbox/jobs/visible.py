"""What each person sees of a job: everything for stewards and auditors, and for the submitter
nothing that the job's own behaviour can modulate before a steward has acted.

    job_dict(job, principal, export)     # the one dict every surface (API, CLI, web, SDK) shows

Before approval, whatever the job could influence is a channel for the gated values it saw
(ARCHITECTURE.md "Channels before approval"): whether it failed, when it finished, which versions
it pinned, its queries, its export's files. So while a job that needs a steward's review has not
been decided, its submitter sees one state, ``awaiting_review``, with one fixed reason, no pinned
versions and no time but the submission's (to the minute). Once the stewards decide, the submitter
sees the outcome they released: ``released``, ``denied``, or ``failed`` with the reason the
stewards approved (a failed job's reason leaves only as an approved notice export). Times shown to
the submitter are always whole minutes: a job's duration is not something a steward reviews.
"""

from __future__ import annotations

__all__ = ["AWAITING_REVIEW", "WITHHELD_REASON", "job_dict", "minute", "under_review"]

from datetime import datetime
from typing import Any

from ..auth import Principal, Role
from ..catalog.db import Export, Job
from ..catalog.states import ExportState, JobState, under_review

#: the one public state of an undecided job that needs review
AWAITING_REVIEW = "awaiting_review"
PENDING_REASON = ("queued, running or waiting for the stewards' review; which of these, and any detail, is "
                  "withheld until a steward acts (it could carry what the job saw)")
#: a failed job's reason, to the submitter, when no steward released it (jobs without review). The
#: hint is fixed text, the same for every failure: it says where the submitter can see a cause
#: (their own code on mock data), never anything about this run.
RUN_LOCAL_HINT = "To see what goes wrong, run it on mock data: twh job run-local JOB_DIR"
WITHHELD_REASON = f"the job failed; details are withheld from the submitter and shown to the stewards. {RUN_LOCAL_HINT}"


def minute(t: datetime) -> str:
    """A time to the minute (ISO 8601): what the submitter is shown."""
    return t.replace(second=0, microsecond=0).isoformat()


def job_dict(job: Job, principal: Principal | None = None, export: Export | None = None) -> dict[str, Any]:
    full = {
        "id": job.id, "name": job.spec.get("name"), "tenant": job.tenant, "submitted_by": job.submitted_by,
        "purpose": job.purpose, "datasets": job.datasets, "pinned_versions": job.pinned, "state": job.state,
        "reason": job.reason, "code_sha256": job.code_sha256, "created_at": job.created_at.isoformat(),
        "updated_at": job.updated_at.isoformat(),
    }
    if principal is None or principal.role is not Role.ENTERPRISE:
        return full
    out = {**full, "created_at": minute(job.created_at)}
    if under_review(job, export):
        out.update(state=AWAITING_REVIEW, reason=PENDING_REASON, pinned_versions=None,
                   updated_at=minute(job.created_at))
        return out
    decided = export.updated_at if export is not None else job.updated_at
    out["updated_at"] = minute(decided)
    if export is not None and export.kind == "notice":
        # a failed (or empty) job's one-line outcome, as the stewards released it
        if export.state == ExportState.DENIED.value:
            out.update(state=JobState.DENIED.value, reason="the stewards withheld this job's outcome")
        else:
            out["reason"] = f"{job.reason}. {RUN_LOCAL_HINT}" if job.state == JobState.FAILED.value else job.reason
        return out
    if job.state == JobState.FAILED.value:
        out["reason"] = WITHHELD_REASON
    return out
