"""The service over real HTTP (uvicorn in a thread) through the httpx client."""

from __future__ import annotations

import json
import random
import time

import httpx
import pytest
import yaml
from serving import serving

from sandbox.errors import AuthError, Forbidden, InvalidInput, NotFound
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.client import Client

from .conftest import FIRMS, LOANS, write_data
from .test_flow import RATE_JOB


@pytest.fixture
def served(wh, people):
    """A running service on a free loopback port, a token per user, and the app."""
    tokens = {name: wh.users.issue_token(people["admin"], name) for name in people}
    app = create_app(warehouse=wh)
    with serving(app) as url:
        yield url, tokens, app


@pytest.fixture
def server(wh, people):
    """A running service on a free loopback port, plus a token per user."""
    tokens = {name: wh.users.issue_token(people["admin"], name) for name in people}
    with serving(create_app(warehouse=wh)) as url:
        yield url, tokens


def _pending_export(steward, job_id: str, timeout: float = 120) -> str:
    """The export the service's worker made for ``job_id``, as its steward finds it in the queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        mine = [e for e in steward.list_exports("pending") if e["job_id"] == job_id]
        if mine:
            return mine[0]["id"]
        time.sleep(0.3)
    raise AssertionError(f"no export for {job_id}")


def test_flow_through_the_client(server, tmp_path, job_dir):
    url, tok = server
    firms, loans = write_data(tmp_path)
    (tmp_path / "firms.yaml").write_text(yaml.safe_dump(FIRMS))
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump(LOANS))
    tax, bank, analyst = (Client(url, tok[n]) for n in ("tax_steward", "bank_steward", "analyst"))
    tax.register_dataset(tmp_path / "firms.yaml")
    bank.register_dataset(tmp_path / "loans.yaml")
    assert tax.ingest("firms", firms)["status"] == "committed"
    assert bank.ingest("loans", loans)["version"] == 1
    assert [d["name"] for d in analyst.list_datasets()] == ["firms", "loans"]

    job = analyst.submit_job(job_dir(RATE_JOB), timeout=120)  # the service's worker runs it
    # the submitter's one state until a steward acts: it cannot tell when (or whether) the job ran
    assert job["state"] == "awaiting_review" and job["export"] is None, job
    export_id = _pending_export(tax, job["id"])
    with pytest.raises(NotFound):  # a pending export does not exist for its submitter
        analyst.download_export(export_id, tmp_path / "early")
    for c in (tax, bank):
        c.decide_export(export_id, "approve", "aggregates only")  # hash of the bytes it reviewed
    path, prov = analyst.download_export(export_id, tmp_path / "got")
    assert prov.name == "provenance.intoto.jsonl"
    assert path.read_text().startswith("district,loans,rate")
    auditor = Client(url, tok["auditor"])
    assert auditor.audit_verify()["ok"]
    used = auditor.audit_records(action="token.used", limit=1000)
    assert used and all(len(r["object_id"]) == 12 for r in used)  # a fingerprint, never the token
    assert all(tok["analyst"] not in json.dumps(r) for r in auditor.audit_records(limit=1000))


def test_auth_errors_have_one_shape_and_are_audited(served, wh, people):
    url, tok, app = served
    r = httpx.get(f"{url}/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    r = httpx.get(f"{url}/v1/me", headers={"Authorization": "Bearer twh_forged"})
    assert r.status_code == 401
    with pytest.raises(AuthError):
        Client(url, "twh_nope").whoami()
    app.state.auth_failures.flush(force=True)  # failures are recorded per source and window, with a count
    (rejected,) = wh.audit_records(people["auditor"], action="token.rejected")
    assert rejected["object_id"] == "127.0.0.1" and rejected["details"]["count"] == 2
    # alg=none style / garbage tokens: no 5xx
    for bad in ("eyJhbGciOiJub25lIn0.e30.", "x" * 500, "Bearer", "twh_%00"):
        r = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {bad}".encode("latin-1", "ignore")})
        assert r.status_code == 401


def test_mass_assignment_and_unknown_fields_are_refused(server):
    url, tok = server
    h = {"Authorization": f"Bearer {tok['admin']}"}
    r = httpx.post(f"{url}/v1/users", headers=h,
                   json={"name": "x1", "role": "enterprise", "tenant": "t", "is_admin": True})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"
    h = {"Authorization": f"Bearer {tok['tax_steward']}"}
    r = httpx.post(f"{url}/v1/exports/exp_x/decision", headers=h,
                   json={"decision": "approve", "reason": "r", "bundle_sha256": "0" * 64, "status": "approved"})
    assert r.status_code == 422


def test_roles_and_tenants(server):
    url, tok = server
    analyst, rival = Client(url, tok["analyst"]), Client(url, tok["rival"])
    with pytest.raises(Forbidden):
        analyst.add_user("evil", "admin", "bank_a")
    with pytest.raises(Forbidden):
        analyst.audit_verify()
    with pytest.raises(NotFound):
        rival.get_job("job_0000000000000000")
    with pytest.raises(InvalidInput):
        Client(url, tok["admin"]).add_user("Bad Name", "enterprise", "t")


def test_no_5xx_under_fuzzing(server):
    url, tok = server
    rnd = random.Random(11)
    paths = ["/v1/me", "/v1/users", "/v1/datasets", "/v1/datasets/x", "/v1/datasets/x/ingest", "/v1/jobs",
             "/v1/jobs/job_1", "/v1/jobs/job_1/logs", "/v1/exports", "/v1/exports/e/decision",
             "/v1/exports/e/download", "/v1/audit/verify", "/v1/audit/records", "/v1/../../etc/passwd"]
    bodies = [None, {}, [], "x", {"files": {"../job.yaml": "!!"}}, {"files": {"job.yaml": "bm90IHlhbWw6IFs="}},
              {"name": 1}, {"decision": "approve"}, {"schema": "x"}, {"a": "\x00" * 10}]
    with httpx.Client(base_url=url, timeout=30) as http:
        for _ in range(150):
            who = rnd.choice(list(tok))
            method = rnd.choice(["GET", "POST", "DELETE", "PUT"])
            body = rnd.choice(bodies)
            r = http.request(method, rnd.choice(paths) + rnd.choice(["", "?limit=-1", "?offset=x", "?limit=5000"]),
                             headers={"Authorization": f"Bearer {tok[who]}"},
                             json=body if method == "POST" else None)
            assert r.status_code < 500, (method, r.request.url, r.text)
            assert "error" in r.json() or r.status_code < 400
