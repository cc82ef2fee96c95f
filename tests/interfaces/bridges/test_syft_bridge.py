"""The PySyft bridge end to end, over syft-rds's mock Drive transport (in-process, no network).

A Syft data scientist sees only mock data and a pointer, submits code, the warehouse runs it
in its sandbox through its gate, the stewards decide, and only approved bytes go back.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import tarfile
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("syft_rds")

from sandbox.interfaces.bridges.syft.bridge import POINTER_FILE, UNMAPPED, SyftBridge, SyftBridgeConfig  # noqa: E402

from .conftest import DO_EMAIL, DS_EMAIL, write_data  # noqa: E402

RATES = """
    import twh_job
    r = twh_job.query('''SELECT f.district, COUNT(*) AS loans, AVG(l.defaulted) AS rate
                         FROM loans l JOIN firms f ON l.uscc = f.uscc GROUP BY f.district''')
    r.to_csv("rates.csv")
    with open("outputs/meta.json", "w") as fh:   # Syft's convention: ./outputs/ → the warehouse's /out
        fh.write('{"groups": %d}' % len(r.rows))  # how many were suppressed is withheld from jobs
"""


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())


@pytest.fixture
def bridge(landed, people, syft_pair, syft_home):
    _ds, do = syft_pair
    config = SyftBridgeConfig(users={DS_EMAIL: "analyst"}, publisher="admin", default_purpose="credit_risk",
                              mock_rows=200)
    b = SyftBridge(landed, do, config, folder=syft_home / "bridge")
    b.mark = _last_seq(landed, people)
    b.publish()
    return b


def _bridge(landed, people, do, syft_home, **config) -> SyftBridge:
    b = SyftBridge(landed, do, SyftBridgeConfig(publisher="admin", **config), folder=syft_home / "bridge")
    b.mark = _last_seq(landed, people)
    return b


def _submit(ds, tmp_path: Path, name: str, code: str, spec: dict | None = None) -> None:
    """The data scientist's side: syft-rds's own submit_python_job (a folder when there is a job.yaml)."""
    folder = tmp_path / "submit" / name
    folder.mkdir(parents=True)
    (folder / "main.py").write_text(textwrap.dedent(code))
    if spec is not None:
        (folder / "job.yaml").write_text(json.dumps(spec))
    with _quiet():
        ds.submit_python_job(user=DO_EMAIL, code_path=str(folder), job_name=name, entrypoint="main.py",
                             force_submission=True)


def _ds_job(ds, name: str):
    with _quiet():
        ds.sync()
        return next(j for j in ds.job_client.jobs if j.name == name)


def _ds_outputs(ds, name: str) -> dict[str, bytes]:
    job = _ds_job(ds, name)
    out = job.job_review_path / "outputs"
    return {p.name: p.read_bytes() for p in out.iterdir() if p.name != "syft.pub.yaml"} if out.is_dir() else {}


def _real_identifiers(tmp_path: Path) -> set[bytes]:
    """Every USCC and loan id in the landed CSVs (write_data is seeded: the same rows as `landed`)."""
    (tmp_path / "again").mkdir(exist_ok=True)
    firms, loans = write_data(tmp_path / "again")
    ids = set()
    for path, cols in ((firms, ["uscc"]), (loans, ["loan_id", "uscc"])):
        with open(path, newline="") as fh:
            for row in csv.DictReader(fh):
                ids.update(row[c].encode() for c in cols)
    return ids


def _expand(name: str, data: bytes) -> list[tuple[str, bytes]]:
    """``data`` and what it holds: syft's event messages are tar.gz'd JSON whose binary file
    contents are base64 — a value hidden in either would be missed by a plain byte search."""
    out = [(name, data)]
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    out += _expand(f"{name}!{m.name}", tar.extractfile(m).read())
        return out
    except tarfile.TarError:
        pass
    try:
        doc = json.loads(data)
    except ValueError:
        return out
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack += v.values()
        elif isinstance(v, list):
            stack += v
        elif isinstance(v, str) and len(v) >= 8:
            with contextlib.suppress(ValueError):
                out.append((f"{name}!b64", base64.b64decode(v, validate=True)))
    return out


def _all_bytes(*roots: Path) -> list[tuple[str, bytes]]:
    """Every file under ``roots``, opened up (see :func:`_expand`)."""
    return [x for root in roots for p in root.rglob("*") if p.is_file() for x in _expand(str(p), p.read_bytes())]


def _last_seq(wh, people) -> int:
    recs = wh.audit_records(people["auditor"], limit=1, after=0)
    seq = 0
    while recs:
        seq = recs[-1]["seq"]
        recs = wh.audit_records(people["auditor"], limit=1000, after=seq)
    return seq


def _audit(wh, people, action: str, after: int = 0) -> list[dict]:
    return [r for r in wh.audit_records(people["auditor"], action=action, limit=1000, after=after)
            if r["action"] == action]


# -- publish ----------------------------------------------------------------------------------

def test_publish_gives_the_data_scientist_mock_data_and_a_pointer_only(bridge, syft_pair, syft_home, people, tmp_path):
    ds, do = syft_pair
    wh = bridge.wh
    assert bridge.published() == ["firms", "loans"]
    with _quiet():
        ds.sync()
    seen = {d.name: d for d in ds.dataset_manager.get_all(datasite=DO_EMAIL)}
    assert set(seen) == {"firms", "loans"}
    mock = seen["firms"].mock_dir / "firms.csv"
    rows = list(csv.DictReader(io.StringIO(mock.read_text())))
    assert list(rows[0]) == [c.name for c in wh.manifest("firms").columns] and len(rows) == 200
    assert all(r["uscc"].startswith("M") for r in rows)  # mock codes, never a landed F… code

    # the data owner's private side is the pointer (plus syft's own metadata), naming the dataset
    private = do.dataset_manager.get("firms").private_dir
    assert sorted(p.name for p in private.iterdir()) == sorted([POINTER_FILE, "private_metadata.yaml", "syft.pub.yaml"])
    pointer = json.loads((private / POINTER_FILE).read_text())
    assert pointer["dataset"] == "firms" and pointer["kind"] == "training-warehouse-dataset"

    # no real identifier anywhere the Syft side keeps files: the DO's datasite, its event cache,
    # the bridge's folder, the DS's SyftBox, and the (mock) Drive itself
    real = _real_identifiers(tmp_path)
    assert len(real) > 300
    files = _all_bytes(syft_home, ds.syftbox_folder.parent)
    drive = do.sync_engine._connection_router.connections[0].drive_service._backing_store.files
    files += [x for f in drive.values() for x in _expand(f"drive:{f.name}", f.content or b"")]
    assert len(files) > 20
    leaks = [(name, v) for name, data in files for v in real if v in data]
    assert leaks == []
    assert not any(POINTER_FILE in name for name, _ in _all_bytes(ds.syftbox_folder.parent))

    recs = _audit(wh, people, "syft.published", bridge.mark)
    assert {r["object_id"] for r in recs} == {"firms", "loans"}
    assert all(r["details"]["audience"] == [DS_EMAIL] for r in recs)
    # publishing again is a no-op; a replace publishes anew
    assert bridge.publish() == [] and [p.name for p in bridge.publish(["firms"], replace=True)] == ["firms"]


# -- the whole path -----------------------------------------------------------------------------

def test_syft_job_runs_gated_and_returns_only_after_approval(bridge, syft_pair, people, tmp_path):
    ds, do = syft_pair
    wh = bridge.wh
    _submit(ds, tmp_path, "rates", RATES, {"purpose": "credit_risk", "datasets": ["firms", "loans"]})

    (outcome,) = bridge.serve_once()
    assert outcome.syft_state == "running" and outcome.job_id
    job = wh.jobs.get(people["tax_steward"], outcome.job_id)
    assert job["state"] == "awaiting_approval", job["reason"]
    assert job["submitted_by"] == "analyst" and job["tenant"] == "bank_a"
    assert wh.jobs.get(people["analyst"], outcome.job_id)["state"] == "awaiting_review"

    # pending: the data scientist sees a running job and nothing else — no outputs, no logs, and
    # the one reason every undecided job has (not whether this one ran, failed or wrote files)
    dsjob = _ds_job(ds, "rates")
    assert dsjob.status == "running" and "waiting for the stewards" in dsjob.review_reason
    assert _ds_outputs(ds, "rates") == {}
    assert not any((dsjob.job_review_path / n).exists() for n in ("stdout.txt", "stderr.txt", "returncode.txt"))
    # Syft's own runner finds nothing to run: the bridge never marks a job `approved`
    with _quiet():
        do.process_approved_jobs(share_outputs_with_submitter=True)
    assert bridge.serve_once(run=False) == []  # nothing changed
    assert _ds_job(ds, "rates").status == "running"

    export_id = job["export"]["id"]
    e = wh.exports.get(people["tax_steward"], export_id)
    wh.exports.decide(people["tax_steward"], export_id, "approve", "aggregates", e["bundle_sha256"])
    assert bridge.serve_once() == []  # one of two stewards: still nothing
    assert _ds_job(ds, "rates").status == "running" and _ds_outputs(ds, "rates") == {}
    wh.exports.decide(people["bank_steward"], export_id, "approve", "ok", e["bundle_sha256"])

    (outcome,) = bridge.serve_once()
    # the approved files and the warehouse's signed statement of how they were made
    assert outcome.syft_state == "done" and outcome.files == ("meta.json", "provenance.intoto.jsonl", "rates.csv")
    approved = {f.name: f.data for f in wh.exports.preview(people["tax_steward"], export_id)}
    got = _ds_outputs(ds, "rates")
    statement = got.pop("provenance.intoto.jsonl")
    assert got == approved  # exactly the approved bytes, nothing more
    assert hashlib.sha256(statement).hexdigest() == wh.exports.get(people["admin"], export_id)["provenance_sha256"]
    rows = list(csv.reader(io.StringIO(got["rates.csv"].decode())))
    assert rows[0] == ["district", "loans", "rate"] and len(rows) == 2  # 500199 suppressed by the gate
    assert json.loads(got["meta.json"]) == {"groups": 1}
    assert _ds_job(ds, "rates").status == "done"

    # audited like any job, as the mapped user, with the Syft identity recorded
    (received,) = _audit(wh, people, "syft.job_received", bridge.mark)
    assert received["actor"] == "analyst" and received["object_id"] == outcome.job_id
    assert received["details"]["syft_user"] == DS_EMAIL and received["details"]["syft_job"] == "rates"
    (submitted,) = [r for r in _audit(wh, people, "job.submitted") if r["object_id"] == outcome.job_id]
    assert submitted["actor"] == "analyst"
    assert submitted["details"]["code_sha256"] == received["details"]["code_sha256"]
    (downloaded,) = _audit(wh, people, "export.downloaded", bridge.mark)
    assert downloaded["actor"] == "analyst" and downloaded["object_id"] == export_id
    (returned,) = _audit(wh, people, "syft.job_returned", bridge.mark)
    assert returned["actor"] == "analyst" and returned["details"]["bundle_sha256"] == e["bundle_sha256"]
    assert returned["details"]["syft_user"] == DS_EMAIL and returned["details"]["files"] == ["meta.json", "provenance.intoto.jsonl",
                                                                                             "rates.csv"]
    assert _audit(wh, people, "query.released", bridge.mark)
    assert wh.audit_verify(people["auditor"]).ok
    assert bridge.serve_once() == []  # finished jobs are left alone


def test_denied_export_returns_nothing_and_says_why(bridge, syft_pair, people, tmp_path):
    ds, _do = syft_pair
    wh = bridge.wh
    _submit(ds, tmp_path, "deny-me", RATES, {"purpose": "credit_risk", "datasets": ["firms", "loans"]})
    (outcome,) = bridge.serve_once()
    export_id = wh.jobs.get(people["tax_steward"], outcome.job_id)["export"]["id"]
    e = wh.exports.get(people["bank_steward"], export_id)
    wh.exports.decide(people["bank_steward"], export_id, "deny", "district rates are too fine", e["bundle_sha256"])

    (outcome,) = bridge.serve_once()
    assert outcome.syft_state == "rejected" and outcome.files == ()
    dsjob = _ds_job(ds, "deny-me")
    assert dsjob.status == "rejected"
    assert dsjob.review_reason == "export denied by a steward: district rates are too fine"
    assert _ds_outputs(ds, "deny-me") == {}
    assert _audit(wh, people, "export.downloaded", bridge.mark) == []


# -- attacks ------------------------------------------------------------------------------------

def test_syft_code_reaching_for_private_files_or_raw_rows_gets_nothing(bridge, syft_pair, people, tmp_path):
    ds, do = syft_pair
    wh = bridge.wh
    pointer = do.dataset_manager.get("firms").private_dir / POINTER_FILE
    probe = f"""
        import json, os
        import syft as sy
        import twh_job
        found = {{}}
        try:                                    # the Syft way to the private data
            found["resolve"] = open(sy.resolve_dataset_file_path("firms")).read()
        except Exception as exc:
            found["resolve"] = type(exc).__name__
        for name, path in {{"pointer": {str(pointer)!r}, "audit_key": {str(wh.settings.secrets_dir / "audit.key")!r}}}.items():
            try:
                found[name] = open(path).read()[:200]
            except Exception as exc:
                found[name] = type(exc).__name__
        found["home"] = [p for p in ({str(wh.settings.home)!r}, {str(wh.settings.tables_dir)!r}, {str(pointer.parent)!r})
                         if os.path.exists(p)] + [r for r, _d, _f in os.walk({str(wh.settings.home)!r})]
        try:                                    # raw rows through the broker
            found["raw"] = twh_job.query("SELECT uscc, capital FROM firms").to_dicts()[:5]
        except twh_job.BrokerError as exc:
            found["raw"] = exc.code
        with open("outputs/probe.json", "w") as fh:
            json.dump(found, fh)
    """
    _submit(ds, tmp_path, "probe", probe)  # no job.yaml: datasets from resolve_dataset_file_path, default purpose
    (outcome,) = bridge.serve_once()
    job = wh.jobs.get(people["tax_steward"], outcome.job_id)
    assert job["datasets"] == ["firms"] and job["purpose"] == "credit_risk"
    assert job["state"] == "awaiting_approval", job["reason"]
    assert _ds_outputs(ds, "probe") == {}

    # even with the stewards' approval, what leaves is what the sandbox could see: nothing
    export_id = job["export"]["id"]
    e = wh.exports.get(people["tax_steward"], export_id)
    wh.exports.decide(people["tax_steward"], export_id, "approve", "probe only", e["bundle_sha256"])
    bridge.serve_once()
    found = json.loads(_ds_outputs(ds, "probe")["probe.json"])
    assert found["resolve"] == "PermissionError"
    assert found["pointer"] in ("FileNotFoundError", "PermissionError")
    assert found["audit_key"] in ("FileNotFoundError", "PermissionError")
    assert found["home"] == []  # the warehouse home (tables, catalog, Syft datasite) is not there
    assert found["raw"] == "query_refused"
    real = _real_identifiers(tmp_path)
    blob = json.dumps(found).encode()
    assert not any(v in blob for v in real)


def test_failed_job_returns_no_details(bridge, syft_pair, people, tmp_path):
    ds, _do = syft_pair
    code = """
        import syft as sy                        # the plain Syft way: there is no private file
        print("secret", open(sy.resolve_dataset_file_path("firms")).read())
    """
    _submit(ds, tmp_path, "plain-syft", code)
    (outcome,) = bridge.serve_once()
    # before the stewards act, a failed job looks like any other: running, the one reason
    assert outcome.syft_state == "running" and "waiting for the stewards" in outcome.reason
    # the stewards release its one-line notice: the Syft job fails with the reason they approved
    wh = bridge.wh
    notice = wh.exports.get(people["tax_steward"], wh.jobs.get(people["tax_steward"], outcome.job_id)["export"]["id"])
    assert notice["kind"] == "notice"
    wh.exports.decide(people["tax_steward"], notice["id"], "approve", "ok", notice["bundle_sha256"])
    (outcome,) = bridge.serve_once()
    assert outcome.syft_state == "failed" and "twh job run-local" in outcome.reason
    assert "PermissionError" not in outcome.reason and "secret" not in outcome.reason
    dsjob = _ds_job(ds, "plain-syft")
    assert dsjob.status == "failed" and dsjob.review_reason == outcome.reason
    assert _ds_outputs(ds, "plain-syft") == {}
    assert not any((dsjob.job_review_path / n).exists() for n in ("stdout.txt", "stderr.txt", "returncode.txt"))
    # the stewards see why
    assert "PermissionError" in bridge.wh.jobs.logs(people["tax_steward"], outcome.job_id)["stderr"]


def test_symlink_smuggled_into_a_submission_is_refused(bridge, syft_pair, people, tmp_path):
    ds, do = syft_pair
    _submit(ds, tmp_path, "linky", "import twh_job\n", {"purpose": "credit_risk", "datasets": ["firms"]})
    with _quiet():
        do.sync()
    # the data owner's copy of the submission gains a link to the private pointer (as a crafted sync could)
    ref = do.job_client.manager.find_submission_ref(DO_EMAIL, "linky", DS_EMAIL)
    (entry,) = (do.job_client.manager.submission_dir(ref) / "code").rglob("main.py")
    (entry.parent / "pointer.json").symlink_to(do.dataset_manager.get("firms").private_dir / POINTER_FILE)
    before = bridge.wh.jobs.list(people["analyst"])
    (outcome,) = bridge.serve_once()
    assert outcome.syft_state == "rejected" and outcome.job_id is None
    assert "not a regular file" in _ds_job(ds, "linky").review_reason
    assert bridge.wh.jobs.list(people["analyst"]) == before


def test_a_pass_that_dies_mid_submission_never_submits_twice(bridge, syft_pair, people, tmp_path, monkeypatch):
    ds, _do = syft_pair
    wh = bridge.wh
    real_submit = wh.jobs.submit_files

    def submit_then_die(*args, **kwargs):
        real_submit(*args, **kwargs)
        raise RuntimeError("the bridge process was killed here")

    monkeypatch.setattr(wh.jobs, "submit_files", submit_then_die)
    _submit(ds, tmp_path, "crashy", RATES, {"purpose": "credit_risk", "datasets": ["firms", "loans"]})
    with pytest.raises(RuntimeError):
        bridge.serve_once(run=False)
    monkeypatch.setattr(wh.jobs, "submit_files", real_submit)
    (submitted,) = _audit(wh, people, "job.submitted", bridge.mark)  # the job exists once

    (outcome,) = bridge.serve_once(run=False)
    assert outcome.job_id == submitted["object_id"] and outcome.syft_state == "running"
    assert len(_audit(wh, people, "job.submitted", bridge.mark)) == 1
    assert _ds_job(ds, "crashy").status == "running"


def test_policy_refusal_shows_as_rejected(landed, people, syft_pair, syft_home, tmp_path):
    ds, do = syft_pair
    # alice is mapped to bank_b's user; loans allows bank_a only
    b = _bridge(landed, people, do, syft_home, users={DS_EMAIL: "rival"})
    b.publish(["loans"])
    _submit(ds, tmp_path, "not-yours", "import twh_job\n", {"purpose": "credit_risk", "datasets": ["loans"]})
    (outcome,) = b.serve_once()
    assert outcome.syft_state == "rejected" and outcome.job_id is None
    dsjob = _ds_job(ds, "not-yours")
    assert dsjob.status == "rejected" and dsjob.review_reason.startswith("access_refused:")
    assert landed.jobs.list(people["rival"]) == []
    (refused,) = _audit(landed, people, "syft.job_refused", b.mark)
    assert refused["actor"] == "rival" and refused["details"]["syft_user"] == DS_EMAIL
    assert _audit(landed, people, "job.refused", b.mark)


def test_unmapped_data_scientist_is_refused(landed, people, syft_pair, syft_home, tmp_path):
    ds, do = syft_pair
    b = _bridge(landed, people, do, syft_home, users={"someone@else.test": "analyst"}, default_purpose="credit_risk")
    b.publish(["firms"])
    _submit(ds, tmp_path, "who-am-i", "import twh_job\n", {"datasets": ["firms"]})
    (outcome,) = b.serve_once()
    assert outcome.syft_state == "rejected" and outcome.reason == UNMAPPED
    assert _ds_job(ds, "who-am-i").status == "rejected"
    assert _audit(landed, people, "job.submitted", b.mark) == []


def test_purposeless_job_without_default_is_refused(landed, people, syft_pair, syft_home, tmp_path):
    ds, do = syft_pair
    b = _bridge(landed, people, do, syft_home, users={DS_EMAIL: "analyst"})
    b.publish(["firms"])
    _submit(ds, tmp_path, "why", "import twh_job\n", {"datasets": ["firms"]})
    (outcome,) = b.serve_once()
    assert outcome.syft_state == "rejected" and "purpose" in outcome.reason


# -- the command line -----------------------------------------------------------------------------

def test_cli_publish_and_serve_once(landed, people, syft_pair, tmp_path, monkeypatch):
    import yaml
    from typer.testing import CliRunner

    from sandbox.interfaces.bridges.syft import bridge as bridge_mod
    from sandbox.interfaces.cli import main as cli

    ds, do = syft_pair
    # the one substitution: syft's login (Google Drive) → the mock-Drive data owner of this test
    monkeypatch.setattr(bridge_mod, "login_data_owner", lambda email, token_path: do)
    cfg = tmp_path / "syft-bridge.yaml"
    cfg.write_text(yaml.safe_dump({"email": DO_EMAIL, "token_path": "unused.json", "publisher": "admin",
                                   "default_purpose": "credit_risk", "users": {DS_EMAIL: "analyst"}}))

    def twh(*args: str) -> object:
        r = CliRunner().invoke(cli.app, ["--home", str(landed.settings.home), "--json", "syft", *args,
                                         "--config", str(cfg)])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    (pub,) = twh("publish", "firms", "loans")[:1]
    assert pub["name"] == "firms" and pub["audience"] == [DS_EMAIL]
    _submit(ds, tmp_path, "cli-rates", RATES, {"purpose": "credit_risk", "datasets": ["firms", "loans"]})
    (first,) = twh("serve-once")
    assert first["syft_state"] == "running" and first["job_id"].startswith("job_")
    export_id = landed.jobs.get(people["tax_steward"], first["job_id"])["export"]["id"]
    e = landed.exports.get(people["tax_steward"], export_id)
    for steward in ("tax_steward", "bank_steward"):
        landed.exports.decide(people[steward], export_id, "approve", "ok", e["bundle_sha256"])
    (done,) = twh("serve-once")
    assert done["syft_state"] == "done" and done["files"] == ["meta.json", "provenance.intoto.jsonl", "rates.csv"]
    assert set(_ds_outputs(ds, "cli-rates")) == {"meta.json", "provenance.intoto.jsonl", "rates.csv"}
    assert twh("serve-once") == []

    cfg.write_text(yaml.safe_dump({"email": "someone-else@twh.test", "publisher": "admin", "users": {DS_EMAIL: "analyst"}}))
    r = CliRunner().invoke(cli.app, ["--home", str(landed.settings.home), "--json", "syft", "serve-once",
                                     "--config", str(cfg)])
    error = json.loads(r.output)["error"]
    assert r.exit_code == 2 and error["code"] == "invalid_input" and "someone-else@twh.test" in error["message"]


def test_mapped_peers_are_approved_and_others_wait(landed, people, syft_home, tmp_path):
    from syft_rds import SyftRDSClient

    with _quiet():
        ds, do = SyftRDSClient.pair_with_mock_drive_service_connection(
            email1=DO_EMAIL, email2=DS_EMAIL, base_path1=syft_home / "datasite",
            base_path2=tmp_path / "alice" / "SyftBox", use_in_memory_cache=False, sync_automatically=False,
            add_peers=False)
        ds.add_peer(DO_EMAIL)
    stranger = _bridge(landed, people, do, syft_home, users={"bob@bank-a.test": "analyst"})
    assert stranger.approve_peers() == []
    assert [p.email for p in do.peer_manager.requested_by_peer_peers] == [DS_EMAIL]  # left to a person

    b = _bridge(landed, people, do, syft_home, users={DS_EMAIL: "analyst"}, default_purpose="credit_risk")
    b.publish(["firms"])
    assert b.serve_once() == []
    assert [p.email for p in do.peer_manager.approved_peers] == [DS_EMAIL]
    (rec,) = _audit(landed, people, "syft.peer_approved", b.mark)
    assert rec["details"] == {"syft_user": DS_EMAIL, "warehouse_user": "analyst", "syft_datasite": DO_EMAIL}
    with _quiet():
        ds.load_peers()
        ds.sync()
    assert [d.name for d in ds.dataset_manager.get_all(datasite=DO_EMAIL)] == ["firms"]
    _submit(ds, tmp_path, "after-approval", "import twh_job\n", {"datasets": ["firms"]})
    (outcome,) = b.serve_once(run=False)
    assert outcome.syft_state == "running" and outcome.job_id
