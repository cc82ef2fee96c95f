"""The pages through ASGI (no browser): sessions, CSRF, roles and tenants, escaping, audit search."""

from __future__ import annotations

import csv
import io
import json

from sandbox.interfaces.web.sessions import COOKIE

from .conftest import csrf_of, login


def test_pages_need_a_session_and_login_needs_the_forms_nonce(site):
    c = site.client()
    r = c.get("/ui/queue", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    # a login POST from another site (no nonce cookie of ours) is refused: no login CSRF
    r = c.post("/ui/login", data={"token": site.tokens["auditor"], "nonce": "forged.sig"}, follow_redirects=False)
    assert r.status_code == 403 and COOKIE not in r.cookies
    r = login(c, site.tokens["auditor"])
    assert r.status_code == 303 and r.headers["location"] == "/ui/audit"
    set_cookie = r.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie.replace("Strict", "strict")
    assert site.tokens["auditor"] not in set_cookie
    assert c.get("/ui/audit").status_code == 200


def test_a_forged_or_unsigned_session_cookie_is_no_session(site):
    c = site.client("tax_steward")
    good = c.cookies[COOKIE]
    sid, _, sig = good.partition(".")
    for forged in (sid + ".0" * 16, sid, "x." + sig, "a" * 300):
        c.cookies.set(COOKIE, forged)
        assert c.get("/ui/queue", follow_redirects=False).status_code == 303
    c.cookies.set(COOKIE, good)
    assert c.get("/ui/queue", follow_redirects=False).status_code == 200


def test_revoking_the_token_ends_its_sessions(site):
    admin = site.p("admin")
    token = site.wh.users.add(admin, "temp_auditor", "auditor", "regulator")[1]
    c = site.client()
    login(c, token)
    assert c.get("/ui/audit", follow_redirects=False).status_code == 200
    site.wh.users.revoke_tokens(admin, "temp_auditor")
    assert c.get("/ui/audit", follow_redirects=False).status_code == 303


def test_pages_carry_a_strict_csp_and_no_inline_script(site):
    r = site.client("tax_steward").get(f"/ui/exports/{site.export_id}")
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "unsafe-inline" not in csp
    assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text and " style=" not in r.text


def test_export_review_shows_files_gate_decisions_and_binds_the_shown_bundle(site):
    c = site.client("tax_steward")
    r = c.get(f"/ui/exports/{site.export_id}")
    bundle = site.wh.exports.get(site.p("admin"), site.export_id)["bundle_sha256"]
    assert f'name="bundle_sha256" value="{bundle}"' in r.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in r.text and "<b>bold</b>" not in r.text  # JSON pretty, escaped
    assert "groups released" in r.text and "suppressed" in r.text
    # a decision for other bytes is refused by the service: a 403 page, nothing recorded
    r = c.post(f"/ui/exports/{site.export_id}/decision",
               data={"csrf": csrf_of(r.text), "decision": "approve", "reason": "ok", "bundle_sha256": "0" * 64})
    assert r.status_code == 403 and "other bytes" in r.text
    assert site.wh.exports.get(site.p("admin"), site.export_id)["approvals"] == []


def test_the_enterprise_sees_status_but_not_unapproved_files_queries_or_logs(site):
    c = site.client("analyst")
    r = c.get(f"/ui/exports/{site.export_id}")
    # a pending export does not exist for its submitter: its existence and timing would tell what the job did
    assert r.status_code == 404 and "rates.csv" not in r.text
    r = c.get(f"/ui/jobs/{site.job['id']}")
    assert r.status_code == 200 and "groups released" not in r.text and 'class="grid queries"' not in r.text
    assert "awaiting review" in r.text and site.export_id not in r.text
    assert c.get(f"/ui/exports/{site.export_id}/files/rates.csv").status_code == 404  # not approved yet
    assert c.get("/ui/audit").status_code == 403  # not an auditor: the service's 403, as a page


def test_another_tenant_gets_404_pages(site):
    c = site.client("rival")
    for path in (f"/ui/jobs/{site.job['id']}", f"/ui/exports/{site.export_id}",
                 f"/ui/exports/{site.export_id}/files/rates.csv"):
        r = c.get(path)
        assert r.status_code == 404 and "Not found" in r.text, path
    assert site.job["id"] not in c.get("/ui/jobs").text
    # a steward of an unrelated dataset is just as blind
    assert site.client("hrss_steward").get(f"/ui/exports/{site.export_id}").status_code == 404


def test_dataset_page_shows_contract_versions_and_quarantine_to_its_steward_only(site):
    r = site.client("tax_steward").get("/ui/datasets/firms")
    assert r.status_code == 200
    assert "expect_column_values_to_not_be_null" in r.text and "v1" in r.text
    assert "Quarantine" in r.text and "no DP budget" in r.text
    r = site.client("analyst").get("/ui/datasets/firms")
    assert r.status_code == 200 and "Quarantine" not in r.text and "Gate decisions" not in r.text
    assert site.client("analyst").get("/ui/datasets/nope").status_code == 404


def test_dataset_page_plots_a_budget_when_the_warehouse_keeps_one(site, monkeypatch):
    class Ledger:
        def show(self, who, name):
            return {"dataset": name, "budget": {"epsilon": "2", "delta": "0"},
                    "history": [{"at": "2026-01-01T10:00:00", "epsilon": "1/2"}]}
    monkeypatch.setattr(site.wh, "budgets", Ledger(), raising=False)
    r = site.client("tax_steward").get("/ui/datasets/firms")
    assert "no DP budget" not in r.text and 'alt="privacy budget burn-down"' in r.text


def test_audit_search_filters_paginates_and_exports(site):
    c = site.client("auditor")
    r = c.get("/ui/audit", params={"action": "query.*", "limit": 1})
    assert "1–1 of 1" in r.text and "query.released" in r.text
    r = c.get("/ui/audit", params={"job": site.job["id"], "limit": 200})
    for action in ("job.submitted", "job.started", "query.released", "export.requested"):
        assert action in r.text
    r = c.get("/ui/audit", params={"actor": "rival"})
    assert "No record matches" in r.text or "rival" in r.text
    r = c.get("/ui/audit", params={"since": "2999-01-01"})
    assert "No record matches" in r.text
    assert c.get("/ui/audit", params={"since": "yesterday"}).status_code == 422
    r = c.get("/ui/audit/export.jsonl", params={"action": "export.*"})
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert rows and all(x["action"].startswith("export.") for x in rows)
    r = c.get("/ui/audit/export.csv", params={"tenant": "bank_a"})
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert table and {x["tenant"] for x in table} == {"bank_a"}
    assert c.get("/ui/audit/export.xml").status_code == 422
    exported = site.wh.audit_records(site.p("auditor"), action="audit.exported")
    assert exported[-1]["details"] == {"filter": {"tenant": "bank_a"}, "format": "csv"}


def test_replay_and_activity_pages(site):
    c = site.client("auditor")
    r = c.get(f"/ui/audit/jobs/{site.job['id']}")
    assert r.status_code == 200 and "FROM loans l JOIN firms f" in r.text and site.export_id in r.text
    assert c.get("/ui/audit/jobs/job_0000000000000000").status_code == 404
    r = c.get("/ui/audit/activity", params={"bucket": "minute", "hide_token_use": "true"})
    assert r.status_code == 200 and r.text.count('src="data:image/svg+xml;base64,') == 2


def test_every_list_endpoint_pages_with_offset_and_limit(site):
    """API convention: a GET that lists takes offset/limit and answers {items, total, offset, limit}."""
    schema = site.app.openapi()
    lists = [p for p, ops in schema["paths"].items() if "get" in ops and not p.endswith("}")
             and p.rsplit("/", 1)[-1] in ("datasets", "jobs", "exports", "records")]
    assert set(lists) >= {"/v1/datasets", "/v1/jobs", "/v1/exports", "/v1/audit/records"}
    c = site.client()
    h = {"Authorization": f"Bearer {site.tokens['auditor']}"}
    for path in lists:
        params = {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}
        assert {"offset", "limit"} <= params, path
        page = c.get(path, params={"offset": 1, "limit": 2}, headers=h).json()
        assert {"items", "total", "offset", "limit"} <= set(page) and page["offset"] == 1, path
        assert len(page["items"]) <= 2
        bad = c.get(path, params={"limit": 0}, headers=h)
        assert bad.status_code == 422 and set(bad.json()) == {"error"}, path
    assert not any(p.startswith("/ui") for p in schema["paths"])  # pages stay out of the API schema


def test_a_failed_jobs_page_says_what_happened_not_no_export_yet(site, tmp_path):
    import textwrap

    import yaml

    jd = tmp_path / "crash"
    jd.mkdir()
    (jd / "job.yaml").write_text(yaml.safe_dump({"name": "crash", "purpose": "credit_risk", "datasets": ["firms"]}))
    (jd / "job.py").write_text(textwrap.dedent("raise SystemExit(4)\n"))
    job = site.wh.jobs.submit(site.p("analyst"), jd)
    site.wh.jobs.run(job["id"])
    mine = site.client("analyst").get(f"/ui/jobs/{job['id']}").text
    assert "No export (yet)" not in mine and "awaiting review" in mine and "exit" not in mine
    # the stewards see the failure and its one-line notice, theirs to release
    full = site.wh.jobs.get(site.p("admin"), job["id"])
    steward = site.client("tax_steward").get(f"/ui/jobs/{job['id']}").text
    assert "failed" in steward and full["export"]["id"] in steward and "exit" in full["reason"]
    notice = site.wh.exports.get(site.p("tax_steward"), full["export"]["id"])
    site.wh.exports.decide(site.p("tax_steward"), notice["id"], "approve", "ok", notice["bundle_sha256"])
    mine = site.client("analyst").get(f"/ui/jobs/{job['id']}").text
    assert "failed" in mine and "twh job run-local" in mine  # the released reason and the one fixed hint
    queued = site.wh.jobs.submit(site.p("analyst"), jd)
    assert "No export yet: the job is queued" in site.client("tax_steward").get(f"/ui/jobs/{queued['id']}").text


def test_binary_files_are_described_never_decoded_as_text():
    import numpy as np

    from dp.training.weights import write_safetensors
    from sandbox.interfaces.web.files import show_file

    data = write_safetensors({"w": np.zeros((3, 4), np.float32), "b": np.zeros(4, np.float32)}, {"job_id": "j"})
    f = show_file("model.safetensors", data)
    assert f.kind == "binary" and f.text == "" and f.size == len(data)
    assert sorted((t["name"], t["dtype"], tuple(t["shape"])) for t in f.tensors) == [("b", "F32", (4,)),
                                                                                     ("w", "F32", (3, 4))]
    assert f.metadata == {"job_id": "j"}
    broken = show_file("model.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    assert broken.kind == "binary" and broken.tensors == [] and "not a readable safetensors file" in broken.problem
    assert show_file("chart.png", b"\x89PNG\r\n\x1a\n\x00").kind == "binary"
    assert show_file("rates.csv", b"a,b\n\xff\xfe\n").kind == "binary"  # not UTF-8: not shown as text
    assert show_file("rates.csv", b"a,b\n1,2\n").kind == "csv"
