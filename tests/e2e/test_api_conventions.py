"""The API's conventions, checked by walking what it publishes and calling it the four ways people do.

* every operation in ``app.openapi()`` has a summary (set on purpose, not generated from the
  function name), a description, a response model with an example, request-body examples for
  POST/PUT, and error answers in the one shape (``ErrorOut``) with codes under their own status;
* the same failure gives the same stable code through the API (JSON), the SDK (the exception's
  ``code``, same class), and the CLI (``--json``, remote and local) — and the error table in
  ARCHITECTURE.md lists exactly the codes and statuses of :mod:`sandbox.errors`;
* every list endpoint pages (``offset``/``limit``/``total``), checked on live answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from serving import serving
from typer.testing import CliRunner

from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import ERRORS_BY_CODE, TwhError
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.cli.main import app as cli_app
from sandbox.interfaces.client import Client, LocalClient
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]
#: responses that are not lists of things but one whole thing, and why they are not paged
WHOLE = {
    "/v1/exports/{export_id}/preview": "an export's bundle: its hash covers every file, so it is all or nothing",
    "/v1/exports/{export_id}/download": "the same bundle, after approval",
    "/v1/datasets/{name}/budget": "one ledger summary: the burn-down needs every charge",
    "/v1/datasets/{name}/history": "one table's Delta versions, bounded by its commits",
    "/v1/audit/verify": "one verification report: it counts every problem and names the first 100",
}
STABLE = {"/v1/audit/records": {"action": "user.added"}}
#: a subject whose access log the fixture fills (the products' list under a path parameter)
SUBJECT = "91500000000000000001"
PATH_PARAMS = {"/v1/subjects/{subject}/activity": {"subject": SUBJECT}}
DP_MANIFEST = {
    "name": "loans", "provider_kind": "market", "stewards": ["steward"],
    "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
               {"name": "industry", "type": "string", "role": "dimension", "nullable": False},
               {"name": "amount", "type": "float64", "role": "measure", "nullable": False}],
    "policy": {"tenants": ["bank_a"], "purposes": ["x"], "privacy_unit": "uscc", "release_mode": "dp",
               "dp": {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]}, "budget": {"epsilon": 1},
                      "epsilon_per_query": 0.5, "public_keys": {"industry": ["C", "F", "G"]},
                      "synthetic": {"epsilon": 2, "rows": 100}},
               "subject_results": {"allowed": True}},
}


def _products(wh: Warehouse, tmp: Path) -> None:
    """Two of each product list (features, catalog models, verification products, authorisations) and
    a subject with two uses, so that each of those lists has a second page."""
    from product_site import train_standin

    steward, analyst = wh.users.principal("steward"), wh.users.principal("analyst")
    for name, kind, expr in (("loan_total", "numeric", "SUM(l.amount)"), ("loan_big", "numeric",
                             "MAX(CASE WHEN l.amount > 250 THEN 1 ELSE 0 END)"),
                             ("loan_industry", "categorical", "MAX(l.industry)")):
        wh.products.features.publish(steward, {"name": name, "kind": kind,
                                               "sql": f"SELECT {expr} AS {name} FROM loans l GROUP BY l.uscc"})
    for n in range(2):
        job = tmp / f"train{n}"
        job.mkdir()
        (job / "job.yaml").write_text(yaml.safe_dump({"name": f"t{n}", "purpose": "x", "datasets": ["loans"], "train": {
            "features": ["loan_total@1", "loan_industry@1", "loan_big@1"], "label": "loan_big",
            "numeric": {"loan_total": {"range": [0, 5000]}}, "categorical": {"loan_industry": ["C", "F", "G"]},
            "model": {"kind": "logreg"}, "privacy": {"epsilon": 1, "delta": 1e-7}}}))
        (job / "job.py").write_text("open('/out/n.csv', 'w').write('n\\n1\\n')\n")
        done = train_standin(wh, LocalClient(wh, "analyst"), job)
        wh.exports.decide(steward, done["export"]["id"], "approve", "ok", wh.exports.get(
            wh.users.principal("admin"), done["export"]["id"])["bundle_sha256"])
        m = wh.products.models.propose(analyst, done["export"]["id"], name=f"loan_model_{n}", tenants=["bank_a"],
                                       purposes=["x"])
        wh.products.models.approve(steward, m["ref"], m["terms_sha256"])
    for n in range(2):
        wh.products.verification.define(steward, {"name": f"total_at_least_{n}", "feature": "loan_total@1",
                                                  "kind": "at_least", "thresholds": [100, 1000], "tenants": ["bank_a"],
                                                  "purposes": ["x"]})
        wh.authorisations.grant(steward, subject=SUBJECT if n else "91500000000000000002", tenant="bank_a",
                                purpose="x", datasets=["loans"], valid_until="2030-01-01", consent_sha256="0" * 64)
    for claim in (100, 1000):  # the second distinct threshold is refused: both are the subject's uses
        wh.products.verification.verify(analyst, "total_at_least_0@1", SUBJECT, "x", claim=claim)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conventions")
    wh = Warehouse.open(Settings(home=tmp / "wh", run_worker=False))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    tokens = {"admin": wh.users.issue_token(admin, "admin")}
    for name, role, tenant in [("steward", "steward", "gov"), ("analyst", "enterprise", "bank_a")]:
        tokens[name] = wh.users.add(admin, name, role, tenant)[1]
    wh.datasets.register(wh.users.principal("steward"), parse_manifest(DP_MANIFEST))
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"uscc": [f"9150{i:014d}" for i in rng.integers(0, 80, 200)],
                             "industry": rng.choice(["C", "F", "G"], 200).tolist(),
                             "amount": rng.uniform(0, 500, 200)}), tmp / "loans.parquet")
    wh.ingest.ingest(wh.users.principal("steward"), "loans", tmp / "loans.parquet")
    wh.datasets.register(wh.users.principal("steward"), parse_manifest({**DP_MANIFEST, "name": "loans_copy"}))
    for n in range(2):  # two jobs, two exports: every list has a second page
        job = tmp / f"job{n}"
        job.mkdir()
        (job / "job.yaml").write_text(yaml.safe_dump({"name": f"j{n}", "purpose": "x", "datasets": ["loans"]}))
        (job / "job.py").write_text("open('/out/n.csv', 'w').write('n\\n1\\n')\n")
        wh.jobs.run(wh.jobs.submit(wh.users.principal("analyst"), job)["id"])
    _products(wh, tmp)
    app = create_app(warehouse=wh)
    with serving(app) as url:
        yield {"wh": wh, "app": app, "url": url, "tokens": tokens, "home": tmp / "wh"}
    wh.close()


# -- the published document ------------------------------------------------------------------------------
def _operations(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in app.openapi()["paths"].items() for method, op in item.items()]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _has_example(media: dict[str, Any]) -> bool:
    return bool(media.get("example") is not None or media.get("examples"))


def test_every_operation_has_a_summary_description_response_model_examples_and_error_answers(site):
    app = site["app"]
    doc = app.openapi()
    chosen = {(r.path, m.lower()) for r in app.routes if getattr(r, "include_in_schema", False) and
              getattr(r, "summary", None) for m in getattr(r, "methods", ())}
    problems = []
    for path, method, op in _operations(app):
        where = f"{method.upper()} {path}"
        if (path, method) not in chosen:
            problems.append(f"{where}: no summary of its own (FastAPI made one from the function name)")
        if not (op.get("description") or "").strip():
            problems.append(f"{where}: no description")
        ok = [(s, r) for s, r in op["responses"].items() if s.startswith("2")]
        if len(ok) != 1:
            problems.append(f"{where}: {len(ok)} success answers")
            continue
        content = ok[0][1].get("content") or {}
        for mt, media in content.items():
            if mt == "application/json" and "$ref" not in media.get("schema", {}):
                problems.append(f"{where}: the JSON answer has no response model")
            if not _has_example(media):
                problems.append(f"{where}: no example of the {mt} answer")
        if not content:
            problems.append(f"{where}: the success answer has no content")
        if method in ("post", "put", "patch"):
            body = (op.get("requestBody") or {}).get("content") or {}
            if not body or not all(_has_example(m) for m in body.values()):
                problems.append(f"{where}: the request body has no example")
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        for needed in ("401", "422"):
            if needed not in errors:
                problems.append(f"{where}: no {needed} answer")
        for status, resp in errors.items():
            media = resp.get("content", {}).get("application/json", {})
            if _resolve(doc, media.get("schema", {})).get("title") != "ErrorOut":
                problems.append(f"{where}: {status} is not the ErrorOut shape")
            for name, ex in (media.get("examples") or {}).items():
                code = ex["value"]["error"]["code"]
                if code != name or code not in ERRORS_BY_CODE or str(ERRORS_BY_CODE[code].http_status) != status:
                    problems.append(f"{where}: example {name!r} under {status} has code {code!r}")
            if not media.get("examples"):
                problems.append(f"{where}: {status} lists no error code")
    assert not problems, "\n".join(problems)
    assert "HTTPValidationError" not in doc["components"]["schemas"]  # FastAPI's own 422 shape is not ours


# -- one failure, one code, every surface ------------------------------------------------------------------
FAILURES = [
    # (expected code, who, HTTP method + path, SDK call, CLI arguments)
    ("not_found", "analyst", ("GET", "/v1/datasets/nope", None), lambda c: c.show_dataset("nope"),
     ["dataset", "show", "nope"]),
    ("forbidden", "analyst", ("POST", "/v1/users", {"name": "evil", "role": "admin", "tenant": "bank_a"}),
     lambda c: c.add_user("evil", "admin", "bank_a"), ["user", "add", "evil", "--role", "admin", "--tenant", "x"]),
    ("budget_exhausted", "analyst", ("GET", "/v1/datasets/loans/synthetic?purpose=x", None),
     lambda c: c.synthetic_dataset("loans", purpose="x"), ["dataset", "synthetic", "loans", "--purpose", "x"]),
    ("unauthenticated", None, ("GET", "/v1/me", None), lambda c: c.whoami(), ["dataset", "list"]),
]


@pytest.mark.parametrize("code,who,http,sdk,cli", FAILURES, ids=[f[0] for f in FAILURES])
def test_the_same_failure_has_the_same_code_through_api_sdk_and_cli(site, code, who, http, sdk, cli):
    token = site["tokens"][who] if who else "twh_not_a_token"
    method, path, body = http
    r = httpx.request(method, site["url"] + path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == ERRORS_BY_CODE[code].http_status
    assert r.json()["error"]["code"] == code and set(r.json()["error"]) == {"code", "message", "details"}

    clients = [Client(site["url"], token)] + ([LocalClient(site["wh"], who)] if who else [])
    for client in clients:
        with pytest.raises(TwhError) as got:
            sdk(client)
        assert got.value.code == code and type(got.value) is ERRORS_BY_CODE[code], type(client).__name__

    runs = [["--url", site["url"], "--token", token]] + ([["--home", str(site["home"]), "--as", who]] if who else [])
    for mode in runs:
        res = CliRunner().invoke(cli_app, [*mode, "--json", *cli])
        assert res.exit_code == 2, res.output
        assert json.loads(res.stdout.strip().splitlines()[-1])["error"]["code"] == code, mode[0]


def test_the_error_table_lists_every_code_with_its_status():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    section = text[text.index("## Errors"):]
    section = section[:section.index("\n## ", 4)]
    rows = re.findall(r"^\| `([a-z_]+)` +\| (\d{3}) +\|", section, flags=re.M)
    assert rows, "ARCHITECTURE.md, Errors: no code table"
    assert dict((c, int(s)) for c, s in rows) == {c: cls.http_status for c, cls in ERRORS_BY_CODE.items()
                                                  if c != "error"}


# -- pagination --------------------------------------------------------------------------------------------
def _list_endpoints(app: Any) -> list[str]:
    """GET operations on a collection (not ``…/{id}``) whose answer carries a list at its top level."""
    doc = app.openapi()
    out = []
    for path, method, op in _operations(app):
        schema = op["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema")
        if method == "get" and schema and not path.endswith("}"):
            props = _resolve(doc, schema).get("properties", {})
            if any(p.get("type") == "array" or "array" in [x.get("type") for x in p.get("anyOf", [])]
                   for p in props.values()):
                out.append(path)
    return out


def test_every_list_endpoint_pages(site):
    app, url, admin = site["app"], site["url"], {"Authorization": f"Bearer {site['tokens']['admin']}"}
    lists = _list_endpoints(app)
    assert {"/v1/datasets", "/v1/jobs", "/v1/exports", "/v1/audit/records"} <= set(lists)
    doc = app.openapi()
    for path in lists:
        if path in WHOLE:
            continue
        params = {p["name"] for p in doc["paths"][path]["get"].get("parameters", [])}
        assert {"offset", "limit"} <= params, path
        stable = STABLE.get(path, {})  # the audit log grows with every call (token.used): page a fixed part
        path = path.format(**PATH_PARAMS.get(path, {}))
        whole = httpx.get(url + path, headers=admin, params={**stable, "limit": 1000}).json()
        assert {"items", "total", "offset", "limit"} <= set(whole), path
        assert whole["total"] >= 2, path  # so that the second page is a real test
        page = httpx.get(url + path, headers=admin, params={**stable, "offset": 1, "limit": 1}).json()
        assert page["total"] == whole["total"] and page["offset"] == 1 and page["limit"] == 1, path
        assert page["items"] == whole["items"][1:2], path
        for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}):
            r = httpx.get(url + path, headers=admin, params=bad)
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input", (path, bad)
    assert set(WHOLE) <= set(lists)  # an exception that no longer applies must go


def test_the_manifest_example_is_a_valid_manifest():
    from sandbox.interfaces.api.schema import MANIFEST_IN

    parse_manifest(yaml.safe_load(yaml.safe_dump(MANIFEST_IN["dataset"]["value"])))
