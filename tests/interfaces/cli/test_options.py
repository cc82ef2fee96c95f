"""The global options (``--home``, ``--as``, ``--url``, ``--token``, ``--json``, ``--get``) work before
and after the command, on every command, declared once."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sandbox.interfaces.cli.main import _GLOBAL, app


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def home(tmp_path):
    h = str(tmp_path / "wh")
    r = invoke("init", "--home", h)  # `twh init --home DIR`: refused before ("No such option")
    assert r.exit_code == 0, r.output
    return h


def test_every_command_and_group_takes_every_global_option():
    from typer.main import get_command

    root = get_command(app)
    flags = {o for p in root.params if p.name in _GLOBAL for o in p.opts}
    assert flags == {"--home", "--as", "--url", "--token", "--json", "--get", "--lang"}
    todo, seen = list(root.commands.values()), 0
    while todo:
        cmd = todo.pop()
        todo += list(getattr(cmd, "commands", {}).values())
        have = {o for p in cmd.params for o in p.opts}
        assert flags <= have, (cmd.name, flags - have)
        seen += 1
    assert seen > 35


def test_json_and_identity_after_the_subcommand_mean_the_same_as_before(home):
    before = invoke("--home", home, "--as", "admin", "--json", "user", "add", "a1", "--role", "auditor",
                    "--tenant", "r")
    after = invoke("user", "add", "a2", "--role", "auditor", "--tenant", "r", "--json", "--home", home, "--as",
                   "admin")
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(before.output)["user"]["name"] == "a1" and json.loads(after.output)["user"]["name"] == "a2"
    listed = invoke("dataset", "list", "--json", "--home", home, "--as", "a1")
    assert listed.exit_code == 0 and json.loads(listed.output) == []
    # in the middle of a nested command too, and the later of two values counts
    r = invoke("--as", "nobody", "--home", home, "user", "--json", "add", "a3", "--role", "auditor", "--tenant", "r",
               "--as", "admin")
    assert r.exit_code == 0 and json.loads(r.output)["user"]["name"] == "a3"


def test_errors_follow_a_late_json_flag(home):
    r = invoke("dataset", "show", "nope", "--home", home, "--as", "admin", "--json")
    assert r.exit_code == 2 and json.loads(r.output)["error"]["code"] == "not_found"


def test_get_prints_one_field_for_shell_variables(home):
    r = invoke("user", "add", "a1", "--role", "auditor", "--tenant", "r", "--home", home, "--as", "admin",
               "--get", "token")
    assert r.exit_code == 0 and r.output.startswith("twh_") and r.output.count("\n") == 1
    r = invoke("whoami", "--home", home, "--as", "a1", "--get", "role")
    assert r.output == "auditor\n"
    r = invoke("whoami", "--home", home, "--as", "a1", "--get", "nope")
    assert r.exit_code == 2 and "error [invalid_input]: --get nope" in r.output and "name" in r.output


def test_demo_keeps_its_own_home_and_honours_the_global_one(monkeypatch, tmp_path):
    import sandbox.demo.scenario as scenario

    seen: list[str] = []
    monkeypatch.setattr(scenario, "run_demo", lambda home, **kw: seen.append(str(home)) or {})
    monkeypatch.setenv("TWH_HOME", str(tmp_path / "my-real-warehouse"))  # never the demo's (it is deleted)
    assert invoke("demo", "--home", str(tmp_path / "a")).exit_code == 0
    assert invoke("--home", str(tmp_path / "b"), "demo").exit_code == 0
    assert invoke("demo").exit_code == 0
    assert seen == [str(tmp_path / "a"), str(tmp_path / "b"), "demo-warehouse"]


def test_demo_data_writes_sample_files_manifests_and_jobs(tmp_path):
    r = invoke("demo", "data", str(tmp_path / "s"), "--enterprises", "50", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert sorted(d["data"]) == ["bank_loans", "enterprise_registry", "social_insurance", "tax_payments"]
    assert (tmp_path / "s" / "enterprise_registry.csv").read_text().count("\n") == 51  # header + 50 firms
    assert {p.rsplit("/", 1)[1] for p in d["manifests"]} == {f"{n}.yaml" for n in d["data"]}
    assert (tmp_path / "s" / "jobs" / "default_rate" / "job.yaml").is_file()
    assert invoke("demo", "data", str(tmp_path / "t"), "--enterprises", "0").exit_code == 2  # refused, not a crash


def test_whoami_waits_for_a_service_that_is_not_up_yet(monkeypatch):
    import httpx

    from sandbox.interfaces import client as client_mod

    calls = []

    def me(self):
        calls.append(1)
        if len(calls) < 3:
            raise client_mod._unreachable(httpx.ConnectError("refused"))
        return {"name": "x", "role": "auditor", "tenant": "t"}

    monkeypatch.setattr(client_mod.Client, "whoami", me)
    r = invoke("whoami", "--url", "http://127.0.0.1:9", "--token", "t", "--wait", "10")
    assert r.exit_code == 0 and "x (auditor, tenant t)" in r.output and len(calls) == 3
    calls.clear()
    r = invoke("whoami", "--url", "http://127.0.0.1:9", "--token", "t")  # no --wait: the first answer counts
    assert r.exit_code == 2 and "cannot reach" in r.output and len(calls) == 1
