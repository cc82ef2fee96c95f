"""Job and export state machines, written once.

Job::

    queued ──► running ──► gating ──► awaiting_approval ──► released
       │          │           │               └──────────► denied
       │          │           └──────────────────────────► released   (no approval required)
       └──────────┴───────────┴──────────────────────────► failed
       ▲          │           │
       └──────────┴───────────┘  lease lost, for kinds that re-queue (sandbox.jobs.leases; analysis jobs fail)

Export::

    pending ──► approved      (every required steward approved the exact bytes)
       └──────► denied        (any required steward denied)

A transition not listed here raises :class:`~sandbox.errors.InvalidTransition`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from ..errors import InvalidTransition


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    GATING = "gating"
    AWAITING_APPROVAL = "awaiting_approval"
    RELEASED = "released"
    DENIED = "denied"
    FAILED = "failed"


class ExportState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.RUNNING, JobState.FAILED}),
    # → queued: only the reaper, for job kinds that declare re-queueing a lost lease (sandbox.jobs.leases)
    JobState.RUNNING: frozenset({JobState.GATING, JobState.FAILED, JobState.QUEUED}),
    JobState.GATING: frozenset({JobState.AWAITING_APPROVAL, JobState.RELEASED, JobState.FAILED, JobState.QUEUED}),
    JobState.AWAITING_APPROVAL: frozenset({JobState.RELEASED, JobState.DENIED}),
    JobState.RELEASED: frozenset(),
    JobState.DENIED: frozenset(),
    JobState.FAILED: frozenset(),
}

EXPORT_TRANSITIONS: dict[ExportState, frozenset[ExportState]] = {
    ExportState.PENDING: frozenset({ExportState.APPROVED, ExportState.DENIED}),
    ExportState.APPROVED: frozenset(),
    ExportState.DENIED: frozenset(),
}


def check_job_transition(current: str, target: JobState) -> None:
    if target not in JOB_TRANSITIONS[JobState(current)]:
        raise InvalidTransition(f"job cannot go from {current} to {target.value}",
                                details={"from": current, "to": target.value})


def check_export_transition(current: str, target: ExportState) -> None:
    if target not in EXPORT_TRANSITIONS[ExportState(current)]:
        raise InvalidTransition(f"export cannot go from {current} to {target.value}",
                                details={"from": current, "to": target.value})


def under_review(job: Any, export: Any | None) -> bool:
    """Whether a job's submitter may still learn nothing of what it did: it needs a steward's
    review (``job.review_required``) and no steward has decided its export (or notice) yet.
    Every view an enterprise has (its jobs, exports, budgets) hides such a job's effects."""
    return bool(job.review_required) and (export is None or export.state == ExportState.PENDING.value)
