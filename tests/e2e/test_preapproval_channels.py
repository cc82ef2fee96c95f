"""Issue 14, family 5: nothing the submitter sees before a steward acts depends on what the job did.

Jobs that succeed, fail, sleep, spend ε or write nothing are run for real (sandbox, broker, gate);
everything their submitter can read about them before review — the job (state, reason, times,
pinned versions, queries, export), the export list, the ε budget view, the release-budget view —
must be the same for all of them. The number of distinct views is the channel's capacity: one
view, log2(1) = 0 bits per job. Afterwards the stewards' decisions release what they approved.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest
import yaml

from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import QuotaExceeded

from .conftest import LOANS, make_job

DP_LOANS = {**LOANS, "name": "dp_loans",
            "policy": {**LOANS["policy"], "release_mode": "dp",
                       "dp": {"budget": {"epsilon": 10, "period": "month"}, "bounds": {"amount": [0, 500]},
                              "max_rows_per_unit": 5, "epsilon_per_query": 0.2}}}

JOBS = {
    "succeeds": """
        import twh_job
        twh_job.query("SELECT f.district, COUNT(*) AS n FROM firms f GROUP BY f.district").to_csv("a.csv")
    """,
    "fails": "raise SystemExit(3)\n",
    "sleeps": """
        import time, twh_job
        time.sleep(3)   # a duration chosen by what it saw
        twh_job.query("SELECT f.district, COUNT(*) AS n FROM firms f GROUP BY f.district").to_csv("a.csv")
    """,
    "spends": """
        import twh_job
        for agg in ("COUNT(*)", "SUM(amount)", "AVG(amount)"):
            twh_job.query(f"SELECT {agg} AS v FROM dp_loans")   # as many ε charges as it likes
        twh_job.query("SELECT f.district, COUNT(*) AS n FROM firms f GROUP BY f.district").to_csv("a.csv")
    """,
    "writes_nothing": """
        import twh_job
        twh_job.query("SELECT f.district, COUNT(*) AS n FROM firms f GROUP BY f.district")
    """,
    "refused_queries": """
        import twh_job
        for sql in ("SELECT * FROM firms", "SELECT uscc FROM firms"):
            try:
                twh_job.query(sql)
            except twh_job.BrokerError:
                pass
        twh_job.write_json("x.json", {"ok": 1})
    """,
}

#: per-job fields that differ by construction, not by behaviour (ids the submitter chose or was given)
# what the submitter knows of its own job anyway; under review, updated_at is the submission minute
# too (asserted below), so jobs submitted either side of a minute's turn differ only there
_OWN = ("id", "name", "code_sha256", "created_at", "updated_at")


def _view(wh, people, job_id):
    analyst = people["analyst"]
    job = {k: v for k, v in wh.jobs.get(analyst, job_id).items() if k not in _OWN}
    return {"job": job, "exports": wh.exports.list(analyst),
            "dp_budget": wh.budgets.show(analyst, "dp_loans"), "release_budget": wh.budgets.show(analyst, "firms")}


def test_every_job_looks_the_same_to_its_submitter_until_a_steward_acts(landed, people, tmp_path):
    wh = landed
    wh.datasets.register(people["bank_steward"], parse_manifest(DP_LOANS))
    wh.ingest.ingest(people["bank_steward"], "dp_loans", tmp_path / "loans.csv")
    budget_before = wh.budgets.show(people["analyst"], "dp_loans")
    views, ids = {}, {}
    for name, code in JOBS.items():
        job = wh.jobs.submit(people["analyst"], make_job(tmp_path / name, code, datasets=("firms", "dp_loans")))
        wh.jobs.run(job["id"])
        ids[name] = job["id"]
        views[name] = _view(wh, people, job["id"])
        assert views[name]["job"]["state"] == "awaiting_review"
        seen = wh.jobs.get(people["analyst"], job["id"])
        created = dt.datetime.fromisoformat(seen["created_at"])
        assert created.second == 0 and created.microsecond == 0  # the submission time, to the minute
        assert seen["updated_at"] == seen["created_at"]  # nothing later: no time the job could move
    # the jobs really did behave differently (the stewards see it)
    real = {n: wh.jobs.get(people["bank_steward"], i) for n, i in ids.items()}
    assert real["fails"]["state"] == "failed" and real["succeeds"]["state"] == "awaiting_approval"
    assert len({v["state"] for v in real.values()}) == 2
    charged = [h for h in wh.budgets.show(people["bank_steward"], "dp_loans")["history"] if h["job_id"] == ids["spends"]]
    assert len(charged) == 3, wh.jobs.get(people["bank_steward"], ids["spends"])["queries"]
    # ... and their submitter cannot tell them apart, nor the budgets from before any of them ran
    distinct = {yaml.safe_dump(v, sort_keys=True) for v in views.values()}
    bits = math.log2(len(distinct))
    assert bits == 0, {n: v["job"] for n, v in views.items()}
    assert views["succeeds"]["dp_budget"] == budget_before
    # once the stewards decide, the submitter sees what they released: here, the spending job's
    # charges count in the totals again
    export = wh.exports.get(people["bank_steward"], real["spends"]["export"]["id"])
    for steward in ("tax_steward", "bank_steward"):
        wh.exports.decide(people[steward], export["id"], "approve", "ok", export["bundle_sha256"])
    after = wh.budgets.show(people["analyst"], "dp_loans")
    spent = {s["scope"]: s["spent"]["epsilon"] for s in after["scopes"]}
    assert spent != {s["scope"]: s["spent"]["epsilon"] for s in budget_before["scopes"]}
    assert wh.jobs.get(people["analyst"], ids["spends"])["state"] == "released"


def test_a_tenant_may_submit_only_the_policys_jobs_per_day(landed, people, tmp_path):
    """The residual channels (the stewards' decisions and their timing) carry at most a few bits
    per job; the policy bounds the jobs per tenant and day, so per day as well."""
    wh = landed
    limited = {**LOANS, "name": "limited_loans",
               "policy": {**LOANS["policy"], "output": {**LOANS["policy"]["output"], "max_jobs_per_day": 2}}}
    wh.datasets.register(people["bank_steward"], parse_manifest(limited))
    for i in range(2):
        wh.jobs.submit(people["analyst"], make_job(tmp_path / f"j{i}", "print(1)\n", datasets=("limited_loans",)))
    with pytest.raises(QuotaExceeded) as e:
        wh.jobs.submit(people["analyst"], make_job(tmp_path / "j3", "print(1)\n", datasets=("limited_loans",)))
    assert e.value.details == {"rule": "max_jobs_per_day", "dataset": "limited_loans", "limit": 2}
    assert e.value.http_status == 429
    # another tenant has its own count
    wh.jobs.submit(people["rival"], make_job(tmp_path / "r", "print(1)\n", datasets=("firms",)))
