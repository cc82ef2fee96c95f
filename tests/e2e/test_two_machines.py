"""Two machines, simulated: two ``twh worker`` processes with homes of their own share only the
PostgreSQL catalog and the object store (tables on ``s3://``, via s3proxy), and run the queue's jobs
as one warehouse would: gated answers right, each DP charge made once, one audit chain that
verifies, exports approved and downloaded. Without the shared keys (sandbox/catalog/keys.py
``share_keys``) each machine would seal the audit chain and key the unit dictionary with a key of
its own; without the shared dictionary parts (sandbox/gate/unit_dictionary.py) a worker would give
units ids of its own, and the differencing ledger would count one firm as two.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from sandbox.catalog.db import DifferencingHead, Job
from sandbox.datasets.manifest import parse_manifest
from sandbox.gate.unit_dictionary import DICTIONARY_HEAD

from .conftest import FIRMS, LOANS, make_job, write_data

#: exact releases, so the answers can be checked against the raw files
EXACT = {"sdc": {"perturbation": "none"}}
X_FIRMS = {**FIRMS, "policy": {**FIRMS["policy"], **EXACT,
                               "output": {**FIRMS["policy"]["output"], "significant_digits": 17}}}
X_LOANS = {**LOANS, "policy": {**LOANS["policy"], **EXACT,
                               "output": {**LOANS["policy"]["output"], "significant_digits": 17}}}
DP_LOANS = {**LOANS, "name": "dp_loans",
            "policy": {**LOANS["policy"], "release_mode": "dp",
                       "dp": {"budget": {"epsilon": 10, "period": "month"}, "bounds": {"amount": [0, 500]},
                              "max_rows_per_unit": 5, "epsilon_per_query": 0.2}}}
#: (file, sql): half the jobs ask one, half the other (different populations: both workers build
#: sidecars of their own from the shared dictionary); each job also spends ε once
QUERIES = [
    ("rates.csv", "SELECT f.district, COUNT(*) AS loans, AVG(l.defaulted) AS rate FROM loans l "
                  "JOIN firms f ON l.uscc = f.uscc GROUP BY f.district"),
    ("industries.csv", "SELECT f.industry, COUNT(*) AS n, SUM(l.amount) AS amount FROM loans l "
                       "JOIN firms f ON l.uscc = f.uscc GROUP BY f.industry"),
]
JOB = """
    import time, twh_job
    time.sleep(2)   # long enough that the other worker, starting meanwhile, takes the next job
    twh_job.query("SELECT SUM(amount) AS v FROM dp_loans")
    twh_job.query({sql!r}).to_csv({name!r})
"""
N_JOBS = 4


@pytest.fixture
def shared_pg(request):
    from pg import find_bin_dir  # tests/pg.py, as tests/conftest.py imports it

    bin_dir = find_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip("two machines share a PostgreSQL catalog: the postgresql binaries are not installed "
                    "(apt-get install postgresql; .ci/run installs them)")
    return request.getfixturevalue("pg_url")


def _machine_env(base: dict[str, str], home: Path, url: str, raw: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("TWH_")}
    env.update(TWH_HOME=str(home), TWH_DATABASE_URL=url, TWH_STORAGE_URI=raw["storage_uri"],
               TWH_S3_ENDPOINT=raw["s3_endpoint"], TWH_S3_REGION=raw.get("s3_region", "us-east-1"),
               TWH_S3_ACCESS_KEY_ID=raw["s3_access_key_id"], TWH_S3_SECRET_ACCESS_KEY=raw["s3_secret_access_key"],
               TWH_LEASE_SECONDS="5", TWH_JOB_WALL_SECONDS="60")
    return env


def _expected(folder: Path) -> dict[str, list[list[str]]]:
    con = duckdb.connect()
    out = {}
    for name, sql in QUERIES:
        body = sql.replace("FROM loans l", f"FROM read_csv('{folder / 'loans.csv'}', all_varchar=false) l") \
                  .replace("JOIN firms f", f"JOIN read_csv('{folder / 'firms.csv'}', types={{'district': 'VARCHAR'}}) f")
        out[name] = [[str(v) for v in row] for row in con.execute(body).fetchall()]
    return out


def _rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


@pytest.mark.slow
def test_two_workers_on_two_machines_share_only_the_catalog_and_the_object_store(shared_pg, s3_server, tmp_path):
    from pydantic import SecretStr

    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    raw = s3_server.settings(s3_server.bucket())
    facade = Settings(home=tmp_path / "facade", database_url=shared_pg, job_wall_seconds=60,
                      **{**raw, "s3_access_key_id": SecretStr(raw["s3_access_key_id"]),
                         "s3_secret_access_key": SecretStr(raw["s3_secret_access_key"])})
    wh = Warehouse.open(facade)
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in [("tax_steward", "steward", "tax_bureau"), ("bank_steward", "steward", "bank_a"),
                               ("analyst", "enterprise", "bank_a"), ("auditor", "auditor", "regulator")]:
        wh.users.add(admin, name, role, tenant)
    p = {n: wh.users.principal(n) for n in ("tax_steward", "bank_steward", "analyst", "auditor")}
    data = tmp_path / "data"
    data.mkdir()
    firms, loans = write_data(data)
    for steward, manifest, path in ((p["tax_steward"], X_FIRMS, firms), (p["bank_steward"], X_LOANS, loans),
                                    (p["bank_steward"], DP_LOANS, loans)):
        wh.datasets.register(steward, parse_manifest(manifest))
        wh.ingest.ingest(steward, manifest["name"], path)
    with wh.db.read() as s:
        units = s.get(DifferencingHead, DICTIONARY_HEAD).populations  # the facade built the dictionary
    assert units == 120

    jobs = {}
    for i in range(N_JOBS):
        name, sql = QUERIES[i % 2]
        job = wh.jobs.submit(p["analyst"], make_job(tmp_path / f"job{i}", JOB.format(sql=sql, name=name),
                                                     datasets=("firms", "loans", "dp_loans")))
        jobs[job["id"]] = name

    homes = {wid: tmp_path / f"machine-{wid}" for wid in ("m1", "m2")}
    procs = {wid: subprocess.Popen([sys.executable, "-m", "sandbox.interfaces.cli.main", "--json", "worker",
                                    "--id", wid], env=_machine_env(dict(os.environ), home, shared_pg, raw),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for wid, home in homes.items()}
    try:
        deadline = time.monotonic() + 180
        while not all(wh.jobs.get(p["bank_steward"], j)["state"] in ("awaiting_approval", "failed") for j in jobs):
            for wid, proc in procs.items():
                if proc.poll() is not None:
                    raise AssertionError(f"worker {wid} stopped: {proc.stderr.read().decode()[-3000:]}")
            assert time.monotonic() < deadline, "the workers did not finish the queue"
            time.sleep(0.3)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    views = {j: wh.jobs.get(p["bank_steward"], j) for j in jobs}
    for j, v in views.items():
        # the logs a worker wrote are read here, on another machine
        logs = wh.jobs.logs(p["bank_steward"], j)
        assert v["state"] == "awaiting_approval", (v["state"], v.get("reason"), logs["stderr"][-2000:])
        assert "Traceback" not in logs["stderr"]
    with wh.db.read() as s:
        took = Counter(s.get(Job, j).worker_id for j in jobs)
    assert set(took) == {"m1", "m2"}, took  # both machines ran jobs
    # each machine kept its own home: scratch, keys, dictionary copies, never the tables
    for home in homes.values():
        assert (home / "secrets" / "audit.key").read_bytes() == (facade.secrets_dir / "audit.key").read_bytes()
        assert not any((home / "tables").rglob("*"))

    # the unit dictionary stayed one: no worker handed out ids of its own for units it already had
    with wh.db.read() as s:
        assert s.get(DifferencingHead, DICTIONARY_HEAD).populations == 120

    # ε is charged in the one ledger: never twice for one job; a job that asked what another had
    # already been answered got the stored answer free (two that asked at once both paid, as on one machine)
    history = wh.budgets.show(p["bank_steward"], "dp_loans")["history"]
    charged = Counter(h["job_id"] for h in history)
    assert 1 <= len(history) <= N_JOBS and set(charged) <= set(jobs) and set(charged.values()) == {1}
    spent = wh.budgets.show(p["bank_steward"], "dp_loans")["scopes"][0]["spent"]["epsilon"]
    assert float(spent) == pytest.approx(0.2 * len(history))
    released = Counter(r["object_id"] for r in wh.audit_records(p["auditor"], action="query.released", limit=1000))
    assert released == Counter({j: 2 for j in jobs})  # the DP question and the sdc one, each once

    # approve and download every export: the gated answers are the raw files' (exact policy)
    expected = _expected(data)
    for j, name in jobs.items():
        e = wh.exports.get(p["tax_steward"], views[j]["export"]["id"])
        e = wh.exports.decide(p["tax_steward"], e["id"], "approve", "ok", e["bundle_sha256"])
        e = wh.exports.decide(p["bank_steward"], e["id"], "approve", "ok", e["bundle_sha256"])
        assert e["state"] == "approved"
        f, prov = wh.exports.download(p["analyst"], e["id"])
        assert f.name == name and prov.name == "provenance.intoto.jsonl"
        header, *rows = _rows(f.data)
        want = {r[0]: r[1:] for r in expected[name]}
        assert rows and all(r[0] in want for r in rows)
        for r in rows:
            assert int(r[1]) == int(want[r[0]][0])
            assert float(r[2]) == pytest.approx(float(want[r[0]][1]), rel=1e-9)
        if name == "rates.csv":
            assert "500199" not in {r[0] for r in rows}  # 3 firms: suppressed on any machine
        else:
            assert len(rows) == 3

    audit = wh.audit_verify(p["auditor"])
    assert audit.ok, audit
    started = Counter(r["object_id"] for r in wh.audit_records(p["auditor"], action="job.started", limit=1000))
    assert started == Counter({j: 1 for j in jobs})
    wh.close()
