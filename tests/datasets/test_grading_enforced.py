"""Grades enforced by the services: registration, admins' overrides, the broker, jobs, synthetic data,
migrations, exports of important data (senior stewards), and the catalog's filter by grade.

Each attack is performed: a steward registers core data that would release aggregates, a steward
tries to allow their own dataset more, a non-senior steward approves important data, a migration
lowers a grade, a query reaches core data through the broker directly."""

from __future__ import annotations

import copy
import json
import textwrap

import pytest
import yaml

from sandbox.catalog.db import Job
from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import (
    AccessRefused,
    Conflict,
    Forbidden,
    InvalidInput,
    ManifestInvalid,
    NotFound,
    PolicyInvalid,
    QueryRefused,
    Refused,
)
from sandbox.tables import storage
from tests.e2e.conftest import FIRMS, write_data

DP = {"max_rows_per_unit": 1, "bounds": {"capital": [0, 1000]}, "budget": {"epsilon": 5},
      "epsilon_per_query": 1, "public_keys": {"industry": ["C", "F", "I"]}}
COUNT = "SELECT industry, COUNT(*) AS n FROM firms GROUP BY industry"


def manifest(grade: str, *, name: str = "firms", seniors=(), **policy) -> dict:
    m = copy.deepcopy(FIRMS)
    m["name"] = name
    m["stewards"] = ["tax_steward", "tax_chief"]
    m["classification"] = {"category": "taxation", "grade": grade}
    if seniors:
        m["senior_stewards"] = list(seniors)
    m["policy"] = {**m["policy"], **policy}
    return m


@pytest.fixture
def chief(wh, people):
    wh.users.add(people["admin"], "tax_chief", "steward", "tax_bureau")
    return wh.users.principal("tax_chief")


def records(wh, people, action):
    return wh.audit_records(people["auditor"], action=action, limit=1000)


def test_a_steward_cannot_register_core_data_that_releases_aggregates(wh, people, chief):
    # the attack: core data declared with release_mode sdc and no admin's override
    with pytest.raises(PolicyInvalid, match="core data .* releases nothing") as exc:
        wh.datasets.register(people["tax_steward"], parse_manifest(manifest("core", release_mode="sdc")))
    assert exc.value.details["rule"] == "grade_minimum" and exc.value.details["field"] == "release_mode"
    with pytest.raises(NotFound):  # nothing half-written: no catalog entry, no table
        wh.datasets.show(people["auditor"], "firms")
    assert not storage.table_path(wh.settings.home, "government", "firms").exists()
    (refused,) = records(wh, people, "dataset.register_refused")
    assert refused["actor"] == "tax_steward" and refused["details"]["grade"] == "core"

    # without a declared mode it registers — and then answers nothing at all
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("core")))
    assert wh.datasets.show(people["analyst"], "firms")["classification"]["grade"] == "core"


def test_a_steward_cannot_allow_their_own_dataset_more_than_its_grade(wh, people, chief):
    for who in ("tax_steward", "tax_chief", "analyst", "auditor"):
        with pytest.raises(Forbidden):
            wh.datasets.override(people.get(who) or chief, "firms", "sdc", "I steward it, so I say so")
    assert records(wh, people, "dataset.override_recorded") == []
    with pytest.raises(PolicyInvalid, match="may be released only as dp"):
        wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                            release_mode="sdc")))
    # an admin records the allowance, with a reason, audited; only then does the weaker manifest register
    with pytest.raises(InvalidInput, match="not an allowance"):
        wh.datasets.override(people["admin"], "firms", "everything", "why not")
    with pytest.raises(InvalidInput, match="reason"):
        wh.datasets.override(people["admin"], "firms", "sdc", "  ")
    wh.datasets.override(people["admin"], "firms", "sdc", "regulator's exemption no. 17")
    with pytest.raises(Conflict):
        wh.datasets.override(people["admin"], "firms", "sdc", "again")
    (rec,) = records(wh, people, "dataset.override_recorded")
    assert rec["actor"] == "admin" and rec["details"]["allow"] == "sdc" and not rec["details"]["registered"]
    shown = wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                                release_mode="sdc")))
    assert shown["classification"]["grade"] == "important"
    assert [o["allow"] for o in wh.datasets.show(people["analyst"], "firms")["overrides"]] == ["sdc"]
    (reg,) = records(wh, people, "dataset.registered")
    assert reg["details"]["allowances"] == ["sdc"] and reg["details"]["grade"] == "important"


def test_important_data_needs_senior_stewards_and_approval(wh, people, chief):
    with pytest.raises(PolicyInvalid, match="senior_stewards"):
        wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", release_mode="dp", dp=DP)))
    with pytest.raises(PolicyInvalid, match="require_approval"):
        wh.datasets.register(people["tax_steward"], parse_manifest(manifest(
            "important", seniors=["tax_chief"], release_mode="dp", dp=DP,
            output={"min_group_size": 10, "require_approval": False})))
    with pytest.raises(ManifestInvalid, match="senior_stewards .* also be listed in stewards"):
        parse_manifest(manifest("important", seniors=["someone_else"], release_mode="dp", dp=DP))


def _job(tmp_path, datasets=("firms",), code=None):
    d = tmp_path / "job"
    d.mkdir(exist_ok=True)
    (d / "job.yaml").write_text(yaml.safe_dump({"name": "g", "purpose": "credit_risk", "datasets": list(datasets)}))
    (d / "job.py").write_text(textwrap.dedent(code or f"""
        import twh_job
        twh_job.query('''{COUNT}''').to_csv("counts.csv")
    """))
    return d


def test_core_data_answers_no_query_submit_or_synthetic_request(wh, people, chief, tmp_path):
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("core", dp={**DP, "synthetic": {"epsilon": 1}})))
    firms, _ = write_data(tmp_path)
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    with pytest.raises(AccessRefused, match="core data") as exc:
        wh.jobs.submit(people["analyst"], _job(tmp_path))
    assert exc.value.details["rule"] == "grade"
    with pytest.raises(Refused, match="core data"):
        wh.synthetic.get(people["tax_steward"], "firms")
    # the broker refuses on its own too (a job admitted before, or any other caller of the query path)
    snap = storage.pin_snapshot(storage.table_path(wh.settings.home, "government", "firms"), "firms", 1)
    with wh.db.transaction() as s:  # a job that got past submission (e.g. before the dataset was graded)
        s.add(Job(id="job_x", tenant="bank_a", submitted_by="analyst", purpose="credit_risk", datasets=["firms"],
                  pinned={"firms": 1}, state="running", reason="", code_sha256="0" * 64, spec={}))
    with pytest.raises(QueryRefused, match="core data") as exc:
        wh.queries.answer(people["analyst"], "job_x", "credit_risk", {"firms": snap}, COUNT)
    assert exc.value.details["rule"] == "grade"
    refused = [r for r in records(wh, people, "query.refused") if r["details"].get("rule") == "grade"]
    assert refused and refused[0]["details"]["code"] == "query_refused"


def test_an_admin_may_open_core_data_to_dp_only(wh, people, chief, tmp_path):
    wh.datasets.override(people["admin"], "firms", "dp", "national statistics programme, DP only")
    with pytest.raises(PolicyInvalid, match="senior_stewards"):  # opened core data is approved by seniors
        wh.datasets.register(people["tax_steward"], parse_manifest(manifest("core", release_mode="dp", dp=DP)))
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("core", seniors=["tax_chief"],
                                                                        release_mode="dp", dp=DP)))
    firms, _ = write_data(tmp_path)
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    job = wh.jobs.submit(people["analyst"], _job(tmp_path))
    wh.jobs.run(job["id"])
    seen = wh.jobs.get(people["admin"], job["id"])
    assert seen["state"] == "awaiting_approval", seen["reason"]
    assert [q["outcome"] for q in seen["queries"]] == ["released"]
    export = wh.exports.get(people["admin"], seen["export"]["id"])
    with pytest.raises(Forbidden, match="senior stewards"):
        wh.exports.decide(people["tax_steward"], export["id"], "approve", "ok", export["bundle_sha256"])
    assert wh.exports.decide(chief, export["id"], "approve", "DP only", export["bundle_sha256"])["state"] == "approved"


def test_important_data_is_approved_by_a_senior_steward_only(wh, people, chief, tmp_path):
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                        release_mode="dp", dp=DP)))
    firms, _ = write_data(tmp_path)
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    job = wh.jobs.submit(people["analyst"], _job(tmp_path))
    wh.jobs.run(job["id"])
    export = wh.exports.get(people["tax_steward"], wh.jobs.get(people["admin"], job["id"])["export"]["id"])
    assert export["needs_approval_from"] == ["firms"] and export["yours"] == []
    assert export["seniors_decide"] == {"firms": ["tax_chief"]}
    # the attack: the ordinary steward of the dataset approves important data
    with pytest.raises(Forbidden, match="senior stewards only") as exc:
        wh.exports.decide(people["tax_steward"], export["id"], "approve", "looks fine", export["bundle_sha256"])
    assert exc.value.details["rule"] == "senior_steward"
    assert wh.exports.get(people["admin"], export["id"])["state"] == "pending"
    assert wh.exports.get(chief, export["id"])["yours"] == ["firms"]
    done = wh.exports.decide(chief, export["id"], "approve", "DP counts only", export["bundle_sha256"])
    assert done["state"] == "approved" and [a["steward"] for a in done["approvals"]] == ["tax_chief"]


def test_a_migration_may_not_lower_the_grade_or_weaken_the_policy(wh, people, chief):
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                        release_mode="dp", dp=DP)))
    lower = manifest("general", seniors=["tax_chief"], release_mode="dp", dp=DP)
    with pytest.raises(PolicyInvalid, match="may not lower its grade"):
        wh.migrate_dataset(people["tax_steward"], "firms", parse_manifest(lower))
    unclassified = {k: v for k, v in lower.items() if k != "classification"}
    with pytest.raises(PolicyInvalid, match="may not lower its grade"):
        wh.migrate_dataset(people["tax_steward"], "firms", parse_manifest(unclassified))
    weaker = manifest("important", seniors=["tax_chief"], release_mode="sdc")
    with pytest.raises(PolicyInvalid, match="only as dp"):
        wh.migrate_dataset(people["tax_steward"], "firms", parse_manifest(weaker))
    assert wh.datasets.show(people["analyst"], "firms")["classification"]["grade"] == "important"


def test_manifests_label_columns_and_refuse_inconsistent_labels():
    m = manifest("general")
    m["schema"][0]["grade"] = "important"  # a column above its dataset
    with pytest.raises(ManifestInvalid, match="above its dataset's general"):
        parse_manifest(m)
    m = manifest("general")
    m["schema"][0]["pi"] = "sensitive"
    with pytest.raises(ManifestInvalid, match="sensitive personal information"):
        parse_manifest(m)
    m = copy.deepcopy(FIRMS)
    m["schema"][0]["pi"] = "personal"  # labels without a classification block
    with pytest.raises(ManifestInvalid, match="no classification"):
        parse_manifest(m)
    m = manifest("general")
    m["classification"]["category"] = "astrology"
    with pytest.raises(ManifestInvalid, match="unknown industry category"):
        parse_manifest(m)
    m = manifest("important", seniors=["tax_chief"], dp=DP)  # no release_mode: the grade's default
    assert parse_manifest(m).build_policy().release_mode == "dp"
    assert parse_manifest(manifest("general")).build_policy().release_mode == "sdc"


def test_the_catalog_filters_by_grade_and_a_warehouse_may_require_classification(wh, people, chief, settings):
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                        release_mode="dp", dp=DP)))
    plain = copy.deepcopy(FIRMS)
    plain["name"] = "plain"
    wh.datasets.register(people["tax_steward"], parse_manifest(plain))
    assert [d["name"] for d in wh.datasets.list(people["analyst"], "important")] == ["firms"]
    assert [d["name"] for d in wh.datasets.list(people["analyst"], "unclassified")] == ["plain"]
    assert wh.datasets.list(people["analyst"], "core") == []
    assert len(wh.datasets.list(people["analyst"])) == 2
    with pytest.raises(InvalidInput, match="not a grade"):
        wh.datasets.list(people["analyst"], "secret")

    from sandbox.warehouse import Warehouse

    strict = Warehouse.open(settings.model_copy(update={"require_classification": True}))
    try:
        other = copy.deepcopy(FIRMS)
        other["name"] = "other"
        with pytest.raises(ManifestInvalid, match="requires every dataset to be classified"):
            strict.datasets.register(people["tax_steward"], parse_manifest(other))
    finally:
        strict.close()


def test_the_cli_records_an_override_only_for_an_admin(wh, people, chief, settings, monkeypatch):
    from typer.testing import CliRunner

    from sandbox.interfaces.cli.main import app

    if settings.database_url:  # the local CLI opens the same catalog (the PostgreSQL pass)
        monkeypatch.setenv("TWH_DATABASE_URL", settings.database_url)
    run = lambda user, *a: CliRunner().invoke(app, ["--home", str(settings.home), "--as", user, *a])  # noqa: E731
    r = run("tax_steward", "dataset", "override", "firms", "--allow", "sdc", "--reason", "mine")
    assert r.exit_code == 2 and "error [forbidden]" in r.output
    r = run("admin", "dataset", "override", "firms", "--allow", "sdc", "--reason", "exemption no. 17")
    assert r.exit_code == 0 and "firms may now: sdc" in r.output
    r = run("admin", "--json", "dataset", "override", "../etc", "--allow", "sdc", "--reason", "x")
    assert r.exit_code == 2 and json.loads(r.output)["error"]["details"]["field"] == "name"
    wh.datasets.register(people["tax_steward"], parse_manifest(manifest("important", seniors=["tax_chief"],
                                                                        release_mode="sdc")))
    r = run("analyst", "dataset", "list", "--grade", "important")
    assert r.exit_code == 0 and "firms" in r.output and "important data" in r.output
    r = run("analyst", "dataset", "list", "--grade", "core")
    assert r.exit_code == 0 and "no datasets (core data)" in r.output
    r = run("analyst", "dataset", "show", "firms")
    assert "allowance sdc by admin: exemption no. 17" in r.output and "senior stewards tax_chief" in r.output
