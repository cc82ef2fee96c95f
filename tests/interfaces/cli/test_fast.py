"""The quick path (sandbox.interfaces.cli.fast) reads ``twh ... dataset list`` and ``twh ... job
submit DIR`` without typer: over many command lines — the global options before the group,
between it and the command, after it, repeated, in both spellings, with ``--json``, ``--get``,
``--lang``, the ``TWH_*`` variables, and errors — it must answer exactly what typer's tree answers
(stdout, stderr, exit status), and hand every other command line to typer rather than guess."""

from __future__ import annotations

import os
import random
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from demo_homes import USERS, demo_home, empty_job
from typer.testing import CliRunner

from sandbox.interfaces.cli import fast
from sandbox.interfaces.cli.main import app


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = demo_home(tmp_path_factory.mktemp("fast") / "wh",
                     users=[*USERS, ("bank_steward", "steward", "bank_a")],
                     datasets=[("enterprise_registry", "tax_steward"), ("bank_loans", "bank_steward")])
    empty_job(home.parent / "job", ["enterprise_registry", "bank_loans"])
    return home


def _mask(text: str) -> str:
    """A job's id and times differ between two submits; nothing else may."""
    text = re.sub(r"job_[0-9a-f]{16}", "job_…", text)
    return re.sub(r"\d{4}-\d\d-\d\d[T ][\d:.]+", "…", text)


def _env(monkeypatch: pytest.MonkeyPatch, home: Path, extra: dict[str, str]) -> None:
    for k in list(os.environ):
        if k.startswith("TWH_") and k != "TWH_LOCAL_SERVER" or k in ("COLUMNS", "LINES"):
            monkeypatch.delenv(k)
    monkeypatch.setenv("TWH_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "80")
    for k, v in extra.items():
        monkeypatch.setenv(k, v)


def _both(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(quick path, typer's tree): exit status, stdout, stderr."""
    capsys.readouterr()
    code = fast.answer(argv, os.environ)
    assert code is not None, f"the quick path did not take {argv}"
    got = capsys.readouterr()
    r = CliRunner().invoke(app, argv)
    return (code, _mask(got.out), _mask(got.err)), (r.exit_code, _mask(r.stdout), _mask(r.stderr))


LIST_LINES: list[tuple[list[str], dict[str, str]]] = [
    (["--as", "analyst", "dataset", "list"], {}),
    (["dataset", "list", "--as", "analyst"], {}),
    (["dataset", "--as", "analyst", "list"], {}),
    (["--as=analyst", "dataset", "list", "--json"], {}),
    (["--json", "--as", "analyst", "dataset", "list"], {}),
    (["dataset", "--json", "list", "--as=analyst"], {}),
    (["--as", "analyst", "dataset", "list", "--get", "0.name"], {}),
    (["--get", "1.stewards", "--as", "analyst", "dataset", "list"], {}),
    (["--get=0", "--as", "analyst", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list", "--get", "0.nope"], {}),
    (["--as", "analyst", "--json", "dataset", "list", "--get", "7"], {}),
    (["--as", "nobody", "dataset", "list"], {}),
    (["--json", "--as", "nobody", "dataset", "list"], {}),
    (["dataset", "list"], {}),
    (["--json", "dataset", "list"], {}),
    (["--as", "bank_steward", "--lang", "zh-CN", "dataset", "list"], {}),
    (["--lang=zh-CN", "--as", "analyst", "dataset", "list", "--lang", "en"], {}),
    (["--as", "analyst", "dataset", "--lang", "zh", "list"], {}),
    (["--as", "nobody", "--lang", "zh-CN", "dataset", "list"], {}),
    (["--as", "x", "--as", "analyst", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list", "--as", "nobody"], {}),
    (["--url", "http://127.0.0.1:9", "--token", "t", "dataset", "list"], {}),
    (["--url", "http://127.0.0.1:9", "dataset", "list"], {}),
    (["dataset", "list"], {"TWH_USER": "analyst"}),
    (["dataset", "list", "--json"], {"TWH_USER": "analyst", "TWH_LANG": "zh-CN"}),
    (["--lang", "en", "--as", "analyst", "dataset", "list"], {"TWH_LANG": "zh-CN"}),
    (["--as", "analyst", "dataset", "list"], {"TWH_USER": "nobody"}),
    (["--as", "analyst", "dataset", "list"], {"COLUMNS": "50"}),
    (["--as", "analyst", "dataset", "list"], {"COLUMNS": "200"}),
    (["--as", "analyst", "--lang", "zh-CN", "dataset", "list"], {"COLUMNS": "40"}),
    (["dataset", "list"], {"TWH_URL": "http://127.0.0.1:9", "TWH_TOKEN": "t", "TWH_USER": "analyst"}),
]


@pytest.mark.parametrize("argv, env", LIST_LINES)
def test_dataset_list_answers_as_typer_does(argv: list[str], env: dict[str, str], home: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _env(monkeypatch, home, env)
    quick, typer_ = _both(argv, capsys)
    assert quick == typer_


def _random_line(rng: random.Random, words: list[str]) -> list[str]:
    """``words`` with global options (both spellings, some twice) before, between and after them."""
    options = [["--as", rng.choice(["analyst", "bank_steward", "nobody"])], ["--json"],
               ["--lang", rng.choice(["en", "zh-CN", "zh_CN", "EN"])], ["--get", rng.choice(["0.name", "0", "1.x"])],
               ["--home", "HOME"]]
    chosen = [o for o in options if rng.random() < 0.5] + [o for o in options if rng.random() < 0.15]
    slots: list[list[str]] = [[] for _ in range(len(words) + 1)]
    for opt in chosen:
        if len(opt) == 2 and rng.random() < 0.4:
            opt = [f"{opt[0]}={opt[1]}"]
        slots[rng.randrange(len(slots))].extend(opt)
    line: list[str] = []
    for i, slot in enumerate(slots):
        line += slot + ([words[i]] if i < len(words) else [])
    return line


def test_global_options_anywhere_answer_as_typer_does(home: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(16)
    for _ in range(40):
        argv = [str(home) if a == "HOME" else a.replace("=HOME", f"={home}")
                for a in _random_line(rng, ["dataset", "list"])]
        _env(monkeypatch, home, {"TWH_USER": "analyst"} if rng.random() < 0.3 else {})
        quick, typer_ = _both(argv, capsys)
        assert quick == typer_, argv


def test_job_submit_answers_as_typer_does(home: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """In this process (TWH_LOCAL_SERVER=off): the job runs in each; the same answer bar its id."""
    job = str(home.parent / "job")
    lines = [["--as", "analyst", "--json", "job", "submit", job],
             ["job", "submit", job, "--as", "analyst"],
             ["--as", "analyst", "job", "--get", "state", "submit", job],
             ["--lang", "zh-CN", "job", "--as=analyst", "submit", job],
             ["--as", "tax_steward", "job", "submit", job],
             ["--as", "analyst", "job", "submit", str(home.parent / "missing")],
             ["--as", "analyst", "--json", "job", "submit", str(home.parent / "missing")],
             ["job", "submit", job]]
    for argv in lines:
        _env(monkeypatch, home, {"TWH_LOCAL_SERVER": "off"})
        quick, typer_ = _both(argv, capsys)
        assert quick == typer_, argv
    assert "awaiting_review" in quick[1] or "awaiting_review" in _both(lines[0], capsys)[0][1]


@pytest.mark.parametrize("argv, env", [
    (["--as", "analyst", "dataset", "list", "--grade", "general"], {}),
    (["dataset", "list", "--help"], {}),
    (["--help", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list", "extra"], {}),
    (["--as", "--json", "dataset", "list"], {}),
    (["--as", "", "dataset", "list"], {}),
    (["--as=", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list", "--as"], {}),
    (["--lang", "fr", "--as", "analyst", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list"], {"TWH_LANG": "fr"}),
    (["--as", "analyst", "dataset", "list", "--"], {}),
    (["--", "--as", "analyst", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "show", "x"], {}),
    (["--as", "analyst", "list", "dataset"], {}),
    (["--json=1", "--as", "analyst", "dataset", "list"], {}),
    (["--as", "analyst", "dataset", "list", "--jso"], {}),
    (["--as", "analyst", "dataset", "list", "-"], {}),
    (["-h"], {}),
    (["--install-completion"], {}),
    (["--as", "analyst", "dataset", "list"], {"_TWH_COMPLETE": "complete_bash"}),
    (["--as", "analyst", "job", "submit"], {}),
    (["--as", "analyst", "job", "submit", "a", "b"], {}),
    (["--as", "analyst", "job", "submit", "--no-wait", "d"], {}),
    (["--as", "analyst", "job", "submit", "--wait", "d"], {}),
    (["--as", "analyst", "job", "submit", ""], {}),
    (["--as", "analyst", "job", "submit", "-d"], {}),
    (["--as", "analyst", "job", "list"], {}),
    ([], {}),
])
def test_anything_else_goes_to_typer(argv: list[str], env: dict[str, str]) -> None:
    """Options the quick path does not know, a missing or empty value, ``--``, another command,
    completion: typer reads them (and answers or refuses as it always has)."""
    assert fast.parse(argv, {"TWH_HOME": "/nowhere", **env}) is None


def test_the_quick_path_takes_the_command_lines_it_claims() -> None:
    """The equivalence above is not vacuous: these lines really are read by the quick path."""
    for argv, env in LIST_LINES:
        parsed = fast.parse(argv, env)
        assert parsed is not None and parsed[0] == ("dataset", "list"), argv
    parsed = fast.parse(["--as=analyst", "job", "--json", "submit", "d", "--get", "id"], {})
    assert parsed is not None and parsed[0] == ("job", "submit") and parsed[1] == ["d"]
    ctx = parsed[2]
    assert (ctx.user, ctx.as_json, ctx.get, ctx.lang) == ("analyst", True, "id", None)


@pytest.mark.parametrize("stop", [KeyboardInterrupt, EOFError, BrokenPipeError])
def test_an_interrupt_ends_as_typer_ends_it(stop: type[BaseException], home: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C during the command (a submit waiting for its run), an input that ends, a reader that
    went away: the status and the words typer's main gives them, no traceback."""
    from sandbox.interfaces.cli import datasets, views

    def interrupted(*_a: Any) -> Any:
        raise stop(32, "Broken pipe") if stop is BrokenPipeError else stop

    monkeypatch.setattr(views, "list_datasets", interrupted)
    monkeypatch.setattr(datasets, "list_datasets", interrupted)
    _env(monkeypatch, home, {})
    stdout = sys.stdout
    try:
        quick, typer_ = _both(["--as", "analyst", "dataset", "list"], capsys)
    finally:
        sys.stdout = stdout  # (a broken pipe replaces it)
    assert quick == typer_ and quick[0] in (1, 130), quick
