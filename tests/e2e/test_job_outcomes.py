"""Outcomes a new user meets, each with its own clear answer: a missing input file, a download before
every approval, a job that wrote nothing, a failed job seen by its submitter."""

from __future__ import annotations

import pytest

from sandbox.errors import Forbidden, NotFound
from sandbox.jobs.service import NOTHING_TO_EXPORT, WITHHELD_REASON

from .conftest import FIRMS
from .test_flow import RATE_JOB


def _quarantine_records(wh, people):
    return [r for r in wh.audit_records(people["auditor"], limit=1000) if r["action"] == "ingest.quarantined"]


def test_a_missing_input_file_is_not_found_and_never_a_quarantined_load(landed, people, tmp_path):
    from sandbox.datasets.manifest import parse_manifest
    from sandbox.interfaces.client import LocalClient

    wh = landed
    missing = tmp_path / "no_such_registry.csv"
    before = len(_quarantine_records(wh, people))
    for ingest in (lambda: wh.ingest.ingest(people["tax_steward"], "firms", missing),
                   lambda: LocalClient(wh, "tax_steward").ingest("firms", missing)):
        with pytest.raises(NotFound, match="no_such_registry.csv does not exist") as err:
            ingest()
        assert err.value.details == {"field": "file", "path": str(missing)}
    # a manifest's source: block naming a file that is not there: the same answer
    wh.datasets.register(people["tax_steward"], parse_manifest(
        {**FIRMS, "name": "firms_src", "source": {"kind": "csv", "path": str(missing)}}))
    with pytest.raises(NotFound, match="does not exist"):
        wh.ingest.ingest(people["tax_steward"], "firms_src")
    assert len(_quarantine_records(wh, people)) == before
    assert not (wh.settings.home / "quarantine" / "firms").exists()
    assert not (wh.settings.home / "quarantine" / "firms_src").exists()
    assert wh.datasets.show(people["tax_steward"], "firms")["current_version"] == 1


def test_the_remote_client_names_a_missing_file_before_uploading(tmp_path):
    import httpx

    from sandbox.interfaces.client import Client

    sent = []
    c = Client("http://twh.invalid", "t", transport=httpx.MockTransport(lambda req: sent.append(req)))
    with pytest.raises(NotFound, match="missing.csv does not exist"):
        c.ingest("firms", tmp_path / "missing.csv")
    assert sent == []


def _export_of(wh, people, job_id):
    return wh.jobs.get(people["admin"], job_id)["export"]["id"]


def test_a_download_before_every_approval_names_whose_approval_is_missing(landed, people, job_dir):
    wh = landed
    job = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    wh.jobs.run(job["id"])
    export_id = _export_of(wh, people, job["id"])
    with pytest.raises(NotFound):  # before any steward acted, the export does not exist for its submitter
        wh.exports.download(people["analyst"], export_id)
    bundle = wh.exports.get(people["admin"], export_id)["bundle_sha256"]
    wh.exports.decide(people["bank_steward"], export_id, "approve", "ok", bundle)
    with pytest.raises(Forbidden, match=r"needs the approval of a steward of firms \(steward: tax_steward\); only") as err:
        wh.exports.download(people["analyst"], export_id)
    assert err.value.details == {"state": "pending", "waiting_for": ["firms"]}
    wh.exports.decide(people["tax_steward"], export_id, "deny", "no", bundle)
    with pytest.raises(Forbidden, match="is denied; only approved exports"):
        wh.exports.download(people["analyst"], export_id)


NOTHING = """
    import twh_job
    r = twh_job.query("SELECT f.district, COUNT(*) AS n FROM firms f GROUP BY f.district")
    print(len(r.rows))   # reads, writes nothing to /out
"""


def test_a_job_that_writes_no_file_fails_and_its_submitter_learns_it_only_from_the_stewards(landed, people,
                                                                                             job_dir):
    """No empty export: the job fails "nothing to export". Its datasets need review, so that outcome
    is a one-line notice the stewards release like any export: before they act the submitter cannot
    tell "wrote nothing" from "wrote files" (one bit per job, otherwise)."""
    wh = landed
    job = wh.jobs.submit(people["analyst"], job_dir(NOTHING))
    done = wh.jobs.run(job["id"])
    assert done["state"] == "failed" and done["reason"] == NOTHING_TO_EXPORT
    seen = wh.jobs.get(people["analyst"], job["id"])
    assert seen["state"] == "awaiting_review" and NOTHING_TO_EXPORT not in seen["reason"]
    notice = wh.exports.get(people["tax_steward"], _export_of(wh, people, job["id"]))
    assert notice["kind"] == "notice" and [f["name"] for f in notice["files"]] == ["outcome.txt"]
    (f,) = wh.exports.preview(people["tax_steward"], notice["id"])
    assert f.data.decode().strip() == NOTHING_TO_EXPORT  # the stewards approve these exact bytes
    for steward in ("tax_steward", "bank_steward"):
        wh.exports.decide(people[steward], notice["id"], "approve", "ok", notice["bundle_sha256"])
    seen = wh.jobs.get(people["analyst"], job["id"])
    assert seen["state"] == "failed" and seen["reason"].startswith(NOTHING_TO_EXPORT)
    assert "twh job run-local" in seen["reason"]
    (failed,) = [r for r in wh.audit_records(people["auditor"], limit=1000)
                 if r["action"] == "job.failed" and r["object_id"] == job["id"]]
    assert failed["details"]["outputs"] == 0


def test_without_review_a_job_that_writes_nothing_queues_nothing(landed, people, job_dir):
    """Datasets whose policy needs no approval: nothing goes to the stewards, the job just fails with
    the one fixed text every failure shows."""
    from sandbox.datasets.manifest import parse_manifest

    wh = landed
    open_firms = {**FIRMS, "name": "open_firms",
                  "policy": {**FIRMS["policy"], "output": {**FIRMS["policy"].get("output", {}), "require_approval": False}}}
    wh.datasets.register(people["tax_steward"], parse_manifest(open_firms))
    code = NOTHING.replace("firms f", "open_firms f")
    job = wh.jobs.submit(people["analyst"], job_dir(code, datasets=["open_firms"]))
    wh.jobs.run(job["id"])
    assert wh.jobs.get(people["admin"], job["id"])["export"] is None
    seen = wh.jobs.get(people["analyst"], job["id"])
    assert seen["state"] == "failed" and seen["reason"] == WITHHELD_REASON


def test_a_failed_jobs_submitter_is_told_nothing_until_the_stewards_release_the_reason(landed, people, job_dir):
    wh = landed
    for code in ("raise SystemExit(7)\n", "import time\nraise RuntimeError('the value is 42')\n"):
        job = wh.jobs.submit(people["analyst"], job_dir(code))
        wh.jobs.run(job["id"])
        seen = wh.jobs.get(people["analyst"], job["id"])
        assert seen["state"] == "awaiting_review" and "7" not in seen["reason"]  # one state, one text
        cause = wh.jobs.get(people["tax_steward"], job["id"])["reason"]  # stewards: the cause
        notice = wh.exports.get(people["tax_steward"], _export_of(wh, people, job["id"]))
        for steward in ("tax_steward", "bank_steward"):
            wh.exports.decide(people[steward], notice["id"], "approve", "ok", notice["bundle_sha256"])
        seen = wh.jobs.get(people["analyst"], job["id"])
        assert seen["state"] == "failed" and seen["reason"].startswith(cause) and "twh job run-local" in seen["reason"]
        assert "the value is 42" not in seen["reason"]  # the reason is the runner's, never the job's text


def test_a_local_submit_whose_job_another_worker_of_the_home_claims_first_waits_for_it(landed, people, job_dir):
    """`twh serve` (or `twh worker`) polling the same home may claim a job the embedded client just
    queued, before the client claims it: the client then waits for that worker's run and answers
    with its outcome, instead of failing with "not queued" (the auditor notebook met this race)."""
    import threading

    from sandbox.interfaces.client import LocalClient

    wh = landed
    real_claim = wh.jobs.claim
    runs: list[threading.Thread] = []

    def other_worker_wins(job_id, *args, **kwargs):
        assert real_claim(job_id, "serve-worker", 60)  # the service's worker is first
        runs.append(threading.Thread(target=wh.jobs.run_claimed, args=(job_id, "serve-worker", 60)))
        runs[-1].start()
        return real_claim(job_id, *args, **kwargs)  # the client's own claim now loses

    wh.jobs.claim = other_worker_wins
    try:
        job = LocalClient(wh, "analyst").submit_job(job_dir(RATE_JOB), timeout=60)
    finally:
        wh.jobs.claim = real_claim
        for t in runs:
            t.join(60)
    assert len(runs) == 1
    assert job["state"] == "awaiting_review"  # the submitter's final view while stewards review
    ran = [r for r in wh.audit_records(people["auditor"], limit=1000)
           if r["action"] == "job.started" and r["object_id"] == job["id"]]
    assert [r["details"]["worker_id"] for r in ran] == ["serve-worker"]
    assert wh.jobs.get(people["admin"], job["id"])["state"] == "awaiting_approval"


def test_a_worker_notifies_waiters_in_its_process_when_a_job_ends(landed, people, job_dir):
    """The local server's submit waits on the worker's `finished` condition, not on a poll of the
    catalog: the worker notifies it after each job it ran, failed runs included."""
    import threading

    from sandbox.jobs.workers import Worker

    wh = landed
    finished = threading.Condition()
    woken: list[str] = []

    def waiter() -> None:
        with finished:
            ready.set()
            notified = finished.wait(20)  # False: the wait timed out, nobody notified
            woken.append((notified, wh.jobs.get(people["admin"], job["id"])["state"]))

    job = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    ready = threading.Event()
    t = threading.Thread(target=waiter)
    t.start()
    assert ready.wait(10)
    assert Worker(wh, "w-test", finished=finished).run_once() == job["id"]
    t.join(30)
    assert woken == [(True, "awaiting_approval")]
