"""Every ``twh`` command in human mode (no ``--json``), over every state a job or an export can be
in, as the submitter, a steward and an auditor see it, locally and against the service, on an
80-column terminal: exit 0 (or the documented error, never a traceback), the state word printed
as text (not eaten as Rich markup), and every id, hash and token whole."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from serving import serving
from typer.testing import CliRunner

from sandbox.datasets.manifest import parse_manifest
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.cli import output
from sandbox.interfaces.cli.main import app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse
from tests.e2e.conftest import FIRMS, LOANS, write_data

RATES = """
import twh_job
r = twh_job.query('''SELECT f.district, COUNT(*) AS loans, AVG(l.defaulted) AS rate
                     FROM loans l JOIN firms f ON l.uscc = f.uscc GROUP BY f.district''')
print("suppressed", r.suppressed)
r.to_csv("rates.csv")
"""
CRASH = "raise SystemExit(3)\n"
NOTHING = "import twh_job\nprint(twh_job.datasets())\n"  # reads, writes no file
USERS = [("tax_steward", "steward", "tax_bureau"), ("bank_steward", "steward", "bank_a"),
         ("analyst", "enterprise", "bank_a"), ("auditor", "auditor", "regulator")]
JOB_STATES = ("queued", "running", "awaiting_approval", "released", "denied", "failed", "failed_empty",
              "failed_released")
#: what the submitter sees of each: before a steward acts, one state whatever the job did
SUBMITTER = {"queued": "awaiting_review", "running": "awaiting_review", "awaiting_approval": "awaiting_review",
             "failed": "awaiting_review", "failed_empty": "awaiting_review", "released": "released",
             "denied": "denied", "failed_released": "failed"}


@dataclass
class World:
    wh: Warehouse
    home: Path
    url: str
    tokens: dict[str, str]
    jobs: dict[str, str] = field(default_factory=dict)  # state -> job id
    partly: str = ""  # an export one of its two stewards approved
    exports: dict[str, str] = field(default_factory=dict)  # export state -> export id
    dirs: dict[str, Path] = field(default_factory=dict)


def _job(root: Path, name: str, code: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "job.yaml").write_text(yaml.safe_dump({"name": name, "purpose": "credit_risk", "datasets": ["firms", "loans"]}))
    (d / "job.py").write_text(textwrap.dedent(code))
    return d


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    wh = Warehouse.open(Settings(home=tmp / "wh", job_wall_seconds=30, job_cpu_seconds=30, run_worker=False))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in USERS:
        wh.users.add(admin, name, role, tenant)
    p = wh.users.principal
    firms, loans = write_data(tmp)
    wh.datasets.register(p("tax_steward"), parse_manifest(FIRMS))
    wh.datasets.register(p("bank_steward"), parse_manifest(LOANS))
    wh.ingest.ingest(p("tax_steward"), "firms", firms)
    wh.ingest.ingest(p("bank_steward"), "loans", loans)
    dirs = {"rates": _job(tmp, "rates", RATES), "crash": _job(tmp, "crash", CRASH),
            "nothing": _job(tmp, "nothing", NOTHING)}
    tokens = {n: wh.users.issue_token(admin, n) for n in ("admin", *(u[0] for u in USERS))}

    def ran(kind: str) -> dict[str, Any]:
        job = wh.jobs.submit(p("analyst"), dirs[kind])
        wh.jobs.run(job["id"])
        return wh.jobs.get(admin, job["id"])

    def decide(job: dict[str, Any], decision: str, *stewards: str) -> None:
        bundle = wh.exports.get(admin, job["export"]["id"])["bundle_sha256"]
        for s in stewards:
            wh.exports.decide(p(s), job["export"]["id"], decision, "ok", bundle)

    w = World(wh, tmp / "wh", "", tokens, dirs=dirs)
    pending, released, denied, partly = ran("rates"), ran("rates"), ran("rates"), ran("rates")
    decide(released, "approve", "tax_steward", "bank_steward")
    decide(denied, "deny", "bank_steward")
    decide(partly, "approve", "bank_steward")  # the submitter sees it from the first steward's decision
    told = ran("crash")  # a failed job whose one-line notice the stewards release to its submitter
    decide(told, "approve", "tax_steward", "bank_steward")
    w.jobs.update(awaiting_approval=pending["id"], released=released["id"], denied=denied["id"],
                  failed=ran("crash")["id"], failed_empty=ran("nothing")["id"], failed_released=told["id"],
                  queued=wh.jobs.submit(p("analyst"), dirs["rates"])["id"])
    w.exports.update(pending=pending["export"]["id"], approved=released["export"]["id"],
                     denied=denied["export"]["id"])
    w.partly = partly["export"]["id"]
    with serving(create_app(warehouse=wh)) as url:  # its start-up reaps what its worker id held: claim after
        w.url = url
        running = wh.jobs.submit(p("analyst"), dirs["rates"])["id"]
        assert wh.jobs.claim(running)
        w.jobs["running"] = running
        yield w
    wh.close()


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    """The consoles at 80 columns, as a terminal of COLUMNS=80 (pytest's own may be wider)."""
    monkeypatch.setenv("COLUMNS", "80")
    for console in (output.out, output.err):
        monkeypatch.setattr(console, "_width", 80)


def twh(w: World, mode: str, user: str, *args: str, code: int = 0) -> str:
    who = ["--home", str(w.home), "--as", user] if mode == "local" else ["--url", w.url, "--token", w.tokens[user]]
    r = CliRunner().invoke(app, [*args, *who])  # the global options after the command: as a person types them
    assert r.exit_code == code, (args, r.output)
    assert "Traceback" not in r.output, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.output


def state_word(state: str, user: str = "tax_steward") -> str:
    if user == "analyst":
        return SUBMITTER[state]
    return "failed" if state.startswith("failed") else state


MODES = ["local", "remote"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", JOB_STATES)
def test_job_show_renders_every_state_for_every_role(world, mode, state):
    job_id = world.jobs[state]
    for user in ("analyst", "tax_steward", "auditor"):
        text = twh(world, mode, user, "job", "show", job_id)
        assert f"job {job_id}: {state_word(state, user)}" in text, (user, text)
        if user == "analyst":  # the submitter never sees the queries
            assert "queries: withheld" in text and "query released" not in text
        elif state not in ("queued", "running"):
            assert "query " in text or state.startswith("failed")
        job = world.wh.jobs.get(world.wh.users.principal("admin"), job_id)
        if job["export"] and (user != "analyst" or SUBMITTER[state] != "awaiting_review"):
            assert f"export {job['export']['id']}: {job['export']['state']}" in text
        if user == "analyst" and SUBMITTER[state] == "awaiting_review":  # not even the export's id
            assert job["export"] is None or job["export"]["id"] not in text


@pytest.mark.parametrize("mode", MODES)
def test_job_list_and_logs_keep_every_id_and_state(world, mode):
    for user in ("analyst", "tax_steward"):
        text = twh(world, mode, user, "job", "list")
        for state, job_id in world.jobs.items():
            line = next(x for x in text.splitlines() if job_id in x)  # the id whole, on one line
            assert state_word(state, user) in line, (state, line)
    for state in ("awaiting_approval", "failed", "failed_empty", "running"):
        twh(world, mode, "tax_steward", "job", "logs", world.jobs[state])


def test_a_failed_job_tells_its_submitter_where_to_look_and_nothing_more(world):
    # before the stewards act: the one state, nothing about the failure
    text = twh(world, "local", "analyst", "job", "show", world.jobs["failed"])
    assert "awaiting_review" in text and "SystemExit" not in text and "exit" not in text
    # once they release its notice: the reason they approved, and where to look
    text = twh(world, "local", "analyst", "job", "show", world.jobs["failed_released"])
    assert ": failed" in text and "twh job run-local" in text
    steward = twh(world, "local", "tax_steward", "job", "show", world.jobs["failed_empty"])
    assert "nothing to export" in steward


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("state", ["pending", "approved", "denied"])
def test_export_show_renders_every_state_for_submitter_and_steward(world, mode, state):
    export_id = world.exports[state]
    e = world.wh.exports.get(world.wh.users.principal("admin"), export_id)
    if state == "pending":  # a pending export does not exist for its submitter (when it appeared would say too much)
        mine = twh(world, mode, "analyst", "export", "show", export_id, code=2)
        assert "not_found" in mine and "Traceback" not in mine
    else:
        mine = twh(world, mode, "analyst", "export", "show", export_id)
        assert f"export {export_id}: {state}" in mine and e["job_id"] in mine
    if state == "approved":
        assert e["bundle_sha256"] in mine and "rates.csv" in mine
    elif state == "denied":  # files, names and hashes stay withheld from the submitter
        assert "files: withheld" in mine and "rates.csv" not in mine and e["bundle_sha256"] not in mine
    review = twh(world, mode, "tax_steward", "export", "show", export_id, "--content")
    assert f"export {export_id}: {state}" in review and e["bundle_sha256"] in review
    assert "--- rates.csv ---" in review and "district,loans,rate" in review
    for f in e["files"]:
        assert f["sha256"] in review
    if state == "pending":
        assert "waiting for a steward of: firms, loans" in review


@pytest.mark.parametrize("mode", MODES)
def test_export_list_in_every_state_keeps_ids_whole(world, mode):
    for user in ("analyst", "tax_steward", "auditor"):
        text = twh(world, mode, user, "export", "list")
        for state, export_id in world.exports.items():
            if user == "analyst" and state == "pending":
                assert export_id not in text
                continue
            line = next(x for x in text.splitlines() if export_id in x)
            assert state in line and world.wh.exports.get(world.wh.users.principal("admin"), export_id)["job_id"] in line
    for state, export_id in world.exports.items():
        text = twh(world, mode, "tax_steward", "export", "list", "--state", state)
        assert export_id in text and all(x not in text for s, x in world.exports.items() if s != state)


@pytest.mark.parametrize("mode", MODES)
def test_download_names_whose_approval_is_missing(world, mode, tmp_path):
    out = tmp_path / mode
    text = twh(world, mode, "analyst", "export", "download", world.exports["approved"], "--to", str(out))
    assert f"wrote {out / 'rates.csv'}" in text
    r = CliRunner().invoke(app, ["export", "download", world.partly, "--to", str(out)] + (
        ["--home", str(world.home), "--as", "analyst"] if mode == "local" else
        ["--url", world.url, "--token", world.tokens["analyst"]]))
    assert r.exit_code == 2 and "error [forbidden]" in r.output
    assert "firms (steward: tax_steward)" in r.output and "loans (steward" not in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("mode", MODES)
def test_the_other_readers_render(world, mode):
    assert "firms" in twh(world, mode, "analyst", "dataset", "list")
    shown = twh(world, mode, "analyst", "dataset", "show", "firms")
    assert "join_key" in shown and "policy:" in shown
    history = twh(world, mode, "tax_steward", "dataset", "history", "firms")
    load_id = world.wh.datasets.show(world.wh.users.principal("admin"), "firms")["versions"][-1]["load_id"]
    assert load_id in history and "validation passed" in history
    assert "no DP budget" in twh(world, mode, "tax_steward", "budget", "show", "firms")
    assert "audit chain OK" in twh(world, mode, "auditor", "audit", "verify")
    assert "analyst (enterprise, tenant bank_a)" in twh(world, mode, "analyst", "whoami")


@pytest.mark.parametrize("mode", MODES)
def test_user_add_prints_the_token_whole_on_its_own_line(world, mode):
    text = twh(world, mode, "admin", "user", "add", f"auditor_{mode}", "--role", "auditor", "--tenant", "reg")
    token = text.strip().splitlines()[-1]
    assert re.fullmatch(r"twh_[A-Za-z0-9_-]{40,}", token)
    who = CliRunner().invoke(app, ["whoami", "--url", world.url, "--token", token])
    assert who.exit_code == 0 and f"auditor_{mode} (auditor" in who.output


def test_submit_and_decide_render_each_outcome(world):
    """`job submit` (local: it runs here) in every end state, and approve/deny printing the export."""
    for kind in ("rates", "crash", "nothing"):  # whatever the job did: one state for its submitter
        text = twh(world, "local", "analyst", "job", "submit", str(world.dirs[kind]))
        job_id = re.search(r"job (job_[0-9a-f]{16}): (\w+)", text)
        assert job_id and job_id.group(2) == "awaiting_review", text
        assert "exp_" not in text
    job_id = re.search(r"job (job_[0-9a-f]{16})", twh(world, "local", "analyst", "job", "submit",
                                                      str(world.dirs["rates"]))).group(1)
    export_id = re.search(r"export (exp_[0-9a-f]{16}): pending",
                          twh(world, "local", "tax_steward", "job", "show", job_id)).group(1)
    text = twh(world, "local", "tax_steward", "export", "approve", export_id, "--reason", "ok [bold]")
    assert f"export {export_id}: pending" in text and "ok [bold]" in text and "waiting for a steward of: loans" in text
    text = twh(world, "local", "bank_steward", "export", "deny", export_id, "--reason", "no")
    assert f"export {export_id}: denied" in text
    queued = twh(world, "remote", "analyst", "job", "submit", str(world.dirs["rates"]), "--no-wait")
    assert re.search(r"job job_[0-9a-f]{16}: awaiting_review", queued) and "export: none" in queued


def test_init_prints_the_token_whole_and_empty_lists_say_so(tmp_path):
    home = str(tmp_path / "wh")
    r = CliRunner().invoke(app, ["init", "--home", home])
    assert r.exit_code == 0 and home in r.output
    assert re.fullmatch(r"twh_[A-Za-z0-9_-]{40,}", r.output.strip().splitlines()[-1])
    for args, says in ((["job", "list"], "no jobs"), (["export", "list"], "no exports"),
                       (["dataset", "list"], "no datasets")):
        r = CliRunner().invoke(app, [*args, "--home", home, "--as", "admin"])
        assert r.exit_code == 0 and says in r.output, r.output
