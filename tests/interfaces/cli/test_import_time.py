"""``twh`` answers fast: ``--help`` and a local ``dataset list`` load none of the heavy libraries.

An import-time regression (a module of the CLI importing the client, the facade or a library at
the top, a new command module that does) shows here as the name of the library it pulled in,
in a fresh interpreter, as a person starts ``twh``. ``bench/bench_cli.py`` measures the times.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sandbox.interfaces.cli.main import COMMANDS, app

#: what `twh --help` must never import (each costs 50-300 ms here)
HEAVY = ("pyarrow", "torch", "sqlalchemy", "numpy", "pandas", "duckdb", "deltalake", "pydantic", "alembic",
         "httpx", "sqlglot", "opacus")
#: what a local `dataset list` must never import: the same less nothing (it reads SQLite directly)
_PROBE = """
import json, sys
sys.argv = ["twh", *json.loads(sys.argv[1])]
from sandbox.interfaces.cli.main import app
try:
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n" + json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _modules(*args: str, env: dict[str, str] | None = None) -> tuple[int, set[str], str]:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(_PROBE), json.dumps(list(args))], capture_output=True,
                       text=True, timeout=120, env={**os.environ, **(env or {})})
    last = json.loads(r.stdout.strip().splitlines()[-1])
    return last["code"], set(last["modules"]), r.stdout


def test_help_imports_no_heavy_library() -> None:
    code, modules, out = _modules("--help")
    assert code == 0 and "dataset" in out and "job" in out
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.mark.parametrize("argv, env, code", [
    (["--help"], {}, 0), ([], {}, 2), (["--lang", "zh-CN", "--help"], {}, 0), (["--help", "--lang=zh-CN"], {}, 0),
    (["--help"], {"TWH_LANG": "zh-CN"}, 0),
])
def test_the_root_listing_imports_not_even_typer(argv: list[str], env: dict[str, str], code: int) -> None:
    """``twh --help`` (and ``twh`` alone) is answered by main/roothelp from a static copy: typer
    (and its vendored click) alone cost half of the command."""
    done, modules, _ = _modules(*argv, env=env)
    assert done == code
    assert not modules & {"typer", "click", "rich", "sandbox.interfaces.cli.root", *HEAVY}, sorted(modules)


def test_a_root_help_with_any_other_option_goes_to_typer() -> None:
    """Only a command line whose whole answer is the listing takes the quick path: typer checks
    and answers everything else (here, an option that does not exist)."""
    done, modules, out = _modules("--nosuch", "--help")
    assert done == 2 and "typer" in modules
    from sandbox.interfaces.cli.roothelp import quick

    for argv in (["--home", "x", "--help"], ["--help", "--help"], ["--help", "--lang"], ["--lang", "--help"],
                 ["-h"], ["dataset", "--help"], ["--json", "--help"], ["--lang=", "--help"]):
        assert quick(argv, {}) is None, argv
    assert quick(["--help"], {"_TWH_COMPLETE": "bash_source"}) is None  # typer's shell completion


@pytest.mark.parametrize("group", ["dataset", "job", "export", "user", "audit", "token"])
def test_a_group_s_help_imports_no_heavy_library(group: str) -> None:
    code, modules, _ = _modules(group, "--help")
    assert code == 0
    assert not modules & set(HEAVY), (group, sorted(modules & set(HEAVY)))


def test_a_local_dataset_list_reads_the_catalog_without_sqlalchemy(tmp_path: Path) -> None:
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    home = tmp_path / "wh"
    wh = Warehouse.open(Settings(home=home))
    wh.users.bootstrap_admin()
    wh.close()
    code, modules, out = _modules("--home", str(home), "--as", "admin", "--json", "dataset", "list")
    assert code == 0 and json.loads(out.strip().splitlines()[0]) == []
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


#: what the quick path (sandbox.interfaces.cli.fast) must not import either: typer, click, rich
_NOT_QUICK = {"typer", "click", "rich", *HEAVY}


def test_a_local_dataset_list_imports_neither_typer_nor_rich(tmp_path: Path) -> None:
    """``twh --as U dataset list`` as a person reads it (a table): the quick path and the table
    without rich; the same command line with an option the quick path leaves to typer does import it."""
    from sandbox.datasets.manifest import load_manifest
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    home = tmp_path / "wh"
    wh = Warehouse.open(Settings(home=home))
    wh.users.bootstrap_admin()
    wh.users.add(wh.users.principal("admin"), "tax_steward", "steward", "tax_bureau")
    wh.datasets.register(wh.users.principal("tax_steward"),
                         load_manifest(Path(__file__).resolve().parents[3] / "sandbox" / "demo" / "manifests"
                                       / "enterprise_registry.yaml"))
    wh.close()
    code, modules, out = _modules("--home", str(home), "--as", "admin", "dataset", "list")
    assert code == 0 and "enterprise_registry" in out and "tax_steward" in out
    assert not modules & _NOT_QUICK, sorted(modules & _NOT_QUICK)
    code, modules, out = _modules("--home", str(home), "--as", "admin", "dataset", "list", "--grade", "general")
    assert code == 0 and "enterprise_registry" in out and "typer" in modules


def test_a_local_submit_through_the_local_server_imports_neither_typer_nor_rich(tmp_path: Path) -> None:
    """``twh --as U job submit DIR`` as users run it (TWH_LOCAL_SERVER=auto: the home's server runs
    the job): the command's own process loads no typer, rich, httpx or heavy library."""
    from demo_homes import demo_home, empty_job

    home = demo_home(tmp_path / "wh")
    job = empty_job(tmp_path / "job", ["enterprise_registry"])
    env = {"TWH_LOCAL_SERVER": "auto", "TWH_HOME": str(home)}
    try:
        first = _modules("--as", "analyst", "--json", "job", "submit", str(job), env=env)  # starts the server
        assert first[0] == 0, first[2]
        code, modules, out = _modules("--as", "analyst", "job", "submit", str(job), env=env)
        assert code == 0 and "awaiting_review" in out
        assert not modules & _NOT_QUICK, sorted(modules & _NOT_QUICK)
        assert (home / ".local-server" / "sock").exists()  # it went through the server, not in-process
    finally:
        subprocess.run([sys.executable, "-m", "sandbox.interfaces.cli", "local-server", "stop"], timeout=60,
                       env={**os.environ, **env}, capture_output=True)


def test_the_command_table_is_the_whole_tree() -> None:
    """Every top-level command and group is in COMMANDS (a new module must add its line), and a
    command line naming one builds the same command as the whole tree has."""
    from typer.main import get_command

    from sandbox.interfaces.cli import main

    full = get_command(app)
    assert list(full.commands) == [n for n in COMMANDS if COMMANDS[n][1] == "top"] + \
        [n for n in COMMANDS if COMMANDS[n][1] != "top"]
    for name in COMMANDS:
        one = main._new_app()
        one.callback()(main.main)
        main._register(one, [name])
        alone = get_command(one).commands[name]
        assert sorted(p.name for p in alone.params) == sorted(p.name for p in full.commands[name].params), name
        assert sorted(getattr(alone, "commands", {})) == sorted(getattr(full.commands[name], "commands", {})), name


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_quick_listing_is_the_whole_tree_s_help(lang: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``twh --help`` is answered by main._listing (bare entries, no command built): it must read
    exactly as the help of the whole tree does, in every language."""
    import contextvars

    from typer.main import get_command

    from sandbox.interfaces.cli import main

    def help_of(cmd: Any) -> str:
        contextvars.copy_context().run(cmd.main, args=["--lang", lang, "--help"], prog_name="twh",
                                       standalone_mode=False)
        return capsys.readouterr().out

    whole = help_of(get_command(app))
    assert "Commands:" in whole and "dataset" in whole
    assert help_of(main._listing()) == whole


@pytest.mark.parametrize("columns", [None, "30", "60", "79", "120"])
@pytest.mark.parametrize("argv, env", [
    ([], {}), (["--help"], {}), (["--lang", "zh-CN", "--help"], {}), (["--help", "--lang=en"], {}),
    (["--help"], {"TWH_LANG": "zh-CN"}), ([], {"TWH_LANG": "zh-CN"}),
])
def test_the_static_root_listing_is_typer_s_byte_for_byte(argv: list[str], env: dict[str, str], columns: str | None,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """``twh --help`` answered without typer (main.app -> roothelp) prints exactly the bytes, on
    the same stream and with the same exit status, that typer prints for the same command line
    (root.app, the whole tree's help), at several terminal widths and in every language."""
    import contextvars

    from sandbox.interfaces.cli import main, root

    monkeypatch.setattr(sys, "argv", ["twh", *argv])
    for k, v in {**env, "COLUMNS": columns}.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)

    def run(entry: Any) -> tuple[Any, bytes, bytes]:
        with pytest.raises(SystemExit) as done:
            contextvars.copy_context().run(entry)
        sys.stdout.flush()
        sys.stderr.flush()
        got = capfdbinary.readouterr()
        return done.value.code, got.out, got.err

    quick = run(main.app)
    typer_s = run(root.app)
    assert quick == typer_s
    assert b"Commands:" in quick[1] + quick[2] and quick[0] in (0, 2)
    if "zh-CN" in (*argv, env.get("TWH_LANG")) and quick[0] == 0:  # a person reading Chinese reads the listing in it
        assert "提交和跟踪作业" in quick[1].decode() and "差分隐私预算" in quick[1].decode()


def test_the_static_listing_names_every_command_in_order() -> None:
    from sandbox.interfaces.cli.roothelp import COMMANDS as HELP

    assert list(HELP) == [n for n in COMMANDS if COMMANDS[n][1] == "top"] + \
        [n for n in COMMANDS if COMMANDS[n][1] != "top"]


def test_a_command_line_naming_one_command_reads_as_the_whole_tree(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """``twh GROUP COMMAND ...`` builds the group with that one command only (main._only): every
    command's help, and a group's own help, read exactly as in the whole tree."""
    from typer.main import get_command

    full = get_command(app)

    def through_argv(*argv: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", ["twh", *argv])
        with pytest.raises(SystemExit) as done:
            app(prog_name="twh")
        return done.value.code, capsys.readouterr().out

    def whole_tree(*argv: str) -> tuple[int, str]:
        code = full.main(args=list(argv), prog_name="twh", standalone_mode=False)
        return code or 0, capsys.readouterr().out

    groups = [n for n in COMMANDS if COMMANDS[n][1] != "top"]
    for group in groups:
        assert through_argv(group, "--help") == whole_tree(group, "--help"), group
        for sub in full.commands[group].commands:
            assert through_argv("--json", group, sub, "--help") == whole_tree("--json", group, sub, "--help"), \
                (group, sub)


@pytest.mark.parametrize("argv, named", [
    (["dataset", "list"], "dataset"), (["--home", "x", "--as", "a", "--json", "job", "submit", "d"], "job"),
    (["--get", "id", "export", "list"], "export"), (["--help"], None), ([], None), (["nosuch"], None),
    (["--home=/x", "init"], "init"),
])
def test_the_command_is_found_after_the_global_options(argv: list[str], named: str | None) -> None:
    from sandbox.interfaces.cli.main import _named

    assert _named(argv) == named
