"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis 4).

``schemathesis run`` (its CLI, as a subprocess) against the real service on a loopback port, over
a small warehouse with real objects (a DP dataset with data, jobs, exports) that the identifiers
point to most of the time. Positive and negative data, bounded examples, a fixed seed. Checks:
no server error, and every answer conforms to the document — status code, content type, headers
and body schema. Run as an admin (everything but revoking tokens: it would revoke its own) and as
an enterprise user (everything, revoking included). The figures are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from serving import serving

from sandbox.datasets.manifest import parse_manifest
from sandbox.interfaces.api.app import create_app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse

SEED = 20261205
MAX_EXAMPLES = 8
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance")
MANIFEST = {
    "name": "loans", "provider_kind": "market", "stewards": ["steward"],
    "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
               {"name": "industry", "type": "string", "role": "dimension", "nullable": False},
               {"name": "amount", "type": "float64", "role": "measure", "nullable": False}],
    "policy": {"tenants": ["bank_a"], "purposes": ["x"], "privacy_unit": "uscc", "release_mode": "dp",
               "dp": {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]}, "budget": {"epsilon": 20},
                      "epsilon_per_query": 0.5, "public_keys": {"industry": ["C", "F", "G"]},
                      "synthetic": {"epsilon": 2, "rows": 50}}},
}


def _schemathesis() -> str:
    exe = Path(sys.executable).with_name("schemathesis")
    if not exe.exists():
        pytest.fail("schemathesis is not installed in this environment: pip install 'training-warehouse[test]'")
    return str(exe)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    # every fuzzing request comes from one address: let its bad tokens be counted, not refused
    wh = Warehouse.open(Settings(home=tmp / "wh", run_worker=False, auth_failures_per_window=100_000))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    tokens = {"admin": wh.users.issue_token(admin, "admin")}
    for name, role, tenant in [("steward", "steward", "gov"), ("analyst", "enterprise", "bank_a")]:
        tokens[name] = wh.users.add(admin, name, role, tenant)[1]
    wh.datasets.register(wh.users.principal("steward"), parse_manifest(MANIFEST))
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"uscc": [f"9150{i:014d}" for i in rng.integers(0, 80, 300)],
                             "industry": rng.choice(["C", "F", "G"], 300).tolist(),
                             "amount": rng.uniform(0, 500, 300)}), tmp / "loans.parquet")
    wh.ingest.ingest(wh.users.principal("steward"), "loans", tmp / "loans.parquet")
    jobs = []
    for n in range(2):
        job = tmp / f"job{n}"
        job.mkdir()
        (job / "job.yaml").write_text(yaml.safe_dump({"name": f"j{n}", "purpose": "x", "datasets": ["loans"]}))
        (job / "job.py").write_text("open('/out/n.csv', 'w').write('n\\n1\\n')\n")
        jobs.append(wh.jobs.run(wh.jobs.submit(wh.users.principal("analyst"), job)["id"]))
    exports = [e["id"] for e in wh.exports.list(admin)]
    app = create_app(warehouse=wh)
    config = tmp / "schemathesis.toml"
    config.write_text("\n".join([
        "[dictionaries.names]", f"values = {json.dumps(['loans', 'nope'])}",
        "[dictionaries.jobs]", f"values = {json.dumps([j['id'] for j in jobs])}",
        "[dictionaries.exports]", f"values = {json.dumps(exports)}",
        "[dictionaries.purposes]", 'values = ["x"]',
        "[parameters]",
        '"path.name" = { dictionary = "names", probability = 0.8 }',
        '"path.job_id" = { dictionary = "jobs", probability = 0.8 }',
        '"path.export_id" = { dictionary = "exports", probability = 0.8 }',
        '"query.purpose" = { dictionary = "purposes", probability = 0.5 }',
    ]) + "\n")
    with serving(app) as url:
        yield {"wh": wh, "url": url, "tokens": tokens, "config": config, "tmp": tmp}
    wh.close()


def _run(fuzzed, who: str, *extra: str) -> dict:
    report = fuzzed["tmp"] / f"report-{who}.json"
    cmd = [_schemathesis(), "--config-file", str(fuzzed["config"]), "run", f"{fuzzed['url']}/openapi.json",
           "-H", f"Authorization: Bearer {fuzzed['tokens'][who]}", "--checks", CHECKS, "--mode", "all",
           "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED), "--workers", "1",
           "--phases", "examples,coverage,fuzzing", "--suppress-health-check", "all",
           "--report", "json", "--report-json-path", str(report), "--no-color", *extra]
    # in the run's folder: schemathesis keeps a cache (.schemathesis/) in its working directory
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=280, cwd=fuzzed["tmp"])
    summary = json.loads(report.read_text()) if report.exists() else {}
    return {"rc": done.returncode, "out": done.stdout[-6000:] + done.stderr[-2000:], "report": summary}


def _figures(run: dict) -> dict:
    """From schemathesis' JSON report: test cases (one request each), failures by kind, server errors."""
    rep = run["report"]
    failures = {f["code"]: f["count"] for f in rep.get("failures") or []}
    return {"rc": run["rc"], "seed": rep.get("seed"), "operations": (rep.get("operations") or {}).get("tested"),
            "requests": (rep.get("test_cases") or {}).get("generated"),
            "cases_with_failures": (rep.get("test_cases") or {}).get("with_failures"),
            "server_errors": failures.get("ST101", 0), "failures": failures, "errors": rep.get("errors")}


@pytest.mark.parametrize("who,extra", [("admin", ("--exclude-method", "DELETE")), ("analyst", ())])
def test_no_server_error_and_no_schema_violation_under_fuzzing(fuzzed, who, extra):
    run = _run(fuzzed, who, *extra)
    figures = _figures(run)
    print(json.dumps({"who": who, **figures}))
    assert run["report"], run["out"]  # schemathesis ran to its report
    assert figures["requests"] and figures["requests"] > 300, figures
    assert figures["server_errors"] == 0 and figures["failures"] == {} and not figures["errors"], run["out"]
    assert run["rc"] == 0, run["out"]
