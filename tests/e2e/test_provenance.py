"""Signed provenance with every release: made in the approval's transaction, named by the audit
record, carried in the download, checked offline — and any changed byte fails the check."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.catalog.db import Export
from sandbox.errors import Tampered
from sandbox.interfaces.cli.main import app
from sandbox.release import provenance
from sandbox.release.attest import KEY_FILE, gate_digest
from sandbox.release.provenance import FILE_NAME, verify_bundle

from .test_flow import RATE_JOB


def _released(wh, people, job_dir):
    job = wh.jobs.submit(people["analyst"], job_dir(RATE_JOB))
    wh.jobs.run(job["id"])
    export_id = wh.jobs.get(people["admin"], job["id"])["export"]["id"]
    e = wh.exports.get(people["admin"], export_id)
    assert e["provenance_sha256"] is None  # pending: nothing signed yet
    wh.exports.decide(people["tax_steward"], export_id, "approve", "aggregates only", e["bundle_sha256"])
    assert wh.exports.get(people["admin"], export_id)["provenance_sha256"] is None  # one steward of two
    wh.exports.decide(people["bank_steward"], export_id, "approve", "fine", e["bundle_sha256"])
    return job, export_id


def _download(wh, people, export_id, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in wh.exports.download(people["analyst"], export_id):
        (dest / f.name).write_bytes(f.data)
    return dest


@pytest.fixture
def bundle(landed, people, job_dir, tmp_path):
    job, export_id = _released(landed, people, job_dir)
    folder = _download(landed, people, export_id, tmp_path / "bundle")
    key = landed.exports.provenance_key()["public_key_pem"].encode()
    return landed, job, export_id, folder, key


def test_an_approved_export_carries_a_statement_of_how_it_was_made(bundle, people):
    wh, job, export_id, folder, key = bundle
    assert sorted(p.name for p in folder.iterdir()) == [FILE_NAME, "rates.csv"]
    result = verify_bundle(folder, key)
    assert result.ok, result.problems
    stmt = result.statement
    assert stmt["_type"] == "https://in-toto.io/Statement/v1" and stmt["predicateType"] == provenance.PREDICATE_TYPE
    rates = (folder / "rates.csv").read_bytes()
    assert stmt["subject"] == [{"name": "rates.csv", "digest": {"sha256": hashlib.sha256(rates).hexdigest()}}]
    p = stmt["predicate"]
    admin_view = wh.jobs.get(people["admin"], job["id"])
    assert p["job"]["id"] == job["id"] and p["job"]["code_sha256"] == admin_view["code_sha256"]
    assert p["job"]["spec"]["datasets"] == ["firms", "loans"] and p["job"]["purpose"] == "credit_risk"
    assert {d["name"]: d["delta_version"] for d in p["datasets"]} == {"firms": 1, "loans": 1}
    assert {d["name"]: d["release_mode"] for d in p["datasets"]} == {"firms": "sdc", "loans": "sdc"}
    assert p["privacy"]["release_modes"] == {"firms": "sdc", "loans": "sdc"}
    assert p["privacy"]["epsilon_spent_total"] == "0"
    assert [(a["steward"], a["dataset"], a["decision"]) for a in p["approvals"]] == [
        ("tax_steward", "firms", "approve"), ("bank_steward", "loans", "approve")]
    e = wh.exports.get(people["admin"], export_id)
    assert p["export"]["bundle_sha256"] == e["bundle_sha256"] and p["export"]["id"] == export_id
    # the gate digest is the auditor's to recompute from the audit log
    queries = wh.audit_records(people["auditor"], action="query.*", object_id=job["id"], limit=1000)
    lines = "".join(f"{r['seq']}:{r['hash']}\n" for r in queries)
    assert p["gate"]["digest"]["sha256"] == hashlib.sha256(lines.encode()).hexdigest() and p["gate"]["records"] == 1
    with wh.db.read() as s:
        assert gate_digest(s, job["id"]) == p["gate"]
    # the approval's audit record names the statement; the download record names it too
    prov = (folder / FILE_NAME).read_bytes()
    (approved,) = [r for r in wh.audit_records(people["auditor"], action="export.approved", object_id=export_id)
                   if r["details"]["export_state"] == "approved"]
    assert approved["details"]["provenance_sha256"] == hashlib.sha256(prov).hexdigest() == e["provenance_sha256"]
    payload = base64.b64decode(json.loads(prov)["payload"])
    assert approved["details"]["statement_sha256"] == hashlib.sha256(payload).hexdigest()
    (down,) = wh.audit_records(people["auditor"], action="export.downloaded", object_id=export_id)
    assert down["details"]["provenance_sha256"] == e["provenance_sha256"]
    assert [f[0] for f in down["details"]["files"]] == ["rates.csv", FILE_NAME]
    assert wh.audit_verify(people["auditor"]).ok


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at % len(data)] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["file", "statement", "signature", "keyid", "envelope", "newline"])
def test_any_changed_byte_fails_the_check(bundle, where):
    _, _, _, folder, key = bundle
    prov = folder / FILE_NAME
    text = prov.read_bytes()
    env = json.loads(text)
    offsets = {
        "statement": text.index(env["payload"].encode()) + len(env["payload"]) // 2,  # inside the signed payload
        "signature": text.index(env["signatures"][0]["sig"].encode()) + 10,
        "keyid": text.index(env["signatures"][0]["keyid"].encode()) + 3,
        "envelope": text.index(b"payloadType") + 2,  # a key name outside the payload
        "newline": len(text) - 1,
    }
    if where == "file":
        _flip(folder / "rates.csv", 7)
    else:
        _flip(prov, offsets[where])
    result = verify_bundle(folder, key)
    assert not result.ok, where
    if where == "file":
        assert any(p.startswith("rates.csv: SHA-256") for p in result.problems)


def test_every_byte_of_the_statement_file_is_covered(bundle):
    """Not a sample: flip each byte of provenance.intoto.jsonl in turn; every one fails."""
    _, _, _, folder, key = bundle
    prov = folder / FILE_NAME
    original = prov.read_bytes()
    for i in range(len(original)):
        changed = bytearray(original)
        changed[i] ^= 0x01
        prov.write_bytes(bytes(changed))
        assert not verify_bundle(folder, key).ok, i
    prov.write_bytes(original)
    assert verify_bundle(folder, key).ok


def test_the_files_must_be_exactly_the_subjects(bundle, tmp_path):
    _, _, _, folder, key = bundle
    (folder / "extra.csv").write_text("a,b\n1,2\n")
    assert any("extra.csv: in the folder but not in the statement" in p for p in verify_bundle(folder, key).problems)
    (folder / "extra.csv").unlink()
    (folder / "rates.csv").rename(tmp_path / "away.csv")
    assert any("rates.csv: in the statement but not in the folder" in p for p in verify_bundle(folder, key).problems)
    (tmp_path / "away.csv").rename(folder / "rates.csv")
    (folder / FILE_NAME).unlink()
    assert verify_bundle(folder, key).problems == [f"{FILE_NAME}: missing from {folder}"]


def test_another_warehouses_key_does_not_verify(bundle, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _, _, _, folder, _ = bundle
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    problems = verify_bundle(folder, other).problems
    assert any(p.startswith("signature:") for p in problems)
    assert verify_bundle(folder, b"not a key").problems[0].startswith("key:")


def test_the_key_is_private_to_the_warehouse_and_stable(bundle, settings):
    wh, _, _, _, key = bundle
    path = settings.secrets_dir / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    info = wh.exports.provenance_key()
    from sandbox.warehouse import Warehouse

    again = Warehouse.open(settings)
    try:
        assert again.exports.provenance_key() == info  # the same key after reopening
    finally:
        again.close()
    assert info["keyid"] == hashlib.sha256(base64.b64decode(info["public_key_b64"])).hexdigest()
    assert b"PRIVATE" not in key


def test_tampered_provenance_is_never_served(bundle, people):
    wh, _, export_id, _, _ = bundle
    with wh.db.transaction() as s:
        e = s.get(Export, export_id)
        e.provenance = e.provenance.replace(b'"payloadType"', b'"payloadTypE"')
    with pytest.raises(Tampered):
        wh.exports.download(people["analyst"], export_id)
    refused = wh.audit_records(people["auditor"], action="export.download_refused", object_id=export_id)
    assert refused and FILE_NAME in refused[-1]["details"]["changed"]


def test_an_export_approved_without_review_is_signed_at_creation(wh, people, tmp_path, job_dir):
    import copy

    from sandbox.datasets.manifest import parse_manifest
    from tests.e2e.conftest import FIRMS, write_data

    open_firms = copy.deepcopy(FIRMS)
    open_firms["policy"]["output"] = {"min_group_size": 10, "require_approval": False}
    wh.datasets.register(people["tax_steward"], parse_manifest(open_firms))
    firms, _ = write_data(tmp_path)
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    job = wh.jobs.submit(people["analyst"], job_dir("""
        import twh_job
        twh_job.query("SELECT industry, COUNT(*) AS n FROM firms GROUP BY industry").to_csv("n.csv")
    """, datasets=("firms",)))
    wh.jobs.run(job["id"])
    export_id = wh.jobs.get(people["analyst"], job["id"])["export"]["id"]
    (requested,) = wh.audit_records(people["auditor"], action="export.requested", object_id=export_id)
    assert requested["details"]["state"] == "approved" and requested["details"]["provenance_sha256"]
    folder = _download(wh, people, export_id, tmp_path / "open")
    result = verify_bundle(folder, wh.exports.provenance_key()["public_key_pem"].encode())
    assert result.ok and result.statement["predicate"]["approvals"] == []
    assert result.statement["predicate"]["export"]["needs_approval_from"] == []


def test_the_cli_shows_the_key_and_verifies_offline(bundle, settings, tmp_path, monkeypatch):
    wh, _, _, folder, _ = bundle
    if settings.database_url:  # the local CLI opens the same catalog (the PostgreSQL pass)
        monkeypatch.setenv("TWH_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    home = ["--home", str(settings.home), "--as", "auditor"]
    pem = tmp_path / "key.pem"
    r = runner.invoke(app, [*home, "export", "key", "--out", str(pem)])
    assert r.exit_code == 0, r.output
    assert "BEGIN PUBLIC KEY" in r.output and pem.read_text() == wh.exports.provenance_key()["public_key_pem"]
    # offline: only the folder and the PEM file (no --home, no service)
    r = runner.invoke(app, ["export", "verify", str(folder), "--key", str(pem)])
    assert r.exit_code == 0, r.output
    assert "provenance OK" in r.output and "approved by tax_steward for firms" in r.output
    r = runner.invoke(app, ["--lang", "zh-CN", "export", "verify", str(folder), "--key", str(pem)])
    assert r.exit_code == 0 and "来源证明核验通过" in r.output
    _flip(folder / "rates.csv", 3)
    r = runner.invoke(app, ["export", "verify", str(folder), "--key", str(pem)])
    assert r.exit_code == 1 and "provenance FAILED" in r.output and "rates.csv: SHA-256" in r.output
    r = runner.invoke(app, ["--json", "export", "verify", str(folder), "--key", str(pem)])
    assert r.exit_code == 1 and json.loads(r.output)["ok"] is False
    r = runner.invoke(app, ["export", "verify", str(folder), "--key", str(tmp_path / "missing.pem")])
    assert r.exit_code == 2 and "error [invalid_input]" in r.output


def test_the_public_key_is_published_without_a_token(bundle):
    from fastapi.testclient import TestClient

    from sandbox.interfaces.api.app import create_app

    wh = bundle[0]
    got = TestClient(create_app(warehouse=wh)).get("/v1/provenance/key")
    assert got.status_code == 200 and got.json() == wh.exports.provenance_key()
