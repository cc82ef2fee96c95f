"""Job leases: who runs a job, until when, and what happens when a worker disappears.

A worker that claims a job writes its ``worker_id`` and ``lease_until`` into the job's row in
the same transaction as ``queued → running``. While the job runs, a heartbeat thread pushes
``lease_until`` forward every third of the lease. A worker that dies (``kill -9``, lost machine)
stops renewing; once its lease has passed, any worker's reaper (or the service starting up)
ends the job as its kind declares in :data:`ON_LOST_LEASE`:

* ``failed`` — the job ends; nothing it produced leaves. Analysis jobs: their code ran against
  gated results no steward has approved, and re-running it would let a job probe twice.
* ``queued`` — the job goes back to the queue with its pinned versions kept, so a re-run reads
  the same snapshots (and DP queries repeat exactly: the budget ledger answers them from its
  stored result instead of charging again). After :data:`MAX_ATTEMPTS` it fails instead.

Every transition a worker makes on a running job is *fenced*: it only applies while the job's
``worker_id`` is still that worker's, so a worker that was only paused (not dead) and lost its
lease can never take the job to completion. Lease times are the workers' clocks (UTC): keep
hosts NTP-synchronised and the lease far above their skew.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import update

from ..catalog.db import Database, Job, utcnow
from ..catalog.states import JobState

log = logging.getLogger(__name__)

#: seconds a claim or heartbeat holds a job (heartbeats renew it every third of this)
DEFAULT_LEASE_SECONDS = 30.0

#: job kind -> the state a job of that kind goes to when its worker's lease expires.
#: A kind not listed fails (fail closed).
ON_LOST_LEASE: dict[str, JobState] = {
    "analysis": JobState.FAILED,
}

#: a job re-queued this many times fails instead (a job that kills its workers is not retried forever)
MAX_ATTEMPTS = 3


def default_worker_id() -> str:
    """This process's identity: host and pid, unique among live workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


def lost_lease_target(kind: str, attempts: int) -> JobState:
    target = ON_LOST_LEASE.get(kind, JobState.FAILED)
    if target is JobState.QUEUED and attempts >= MAX_ATTEMPTS:
        return JobState.FAILED
    return target


def expiry(lease_seconds: float):  # -> datetime
    return utcnow() + timedelta(seconds=lease_seconds)


def renew(db: Database, job_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Push the lease forward; False when the job is no longer this worker's (reaped or ended)."""
    with db.transaction() as s:
        res = s.execute(update(Job).where(
            Job.id == job_id, Job.worker_id == worker_id,
            Job.state.in_([JobState.RUNNING.value, JobState.GATING.value]),
        ).values(lease_until=expiry(lease_seconds)))
        return res.rowcount == 1


@contextmanager
def heartbeat(db: Database, job_id: str, worker_id: str, lease_seconds: float) -> Iterator[threading.Event]:
    """Renew the lease in the background while the body runs; the event is set if it was lost."""
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(lease_seconds / 3):
            try:
                if not renew(db, job_id, worker_id, lease_seconds):
                    lost.set()
                    log.warning("job %s: lease lost by worker %s", job_id, worker_id)
                    return
            except Exception:  # the database is unreachable: keep trying until the lease runs out
                log.exception("job %s: heartbeat failed", job_id)

    thread = threading.Thread(target=beat, name=f"twh-heartbeat-{job_id}", daemon=True)
    thread.start()
    try:
        yield lost
    finally:
        stop.set()
        thread.join(timeout=10)
