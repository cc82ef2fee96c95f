"""A small landed warehouse with one job awaiting approval, and a signed-in TestClient per user."""

from __future__ import annotations

import re
import textwrap

import pytest
import yaml
from fastapi.testclient import TestClient

from sandbox.datasets.manifest import parse_manifest
from sandbox.interfaces.api.app import create_app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse
from tests.e2e.conftest import FIRMS, LOANS, write_data

USERS = [("tax_steward", "steward", "tax_bureau"), ("hrss_steward", "steward", "hrss"),
         ("bank_steward", "steward", "bank_a"), ("analyst", "enterprise", "bank_a"),
         ("rival", "enterprise", "bank_b"), ("auditor", "auditor", "regulator")]
RATE_JOB = """
    import twh_job
    r = twh_job.query('''SELECT f.district, COUNT(*) AS loans, AVG(l.defaulted) AS rate
                         FROM loans l JOIN firms f ON l.uscc = f.uscc GROUP BY f.district''')
    print("suppressed", r.suppressed)
    r.to_csv("rates.csv")
    with open("/out/meta.json", "w") as fh:
        fh.write('{"note": "<b>bold</b>", "n": 1}')
"""


class Site:
    def __init__(self, wh: Warehouse, app, tokens: dict[str, str], job: dict) -> None:
        self.wh, self.app, self.tokens, self.job = wh, app, tokens, job
        self.export_id = job["export"]["id"]

    def p(self, name: str):
        return self.wh.users.principal(name)

    def client(self, name: str | None = None) -> TestClient:
        c = TestClient(self.app, base_url="http://testserver")
        if name:
            login(c, self.tokens[name])
        return c


def login(c: TestClient, token: str):
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/ui/login").text).group(1)
    return c.post("/ui/login", data={"token": token, "nonce": nonce}, follow_redirects=False)


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("site")
    wh = Warehouse.open(Settings(home=tmp / "wh", job_wall_seconds=30, job_cpu_seconds=30, run_worker=False))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in USERS:
        wh.users.add(admin, name, role, tenant)
    firms, loans = write_data(tmp)
    wh.datasets.register(wh.users.principal("tax_steward"), parse_manifest(FIRMS))
    wh.datasets.register(wh.users.principal("bank_steward"), parse_manifest(LOANS))
    wh.ingest.ingest(wh.users.principal("tax_steward"), "firms", firms)
    wh.ingest.ingest(wh.users.principal("bank_steward"), "loans", loans)
    jd = tmp / "job"
    jd.mkdir()
    (jd / "job.yaml").write_text(yaml.safe_dump({"name": "rates", "purpose": "credit_risk",
                                                 "datasets": ["firms", "loans"]}))
    (jd / "job.py").write_text(textwrap.dedent(RATE_JOB))
    job = wh.jobs.submit(wh.users.principal("analyst"), jd)
    wh.jobs.run(job["id"])
    job = wh.jobs.get(admin, job["id"])
    assert job["state"] == "awaiting_approval", job["reason"]
    tokens = {n: wh.users.issue_token(admin, n) for n, _, _ in [("admin", 0, 0), *USERS]}
    yield Site(wh, create_app(warehouse=wh), tokens, job)
    wh.close()
