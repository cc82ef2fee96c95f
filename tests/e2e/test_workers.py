"""Job workers as real processes: several take jobs from the queue; one is killed with SIGKILL
mid-job; its job ends as its kind declares, is never lost and never completes twice.

Runs against SQLite and, with ``--database postgres``, PostgreSQL (FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import select, update

from sandbox.catalog.db import Export, Job
from sandbox.catalog.states import JobState
from sandbox.errors import InvalidTransition
from sandbox.jobs import leases

from .test_flow import RATE_JOB

#: runs one gated query, then keeps the worker busy long enough to be killed
SLOW_JOB = """
    import time
    import twh_job
    r = twh_job.query('''SELECT f.district, COUNT(*) AS loans FROM loans l JOIN firms f ON l.uscc = f.uscc
                         GROUP BY f.district''')
    time.sleep(6)
    r.to_csv("slow.csv")
"""
LEASE = 2.0
ENDED = {"awaiting_approval", "released", "failed", "denied"}


def _start_worker(settings, worker_id: str, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, TWH_HOME=str(settings.home), TWH_LEASE_SECONDS=str(LEASE),
               TWH_JOB_WALL_SECONDS=str(settings.job_wall_seconds))
    if settings.database_url:
        env["TWH_DATABASE_URL"] = settings.database_url
    return subprocess.Popen([sys.executable, "-m", "sandbox.interfaces.cli.main", "--json", "worker", "--id", worker_id, *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _job(wh, job_id: str) -> Job:
    with wh.db.read() as s:
        return s.get(Job, job_id)


def _wait(pred, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _audit(wh, people, job_id: str) -> Counter:
    return Counter(r["action"] for r in wh.audit_records(people["auditor"], object_id=job_id, limit=1000))


def _query_released(wh, people, job_id: str) -> bool:
    return any(r["action"] == "query.released" for r in wh.audit_records(people["auditor"], object_id=job_id))


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_a_killed_worker_fails_its_analysis_job_and_the_others_finish(landed, people, job_dir, settings):
    wh = landed
    slow = wh.jobs.submit(people["analyst"], job_dir(SLOW_JOB))["id"]
    quick = [wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))["id"] for _ in range(2)]
    workers = {wid: _start_worker(settings, wid) for wid in ("w1", "w2")}
    try:
        _wait(lambda: _job(wh, slow).state == "running" and _query_released(wh, people, slow), what="the slow job")
        holder = _job(wh, slow).worker_id
        assert holder in workers
        workers[holder].send_signal(signal.SIGKILL)  # mid-job: after its query, before its output
        workers[holder].wait(timeout=30)
        _wait(lambda: all(_job(wh, j).state in ENDED for j in [slow, *quick]), what="every job to end")
    finally:
        _stop(list(workers.values()))

    dead = _job(wh, slow)
    assert dead.state == "failed" and "worker stopped" in dead.reason and dead.attempts == 1
    assert _audit(wh, people, slow) == Counter({"job.submitted": 1, "job.started": 1, "query.released": 1,
                                                "job.failed": 1})
    failed = wh.audit_records(people["auditor"], object_id=slow, action="job.failed")[0]
    assert failed["details"]["lease_lost"] is True and failed["details"]["worker_id"] == holder
    for j in quick:  # the survivor ran them, each exactly once
        assert _job(wh, j).state == "awaiting_approval"
        assert _audit(wh, people, j)["job.started"] == 1
    with wh.db.read() as s:
        exports = Counter(s.execute(select(Export.job_id).where(Export.kind == "outputs")).scalars())
        notices = Counter(s.execute(select(Export.job_id).where(Export.kind == "notice")).scalars())
    assert exports == Counter({quick[0]: 1, quick[1]: 1})
    assert notices == Counter({slow: 1})  # the failed job's outcome waits for the stewards like any export
    # A late worker finds nothing to do: the failed job is not run again.
    late = _start_worker(settings, "w3", "--exit-when-idle")
    out, err = late.communicate(timeout=120)
    assert late.returncode == 0, err.decode()
    assert b'"jobs_run": 0' in out
    assert wh.audit_verify(people["auditor"]).ok


@pytest.mark.slow
def test_a_requeue_kind_runs_again_to_completion_once(landed, people, job_dir, settings, monkeypatch):
    """A kind declared `queued` goes back to the queue with its pinned versions and completes once."""
    wh = landed
    job_id = wh.jobs.submit(people["analyst"], job_dir(SLOW_JOB))["id"]
    with wh.db.transaction() as s:
        s.execute(update(Job).where(Job.id == job_id).values(kind="retryable_test"))
    monkeypatch.setitem(leases.ON_LOST_LEASE, "retryable_test", JobState.QUEUED)
    first = _start_worker(settings, "w1")
    try:
        _wait(lambda: _job(wh, job_id).state == "running" and _query_released(wh, people, job_id), what="the job")
        pinned = _job(wh, job_id).pinned
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        # The reaper here knows the test kind (the worker processes would fail it: unknown kinds fail closed).
        _wait(lambda: wh.jobs.reap() == 1 or _job(wh, job_id).state == "queued", timeout=30, what="the reap")
        assert _job(wh, job_id).state == "queued"
    finally:
        _stop([first])
    second = _start_worker(settings, "w2", "--exit-when-idle")
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err.decode()
    job = _job(wh, job_id)
    assert job.state == "awaiting_approval" and job.attempts == 2 and job.pinned == pinned
    assert _audit(wh, people, job_id) == Counter({"job.submitted": 1, "job.started": 2, "job.requeued": 1,
                                                  "query.released": 2, "job.gating": 1})
    with wh.db.read() as s:
        assert list(s.execute(select(Export.job_id).where(Export.job_id == job_id)).scalars()) == [job_id]
    assert wh.audit_verify(people["auditor"]).ok


def test_a_reaped_worker_cannot_finish_its_job(landed, people, job_dir):
    """Fencing: a worker that was paused past its lease (not dead) finds the job gone from it."""
    wh = landed
    job_id = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))["id"]
    assert wh.jobs.claim(job_id, "paused", lease_seconds=0.05)
    time.sleep(0.2)
    assert wh.jobs.reap() == 1
    assert not leases.renew(wh.db, job_id, "paused", 30)  # its heartbeat learns it lost the job
    with pytest.raises(InvalidTransition):
        wh.jobs._transition(job_id, JobState.GATING, "checking outputs", "job.gating", {}, owner="paused")
    assert _job(wh, job_id).state == "failed"
    assert wh.jobs.reap() == 0  # reaping is idempotent


def test_a_live_lease_is_not_reaped_and_claims_never_overlap(landed, people, job_dir):
    wh = landed
    ids = [wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))["id"] for _ in range(3)]
    got = [wh.jobs.claim_next(f"w{i}", 30) for i in range(4)]
    assert got[:3] == ids and got[3] is None  # oldest first, each once, then the queue is empty
    assert wh.jobs.reap() == 0
    assert [_job(wh, j).worker_id for j in ids] == ["w0", "w1", "w2"]
    assert leases.renew(wh.db, ids[0], "w0", 30) and not leases.renew(wh.db, ids[0], "w1", 30)
