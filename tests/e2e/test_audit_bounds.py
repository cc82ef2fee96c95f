"""A job cannot grow the audit log without bound by asking refused queries (sandbox/audit/caps.py).

The attack of the issue: ~470 refused queries a second, each a hash-chained record with its whole
SQL — ~600 MB of unprunable log per 120 s job. With the cap, a job adds at most
``audit_refusals_per_job`` refusal records plus one summary with the exact count.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from sandbox.audit.caps import RefusalCap
from sandbox.audit.log import canonical, record_dict
from sandbox.broker.queries import MAX_SQL_CHARS
from sandbox.catalog.db import AuditRecord, JobQuery
from sandbox.settings import Settings

LIMIT = 20
REFUSALS = 3000
FLOOD = f"""
    import twh_job
    pad = "x" * 900
    refused = 0
    for i in range({REFUSALS}):
        try:
            twh_job.query(f"SELECT * FROM loans WHERE amount > {{i}} /* {{pad}} */")  # raw rows: refused
        except twh_job.BrokerError:
            refused += 1
    open("/out/n.csv", "w").write(f"refused\\n{{refused}}\\n")
"""


@pytest.fixture
def settings(tmp_path, catalog_url):
    return Settings(home=tmp_path / "wh", database_url=catalog_url, job_wall_seconds=120, job_cpu_seconds=120,
                    audit_refusals_per_job=LIMIT)


def _records_after(wh, seq: int) -> list[dict]:
    with wh.db.read() as s:
        return [record_dict(r) for r in s.execute(select(AuditRecord).where(AuditRecord.seq > seq)
                                                  .order_by(AuditRecord.seq)).scalars()]


def test_thousands_of_refused_queries_grow_the_log_by_a_bounded_amount(landed, people, job_dir):
    wh = landed
    with wh.db.read() as s:
        before = s.execute(select(func.max(AuditRecord.seq))).scalar_one()
    job = wh.jobs.submit(people["analyst"], job_dir(FLOOD))
    wh.jobs.run(job["id"])
    done = wh.jobs.get(people["admin"], job["id"])
    assert done["state"] == "awaiting_approval", done["reason"]
    (export,) = wh.exports.preview(people["admin"], done["export"]["id"])
    assert export.data == f"refused\n{REFUSALS}\n".encode()  # every query was refused, none slipped through

    added = _records_after(wh, before)
    refused = [r for r in added if r["action"] == "query.refused"]
    (summary,) = [r for r in added if r["action"] == "query.refusals_counted"]
    assert len(refused) == LIMIT and all(r["details"]["sql"].startswith("SELECT * FROM loans") for r in refused)
    d = summary["details"]
    assert (d["refused"], d["recorded_verbatim"], d["counted"]) == (REFUSALS, LIMIT, REFUSALS - LIMIT)
    assert d["distinct_sql"] == REFUSALS - LIMIT and sum(d["by_code"].values()) == REFUSALS - LIMIT
    assert summary["object_id"] == job["id"] and summary["actor"] == "analyst"
    with wh.db.read() as s:  # the catalog's per-query rows are bounded the same way
        assert s.execute(select(func.count()).select_from(JobQuery)
                         .where(JobQuery.job_id == job["id"])).scalar_one() == LIMIT
    assert wh.audit.verify().ok  # the chain stays exact

    grown = sum(len(canonical(r)) for r in added)
    per_refusal = max(len(canonical(r)) for r in refused)
    # the policy bound: LIMIT records of at most MAX_SQL_CHARS of SQL (JSON-escaped: <= 6 bytes a
    # character) plus overhead, one summary, and the job's own few lifecycle records
    bound = LIMIT * (6 * MAX_SQL_CHARS + 4096) + 8 * 4096
    print(json.dumps({"refusals": REFUSALS, "limit": LIMIT, "records_added": len(added), "bytes_added": grown,
                      "bytes_per_verbatim_refusal": per_refusal, "bound": bound,
                      "uncapped_estimate": REFUSALS * per_refusal}))
    assert grown <= bound and len(added) <= LIMIT + 8


def test_the_cap_counts_exactly_and_summarises_once():
    written: list[tuple[str, str, dict]] = []
    cap = RefusalCap(lambda actor, job, details: written.append((actor, job, details)), limit=2)
    admitted = [cap.admit("ana", "job_1", f"{i % 3:064d}", "query_refused", "parse") for i in range(10)]
    assert admitted == [True, True] + [False] * 8 and cap.counted("job_1") == 8
    assert cap.admit("ana", "job_2", "0" * 64, "query_refused", None)  # another job has its own allowance
    assert cap.summarise("job_1") is not None
    ((actor, job, d),) = written
    assert (actor, job, d["refused"], d["counted"], d["distinct_sql"]) == ("ana", "job_1", 10, 8, 3)
    assert d["by_rule"] == {"parse": 8} and cap.summarise("job_1") is None  # once
    assert cap.summarise("job_2") is None and len(written) == 1  # nothing counted: no summary record
