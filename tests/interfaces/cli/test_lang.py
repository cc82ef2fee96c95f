"""``--lang``/``TWH_LANG``: text for people in Chinese or English; machines' output (``--json``),
error codes and values never change with the language; starting the CLI stays light."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sandbox.datasets.manifest import parse_manifest
from sandbox.interfaces.cli.main import app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse
from tests.e2e.conftest import FIRMS


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = tmp_path_factory.mktemp("lang") / "wh"
    wh = Warehouse.open(Settings(home=home, run_worker=False))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in [("tax_steward", "steward", "tax_bureau"), ("analyst", "enterprise", "bank_a")]:
        wh.users.add(admin, name, role, tenant)
    firms = copy.deepcopy(FIRMS)
    firms["classification"] = {"category": "market_regulation", "grade": "general"}
    wh.datasets.register(wh.users.principal("tax_steward"), parse_manifest(firms))
    wh.close()
    return home


def twh(home, *args, env=None):
    return CliRunner().invoke(app, ["--home", str(home), "--as", "analyst", *args], env=env)


def test_people_read_chinese_and_machines_read_the_same_json(home):
    en = twh(home, "dataset", "list")
    zh = twh(home, "--lang", "zh-CN", "dataset", "list")
    late = twh(home, "dataset", "list", "--lang", "zh-CN")  # a global option, after the command too
    env = twh(home, "dataset", "list", env={"TWH_LANG": "zh-CN"})
    assert en.exit_code == zh.exit_code == late.exit_code == env.exit_code == 0
    assert "grade" in en.output and "general data" in en.output
    for r in (zh, late, env):
        assert "级别" in r.output and "一般数据" in r.output and "firms" in r.output  # the name stays as it is
    as_json = [json.loads(twh(home, *lang, "--json", "dataset", "list").output) for lang in ([], ["--lang", "zh-CN"])]
    assert as_json[0] == as_json[1] and as_json[0][0]["classification"]["grade"] == "general"
    assert "一般数据" in twh(home, "--lang", "zh", "dataset", "show", "firms").output


def test_error_codes_stay_the_same_in_every_language(home):
    en = twh(home, "job", "show", "job_nope")
    zh = twh(home, "--lang", "zh-CN", "job", "show", "job_nope")
    assert en.exit_code == zh.exit_code == 2
    assert "error [not_found]" in en.output and "错误 [not_found]" in zh.output
    js = [json.loads(twh(home, *lang, "--json", "job", "show", "job_nope").output)
          for lang in ([], ["--lang", "zh-CN"])]
    assert js[0] == js[1] and js[0]["error"]["code"] == "not_found"


def test_an_unknown_language_is_a_usage_error(home):
    r = twh(home, "--lang", "klingon", "dataset", "list")
    assert r.exit_code == 2 and "use en or zh-CN" in r.output
    assert twh(home, "dataset", "list", env={"TWH_LANG": "xx"}).exit_code == 2


def test_starting_the_cli_stays_light():
    """The catalogue is the standard library's gettext; Babel loads only to format a number."""
    code = ("import sys; from sandbox.interfaces.cli.main import app; from sandbox.i18n import use, _; use('zh-CN'); "
            "_('Review queue'); print(sorted(m for m in ('babel', 'sqlalchemy', 'pyarrow', 'numpy', 'torch', "
            "'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
