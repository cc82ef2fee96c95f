"""The `twh` command line, in local mode and against a running service, as a user would type it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import FIRMS, LOANS, write_data
from .test_flow import RATE_JOB

TWH = [sys.executable, "-m", "sandbox.interfaces.cli.main"]


def twh(home: Path, *args: str, user: str | None = None, ok: bool = True, env: dict | None = None):
    cmd = [*TWH, "--home", str(home), "--json"] + (["--as", user] if user else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
        return json.loads(r.stdout) if r.stdout.strip() else None
    return r


@pytest.fixture
def home(tmp_path, catalog_url, monkeypatch):
    if catalog_url:  # the PostgreSQL pass: the CLI processes inherit the catalog URL
        monkeypatch.setenv("TWH_DATABASE_URL", catalog_url)
    return tmp_path / "wh"


@pytest.mark.timeout(600)  # ~20 CLI processes, each importing the whole stack: slow on a loaded 2-core box
def test_cli_local_flow(home, tmp_path, job_dir):
    init = twh(home, "init")
    assert init["token"].startswith("twh_")
    for name, role, tenant in [("tax_steward", "steward", "tax"), ("bank_steward", "steward", "bank_a"),
                               ("analyst", "enterprise", "bank_a"), ("auditor", "auditor", "regulator")]:
        assert twh(home, "user", "add", name, "--role", role, "--tenant", tenant, user="admin")["token"]
    firms, loans = write_data(tmp_path)
    (tmp_path / "firms.yaml").write_text(yaml.safe_dump(FIRMS))
    (tmp_path / "loans.yaml").write_text(yaml.safe_dump(LOANS))
    twh(home, "dataset", "register", str(tmp_path / "firms.yaml"), user="tax_steward")
    twh(home, "dataset", "register", str(tmp_path / "loans.yaml"), user="bank_steward")
    assert twh(home, "ingest", "firms", str(firms), user="tax_steward")["version"] == 1
    assert twh(home, "ingest", "loans", str(loans), user="bank_steward")["rows"] == 300
    assert [d["name"] for d in twh(home, "dataset", "list", user="analyst")] == ["firms", "loans"]
    shown = twh(home, "dataset", "show", "firms", user="analyst")
    assert {c["role"] for c in shown["schema"]} == {"join_key", "dimension", "measure"}

    job = twh(home, "job", "submit", str(job_dir(RATE_JOB)), user="analyst")
    assert job["state"] == "awaiting_review" and job["export"] is None  # one state until a steward acts
    assert [j["id"] for j in twh(home, "job", "list", user="analyst")] == [job["id"]]
    pending = twh(home, "export", "list", "--state", "pending", user="tax_steward")
    assert [e["job_id"] for e in pending] == [job["id"]]
    export_id = pending[0]["id"]
    content = twh(home, "export", "show", export_id, "--content", user="tax_steward")["content"]
    assert list(content) == ["rates.csv"]
    assert twh(home, "job", "logs", job["id"], user="tax_steward")["stdout"].startswith("suppressed")

    r = twh(home, "export", "approve", export_id, "--reason", "ok", "--sha256", "f" * 64, user="tax_steward",
            ok=False)
    assert r.returncode == 2 and json.loads(r.stdout)["error"]["code"] == "forbidden"
    twh(home, "export", "approve", export_id, "--reason", "aggregates only", user="tax_steward")
    twh(home, "export", "approve", export_id, "--reason", "ok", user="bank_steward")
    paths = twh(home, "export", "download", export_id, "--to", str(tmp_path / "dl"), user="analyst")
    assert Path(paths[0]).read_text().startswith("district,loans,rate")

    assert twh(home, "audit", "verify", user="auditor")["ok"]
    twh(home, "audit", "export", "--out", str(tmp_path / "audit.jsonl"), user="auditor")
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) > 15 and all("hash" in json.loads(x) for x in lines)


def test_cli_errors_are_clear(home, tmp_path):
    twh(home, "init")
    r = twh(home, "dataset", "register", str(tmp_path / "missing.yaml"), user="admin", ok=False)
    assert r.returncode == 2 and "does not exist" in r.stdout
    r = subprocess.run([*TWH, "--home", str(home), "--as", "nobody", "dataset", "list"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "error [not_found]" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*TWH, "--home", str(home), "dataset", "list"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--as USER" in r.stderr


def test_tampered_audit_record_is_named_by_the_cli(home, catalog_url):
    from sqlalchemy import create_engine, text

    twh(home, "init")
    twh(home, "user", "add", "auditor", "--role", "auditor", "--tenant", "reg", user="admin")
    twh(home, "user", "add", "a2", "--role", "enterprise", "--tenant", "t", user="admin")
    engine = create_engine(catalog_url or f"sqlite:///{home / 'catalog.db'}")  # behind the warehouse's back
    with engine.begin() as db:
        db.execute(text("UPDATE audit_log SET actor='someone_else' WHERE seq=2"))
    engine.dispose()
    r = twh(home, "audit", "verify", user="auditor", ok=False)
    assert r.returncode == 1
    out = json.loads(r.stdout)
    assert out["ok"] is False and out["first_bad_seq"] == 2


def test_help_lists_every_command():
    r = subprocess.run([*TWH, "--help"], capture_output=True, text=True, timeout=60)
    for cmd in ("init", "user", "dataset", "ingest", "job", "export", "audit", "serve", "worker", "db", "demo"):
        assert cmd in r.stdout
