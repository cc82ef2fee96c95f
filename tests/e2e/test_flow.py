"""The whole path on a small warehouse: land → submit → sandbox → broker → gate → approve → download."""

from __future__ import annotations

import csv
import io

import pytest

from sandbox.errors import AccessRefused, Forbidden, NotFound, ValidationFailed

RATE_JOB = """
    import twh_job
    r = twh_job.query('''SELECT f.district, COUNT(*) AS loans, AVG(l.defaulted) AS rate
                         FROM loans l JOIN firms f ON l.uscc = f.uscc GROUP BY f.district''')
    print("suppressed", r.suppressed)
    r.to_csv("rates.csv")
"""


def _actions(wh, people, **kw):
    return [r["action"] for r in wh.audit_records(people["auditor"], limit=1000, **kw)]


def test_full_flow(landed, people, job_dir, tmp_path):
    wh = landed
    job = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    assert job["state"] == "awaiting_review"  # the submitter's one state until a steward acts
    done = wh.jobs.run(job["id"])
    assert done["state"] == "awaiting_approval", done["reason"]
    shown = wh.jobs.get(people["analyst"], job["id"])
    # withheld from the submitter: queries, pinned versions, the export, the state (covert channels)
    assert shown["queries"] is None and shown["export"] is None and shown["pinned_versions"] is None
    assert shown["state"] == "awaiting_review"
    assert wh.exports.list(people["analyst"]) == []
    steward_view = wh.jobs.get(people["tax_steward"], job["id"])
    (q,) = steward_view["queries"]
    # 500199 (3 firms) and, by secondary suppression, the smaller of the two others: the total
    # less one released district would give 500199 away
    assert q["outcome"] == "released" and q["details"]["suppressed_groups"] == 2
    assert q["versions"] == {"firms": 1, "loans": 1}
    export_id = steward_view["export"]["id"]
    with pytest.raises(NotFound):  # a pending export does not exist for its submitter
        wh.exports.get(people["analyst"], export_id)

    # the enterprise cannot download before approval, nor see the withheld logs
    with pytest.raises(NotFound):
        wh.exports.download(people["analyst"], export_id)
    with pytest.raises(Forbidden):
        wh.jobs.logs(people["analyst"], job["id"])
    # the job itself was never told how many cells were suppressed (it could carry the values)
    assert "suppressed None" in wh.jobs.logs(people["tax_steward"], job["id"])["stdout"]

    e = wh.exports.get(people["tax_steward"], export_id)
    assert e["needs_approval_from"] == ["firms", "loans"]
    e = wh.exports.decide(people["tax_steward"], export_id, "approve", "aggregates only", e["bundle_sha256"])
    assert e["state"] == "pending"
    e = wh.exports.decide(people["bank_steward"], export_id, "approve", "ok", e["bundle_sha256"])
    assert e["state"] == "approved"
    assert wh.jobs.get(people["analyst"], job["id"])["state"] == "released"

    assert [f["name"] for f in wh.exports.get(people["analyst"], export_id)["files"]] == ["rates.csv"]
    f, prov = wh.exports.download(people["analyst"], export_id)  # the file and its signed provenance
    assert prov.name == "provenance.intoto.jsonl"
    rows = list(csv.reader(io.StringIO(f.data.decode())))
    assert rows[0] == ["district", "loans", "rate"]
    assert len(rows) == 2 and rows[1][0] in {"500112", "500105"}  # 500199 (3 firms) was suppressed

    acts = _actions(wh, people)
    for a in ("dataset.registered", "ingest.committed", "job.submitted", "job.started", "query.released",
              "export.requested", "export.approved", "export.downloaded"):
        assert a in acts, a
    assert wh.audit_verify(people["auditor"]).ok


def test_other_tenant_sees_404_not_403(landed, people, job_dir):
    wh = landed
    job = wh.jobs.run(wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))["id"])
    export_id = wh.jobs.get(people["tax_steward"], job["id"])["export"]["id"]
    with pytest.raises(NotFound):
        wh.jobs.get(people["rival"], job["id"])
    with pytest.raises(NotFound):
        wh.exports.get(people["rival"], export_id)
    with pytest.raises(NotFound):
        wh.exports.download(people["rival"], export_id)
    assert wh.jobs.list(people["rival"]) == [] and wh.exports.list(people["rival"]) == []
    # a steward who stewards none of the job's datasets does not see it either
    with pytest.raises(NotFound):
        wh.exports.get(people["hrss_steward"], export_id)


def test_approval_is_bound_to_the_exact_bytes(landed, people, job_dir):
    wh = landed
    job = wh.jobs.run(wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))["id"])
    export_id = wh.jobs.get(people["tax_steward"], job["id"])["export"]["id"]
    with pytest.raises(Forbidden, match="other bytes"):
        wh.exports.decide(people["tax_steward"], export_id, "approve", "ok", "0" * 64)
    with pytest.raises(Forbidden):  # the enterprise cannot approve
        wh.exports.decide(people["analyst"], export_id, "approve", "mine", "0" * 64)
    with pytest.raises(NotFound):  # nor, while it is pending, even see it
        wh.exports.get(people["analyst"], export_id)
    digest = wh.exports.get(people["tax_steward"], export_id)["bundle_sha256"]
    with pytest.raises(NotFound):  # a steward of none of these datasets does not even see it
        wh.exports.decide(people["hrss_steward"], export_id, "approve", "ok", digest)
    wh.exports.decide(people["tax_steward"], export_id, "approve", "ok", digest)
    with pytest.raises(Forbidden, match="no pending decision"):  # one decision per steward and dataset
        wh.exports.decide(people["tax_steward"], export_id, "approve", "again", digest)
    e = wh.exports.decide(people["bank_steward"], export_id, "deny", "too granular", digest)
    assert e["state"] == "denied"
    assert wh.jobs.get(people["analyst"], job["id"])["state"] == "denied"
    with pytest.raises(Forbidden):
        wh.exports.download(people["analyst"], export_id)


def test_purpose_and_tenant_are_checked_at_submit(landed, people, job_dir):
    wh = landed
    with pytest.raises(AccessRefused):
        wh.jobs.submit(people["analyst"], job_dir(RATE_JOB, purpose="marketing"))
    with pytest.raises(AccessRefused):  # bank_b may read firms, not the bank's loans
        wh.jobs.submit(people["rival"], job_dir(RATE_JOB))
    assert _actions(wh, people, action="job.refused") == ["job.refused", "job.refused"]


def test_refused_queries_are_refused_with_reasons_and_audited(landed, people, job_dir):
    wh = landed
    code = """
        import json, twh_job
        out = {}
        for name, sql in [("star", "SELECT * FROM loans"),
                          ("identifier_group", "SELECT uscc, COUNT(*) FROM firms GROUP BY uscc"),
                          ("file_reader", "SELECT COUNT(*) FROM read_parquet('/etc/passwd')"),
                          ("undeclared", "SELECT COUNT(*) FROM social_insurance")]:
            try:
                twh_job.query(sql)
                out[name] = "released"
            except twh_job.BrokerError as exc:
                out[name] = exc.code
        twh_job.write_json("refusals.json", out)
    """
    job = wh.jobs.run(wh.jobs.submit(people["analyst"], job_dir(code))["id"])
    assert job["state"] == "awaiting_approval"
    got = wh.jobs.get(people["auditor"], job["id"])
    reasons = [q["details"]["reason"] for q in got["queries"]]
    assert [q["outcome"] for q in got["queries"]] == ["refused"] * 4
    assert all(reasons), reasons
    assert len(_actions(wh, people, action="query.refused")) == 4


def test_ingest_quarantines_bad_batch_and_is_idempotent(landed, people, tmp_path):
    wh = landed
    before = wh.datasets.show(people["tax_steward"], "firms")["current_version"]
    bad = tmp_path / "bad.csv"
    bad.write_text("uscc,industry,district,capital\nF1,C,500112,-5\n")
    with pytest.raises(ValidationFailed):
        wh.ingest.ingest(people["tax_steward"], "firms", bad)
    shown = wh.datasets.show(people["tax_steward"], "firms")
    assert shown["current_version"] == before and len(shown["quarantine"]) == 1
    assert "quarantine" not in wh.datasets.show(people["analyst"], "firms")  # steward-only report
    again = wh.ingest.ingest(people["tax_steward"], "firms", tmp_path / "firms.csv")
    assert again["status"] == "already_loaded"
    assert wh.datasets.show(people["tax_steward"], "firms")["current_version"] == before
    with pytest.raises(Forbidden):
        wh.ingest.ingest(people["bank_steward"], "firms", tmp_path / "firms.csv")


def test_restart_finds_jobs_intact_and_fails_interrupted_ones(landed, people, job_dir, settings):
    from sandbox.warehouse import Warehouse

    wh = landed
    queued = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    stuck = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    assert wh.jobs.claim(stuck["id"])  # the runner took it, then the service died
    wh.close()
    again = Warehouse.open(settings)
    assert again.jobs.recover() == 1
    assert again.jobs.get(people["auditor"], stuck["id"])["state"] == "failed"
    assert again.jobs.get(people["auditor"], queued["id"])["state"] == "queued"
    # the submitter sees neither: one state until a steward releases the failure's notice
    assert {again.jobs.get(people["analyst"], j["id"])["state"] for j in (stuck, queued)} == {"awaiting_review"}
    assert again.jobs.run(queued["id"])["state"] == "awaiting_approval"
    again.close()
