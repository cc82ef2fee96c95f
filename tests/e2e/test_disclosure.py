"""Statistical disclosure attacks through real jobs: sandbox → broker → gate → audit.

The gate-level versions (more shapes, dominance, p%, margins) are in tests/gate/; here each
attack is what an enterprise would submit, across two tenants sharing one ledger.
"""

from __future__ import annotations

import json

from sandbox.jobs.service import NOTHING_TO_EXPORT

ASK = """
    import json, twh_job
    def ask(label, sql):
        try:
            r = twh_job.query(sql)
            print(json.dumps([label, "released", r.rows]))
        except twh_job.BrokerError as e:
            print(json.dumps([label, "refused", e.details.get("rule"), e.message]))
"""

ALL = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM firms"
# district 500199 holds 3 firms (tests/e2e/conftest.py)
ALL_BUT_SMALL = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM firms WHERE district <> '500199'"
TRACKER_1 = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM firms WHERE district = '500199' OR industry = 'C'"
TRACKER_2 = "SELECT COUNT(*) AS n, SUM(capital) AS s FROM firms WHERE district = '500199' OR industry <> 'C'"
REWORDED_1 = "SELECT industry, COUNT(*) AS n FROM firms WHERE district = '500112' GROUP BY industry"
REWORDED_2 = "SELECT f.industry, COUNT(*) AS n FROM firms f WHERE f.district IN ('500112') GROUP BY f.industry"


def _job(wh, people, job_dir, who, calls):
    code = ASK + "".join(f"    ask({label!r}, {sql!r})\n" for label, sql in calls)
    job = wh.jobs.run(wh.jobs.submit(people[who], job_dir(code, datasets=("firms",)))["id"])
    # the job only prints (stdout is for the auditor here): it wrote no file, so it ends "nothing to export"
    assert job["state"] == "failed" and job["reason"] == NOTHING_TO_EXPORT, job["reason"]
    out = wh.jobs.logs(people["auditor"], job["id"])["stdout"]
    return job, {line[0]: line[1:] for line in map(json.loads, out.splitlines())}


def test_differencing_tracker_and_repeats_through_jobs(landed, people, job_dir):
    wh = landed
    job, got = _job(wh, people, job_dir, "analyst", [
        ("all", ALL), ("all_but_small", ALL_BUT_SMALL), ("tracker_1", TRACKER_1), ("tracker_2", TRACKER_2),
        ("reworded_1", REWORDED_1), ("reworded_2", REWORDED_2), ("repeat", REWORDED_1)])
    assert got["all"][0] == "released"
    # Q(all) - Q(all but 3 firms): refused
    assert got["all_but_small"][:2] == ["refused", "differencing"]
    # q(small or C) + q(small or not C) - q(all) = q(small): the second half is refused
    assert got["tracker_1"][0] == "released"
    assert got["tracker_2"][:2] == ["refused", "differencing"] and "tracker" in got["tracker_2"][2]
    # the same units however the filter is written: allowed, same numbers; an exact repeat is
    # answered from the stored release without running
    assert got["reworded_1"][0] == got["reworded_2"][0] == got["repeat"][0] == "released"
    assert sorted(got["reworded_1"][1]) == sorted(got["reworded_2"][1])
    assert got["repeat"][1] == got["reworded_1"][1]

    # Another tenant shares the ledger: its own Q(all but the small district) is refused too.
    _, rival = _job(wh, people, job_dir, "rival", [("mine", ALL_BUT_SMALL.replace("SUM(capital)", "AVG(capital)"))])
    assert rival["mine"][:2] == ["refused", "differencing"]

    records = wh.audit_records(people["auditor"], limit=1000)
    refusals = [r for r in records if r["action"] == "query.refused"]
    assert len(refusals) == 3 and {r["details"]["rule"] for r in refusals} == {"differencing"}
    # refusals name the rule and the shape, never which units or how many
    assert all("500199" not in r["details"]["reason"] for r in refusals)
    released = [r["details"] for r in records if r["action"] == "query.released" and r["object_id"] == job["id"]]
    assert [d.get("cached", False) for d in released] == [False, False, False, False, True]
    assert wh.audit_verify(people["auditor"]).ok

