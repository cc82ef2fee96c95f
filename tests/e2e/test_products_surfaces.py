"""Models and verification as products through every surface: HTTP API, SDK (``Client`` over HTTP and
``LocalClient``), the CLI (local and remote) and the web pages — same answers, same error codes."""

from __future__ import annotations

import json

import httpx
import pytest
from product_site import authorise, build_site
from serving import serving
from typer.testing import CliRunner

from sandbox.errors import NotFound
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.cli.main import app as cli_app
from sandbox.interfaces.client import Client, LocalClient

PURPOSE = "credit_decision"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    site = build_site(tmp_path_factory.mktemp("surfaces"), n_enterprises=200)
    wh = site["wh"]
    admin = site["people"]["admin"]
    applicant = site["codes"][0]
    wh.users.add(admin, "applicant", "subject", "applicants", applicant)
    tokens = {n: wh.users.issue_token(admin, n) for n in ("analyst", "tax_steward", "applicant", "auditor")}
    with serving(create_app(warehouse=wh)) as url:
        yield {**site, "url": url, "tokens": tokens, "applicant": applicant}
    wh.close()


def _signed_in(live, who):
    web = httpx.Client(base_url=live["url"], follow_redirects=True)
    nonce = web.get("/ui/login").text.split('name="nonce" value="')[1].split('"')[0]
    web.post("/ui/login", data={"token": live["tokens"][who], "nonce": nonce})
    return web


def _csrf(html):
    return html.split('name="csrf" value="')[1].split('"')[0]


def _cli(live, who, *args, remote=False):
    mode = ["--url", live["url"], "--token", live["tokens"][who]] if remote else \
        ["--home", str(live["root"] / "wh"), "--as", who]
    res = CliRunner().invoke(cli_app, [*mode, *args])
    return res


def test_the_applicant_authorises_the_bank_scores_verifies_and_the_applicant_sees_it(live, tmp_path):
    s = live["applicant"]
    consent = tmp_path / "consent.txt"
    consent.write_text("I authorise bank_a to use my tax and social-insurance records for one credit decision.\n")
    # the applicant's own account registers its consent (CLI, remote: over the API)
    res = _cli(live, "applicant", "--json", "authorize", "grant", s, "--tenant", "bank_a", "--purpose", PURPOSE,
               "--datasets", "tax_payments,social_insurance", "--until", "2027-12-31", "--consent", str(consent),
               remote=True)
    assert res.exit_code == 0, res.output
    auth = json.loads(res.stdout)
    assert auth["state"] == "active" and auth["registered_by"] == "applicant"
    # the bank scores it through the SDK over HTTP; an unauthorised firm beside it is refused
    other = live["codes"][1]
    with Client(live["url"], live["tokens"]["analyst"]) as bank:
        r = bank.score("default_risk@1", [s, other], PURPOSE, inputs={s: {"avg_loan": 300}, other: {"avg_loan": 300}})
        assert [x["status"] for x in r["results"]] == ["scored", "refused"]
        assert r["results"][0]["authorisations"] == [auth["id"]]
        v = bank.verify("vat_2023_at_least@1", s, PURPOSE, claim=100000)
        assert v["status"] == "answered" and v["answer"] in ("yes", "no", "unknown")
    # the same through the CLI, local mode (the decision flow, then the check once more: same claim)
    res = _cli(live, "analyst", "score", "now", "default_risk@1", s, "--purpose", PURPOSE, "--input", "avg_loan=300")
    assert res.exit_code == 0 and "scored" in res.stdout, res.output
    res = _cli(live, "analyst", "verify", "check", "vat_2023_at_least@1", s, "--purpose", PURPOSE, "--claim", "100000")
    assert res.exit_code == 0 and f"for {s}: {v['answer']}" in res.stdout, res.output
    # the applicant's access log: the API, the CLI, and the page agree
    log = httpx.get(f"{live['url']}/v1/subjects/{s}/activity",
                    headers={"Authorization": f"Bearer {live['tokens']['applicant']}"}).json()
    assert [(u["product_kind"], u["outcome"]) for u in log["items"]] == [
        ("verification", "answered"), ("model", "answered"), ("verification", "answered"), ("model", "answered")]
    assert all(u["verified"] for u in log["items"])
    res = _cli(live, "applicant", "subject", "activity", s, remote=True)
    assert res.exit_code == 0 and res.stdout.count("verified") >= 4 and "NOT VERIFIED" not in res.stdout
    web = _signed_in(live, "applicant")
    page = web.get("/ui/subject")
    assert page.status_code == 200 and "default_risk@1" in page.text and auth["id"] in page.text
    assert "vat_2023_at_least@1" in page.text and "not verified" not in page.text
    assert web.get("/ui/audit").status_code in (403, 404)  # a subject reads its own log, nothing else
    # and revokes there: the next score is refused
    page = web.get("/ui/subject")
    web.post(f"/ui/subject/authorisations/{auth['id']}/revoke", data={"csrf": _csrf(page.text)})
    with Client(live["url"], live["tokens"]["analyst"]) as bank:
        r = bank.score("default_risk@1", [s], PURPOSE, inputs={s: {"avg_loan": 300}})
    assert r["results"][0] == {"subject": s, "status": "refused", "reason": "not authorised"}


@pytest.mark.parametrize("ref", ["default_risk@7", "nope@1"])
def test_a_non_catalog_model_is_not_found_through_api_sdk_and_cli(live, ref):
    s = live["codes"][2]
    r = httpx.post(f"{live['url']}/v1/models/{ref}/score", json={"subjects": [s], "purpose": PURPOSE},
                   headers={"Authorization": f"Bearer {live['tokens']['analyst']}"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    for client in (Client(live["url"], live["tokens"]["analyst"]), LocalClient(live["wh"], "analyst")):
        with pytest.raises(NotFound):
            client.score(ref, [s], PURPOSE)
    for remote in (False, True):
        res = _cli(live, "analyst", "--json", "score", "now", ref, s, "--purpose", PURPOSE, remote=remote)
        assert res.exit_code == 2 and json.loads(res.stdout.strip().splitlines()[-1])["error"]["code"] == "not_found"


def test_the_catalog_library_and_pages_read_alike(live):
    with Client(live["url"], live["tokens"]["analyst"]) as bank:
        feats = {f["ref"] for f in bank.list_features()}
        assert {"avg_vat@1", "vat_2023@1"} <= feats
        assert bank.show_model("default_risk@1")["state"] == "published"
        assert [p["ref"] for p in bank.list_verifications()] == ["vat_2023_at_least@1"]
        assert bank.list_authorisations() == LocalClient(live["wh"], "analyst").list_authorisations()
    res = _cli(live, "tax_steward", "feature", "show", "avg_vat@1")
    assert res.exit_code == 0 and "reads tax_payments (uscc, vat_paid)" in res.stdout and "default_risk@1" in res.stdout
    res = _cli(live, "analyst", "model", "list", remote=True)
    assert res.exit_code == 0 and "default_risk@1" in res.stdout
    web = _signed_in(live, "tax_steward")
    for path, text in (("/ui/features", "avg_vat@1"), ("/ui/features/avg_vat@1", "tax_payments"),
                       ("/ui/models", "vat_2023_at_least@1"), ("/ui/models/default_risk@1", "Terms SHA-256")):
        page = web.get(path)
        assert page.status_code == 200 and text in page.text, path


def test_batch_scoring_through_the_cli(live, tmp_path):
    subjects = live["codes"][3:6]
    authorise(live, subjects)
    f = tmp_path / "applicants.csv"
    f.write_text("subject,avg_loan\n" + "".join(f"{s},{100 + i}\n" for i, s in enumerate(subjects)))
    res = _cli(live, "analyst", "--json", "score", "batch", "default_risk@1", str(f), "--purpose", PURPOSE, remote=True)
    assert res.exit_code == 0, res.output
    job = json.loads(res.stdout)
    assert job["state"] == "awaiting_review"
