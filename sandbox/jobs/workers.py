"""Job workers: processes that take jobs from the durable queue in the catalog database.

    twh worker                      # one worker process; run as many as the machines allow
    twh serve                       # the embedded service runs one worker thread itself

The queue is the ``jobs`` table: a worker claims the oldest ``queued`` job (``SELECT … FOR
UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite), runs it under a lease it keeps
renewing, and between jobs reaps jobs whose workers vanished (see :mod:`sandbox.jobs.leases`).
Workers on several machines need a shared catalog (PostgreSQL) and a shared warehouse
directory (the same ``TWH_HOME`` mount, later object storage).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..errors import TwhError

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, wh: Any, worker_id: str | None = None, *, lease_seconds: float | None = None,
                 poll_seconds: float = 0.5, wake: threading.Event | None = None,
                 finished: threading.Condition | None = None) -> None:
        self.wh = wh
        self.worker_id = worker_id or wh.settings.worker_id
        self.lease_seconds = lease_seconds or wh.settings.lease_seconds
        self.poll_seconds = poll_seconds
        #: set by whoever queues a job in this process (the service's submit): the idle worker
        #: claims it at once instead of at its next poll (other processes' jobs wait for the poll)
        self.wake = wake or threading.Event()
        #: notified after each job this worker ran: a waiter in this process (the local server's
        #: submit) looks at the job's state then, instead of polling the catalog
        self.finished = finished
        self.ran = 0

    def run_once(self) -> str | None:
        """Reap lapsed leases, then claim and run one job; returns its id (None: queue empty)."""
        try:
            self.wh.jobs.reap()
        except TwhError:
            log.exception("reaping lapsed leases failed")
        job_id = self.wh.jobs.claim_next(self.worker_id, self.lease_seconds)
        if job_id is None:
            return None
        log.info("worker %s runs job %s", self.worker_id, job_id)
        try:
            self.wh.jobs.run_claimed(job_id, self.worker_id, self.lease_seconds)
        finally:
            if self.finished is not None:
                with self.finished:
                    self.finished.notify_all()
        self.ran += 1
        return job_id

    def serve(self, stop: threading.Event, *, max_jobs: int | None = None, exit_when_idle: bool = False) -> int:
        """Run jobs until ``stop`` is set (or ``max_jobs`` ran, or the queue is empty and
        ``exit_when_idle``); returns how many ran."""
        while not stop.is_set():
            try:
                job_id = self.run_once()
            except Exception:  # the database hiccuped: log, wait, go on (the lease protects the job)
                log.exception("worker %s: run failed", self.worker_id)
                job_id = None
            if max_jobs is not None and self.ran >= max_jobs:
                break
            if job_id is None:
                if exit_when_idle:
                    break
                self.wake.wait(self.poll_seconds)
                self.wake.clear()
        return self.ran
