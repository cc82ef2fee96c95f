"""The CLI's tables without rich (sandbox.interfaces.cli.plaintable): where a table fits, the
bytes are rich's (the layout every command had), over many tables, widths, CJK text, a pipe and a
terminal; where it does not, the free-text columns wrap between words — never mid-word as rich
did (``bank_stewa`` / ``rd``) — and the whole columns stay whole; where even that cannot fit,
rich prints it as before."""

from __future__ import annotations

import io
import random
import sys
import unicodedata

import pytest
from rich.cells import cell_len
from rich.console import Console

from sandbox.interfaces.cli import output, plaintable
from sandbox.interfaces.cli.plaintable import Table, cells, char_width, layout, wrap

#: text of the kind the tables hold: names, ids, numbers, punctuation, Latin-1, Chinese, spaces
ALPHABET = "abc_xyz0189 ,.-()é" + "中文数据审批管理员一般"
HEADER_ALPHABET = ALPHABET  # headers are our own words: never rich markup ("[") or ":emoji:" codes


def _rich(t: Table, width: int, terminal: bool) -> str:
    """What rich printed for the same table (output.table's rich Table, as before)."""
    f = io.StringIO()
    Console(file=f, width=width, force_terminal=terminal, color_system="standard" if terminal else None,
            _environ={}).print(output._rich_table(t))
    return f.getvalue()


def _random_table(rng: random.Random) -> Table:
    n = rng.randint(1, 6)
    columns: list[str] = []
    while len(columns) < n:
        name = "".join(rng.choice(HEADER_ALPHABET) for _ in range(rng.randint(1, 9))).strip() or "x"
        if name not in columns:
            columns.append(name)
    t = Table(tuple(columns), whole=tuple(c for c in columns if rng.random() < 0.4))
    for _ in range(rng.randint(0, 4)):
        t.add_row(*("".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 18))) for _ in columns))
    return t


def test_every_character_measured_here_is_measured_so_by_rich() -> None:
    """The widths: wherever char_width answers, rich's cell_len agrees (every code point up to
    U+3FFFF); everything else is left to rich. Chinese characters are among the answered ones."""
    answered = 0
    for o in range(0x40000):
        ch = chr(o)
        w = char_width(ch)
        if w is not None:
            answered += 1
            assert cell_len(ch) == w, (hex(o), w, cell_len(ch))
            assert unicodedata.category(ch) not in ("Cn", "Cc", "Cf", "Co", "Cs", "Mn", "Me")
    assert answered > 40000 and char_width("中") == 2 and char_width("a") == 1 and char_width("é") == 1
    for ch in ("\t", "\x1b", "\u0301", "😀", "\u200b", "\ufe0f"):  # control, combining, emoji, zero width
        assert char_width(ch) is None
    rng = random.Random(7)
    for _ in range(300):
        s = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 30)))
        assert cells(s) == cell_len(s)


@pytest.mark.parametrize("seed", range(4))
def test_a_table_that_fits_is_rich_s_byte_for_byte(seed: int) -> None:
    rng = random.Random(seed)
    compared = 0
    while compared < 300:
        t = _random_table(rng)
        width = rng.randint(8, 140)
        natural = t.lines(10_000)
        assert natural is not None
        if len(natural[0]) > width:  # does not fit: the next test's business
            continue
        terminal = rng.random() < 0.4
        mine = "".join(line + "\n" for line in t.lines(width, bold=terminal) or [])
        assert mine == _rich(t, width, terminal), (t.columns, t.rows, width, terminal)
        compared += 1


def test_the_dataset_list_at_80_columns_wraps_between_words() -> None:
    """The table `twh dataset list` printed into a pipe: rich cut bank_steward in two."""
    t = Table(("name", "zone", "grade", "version", "columns", "stewards"), whole=("name",))
    t.add_row("bank_loans", "market", "general data", "1", "7", "bank_steward")
    t.add_row("enterprise_registry", "government", "general data", "1", "5", "tax_steward")
    assert "bank_stewa " in _rich(t, 80, False)  # what it was
    lines = t.lines(80)
    assert lines is not None and all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "bank_steward" in text and "tax_steward" in text and "bank_stewa " not in text
    assert [line.split() for line in lines[3:5]] == [["bank_loans", "market", "general", "1", "7", "bank_steward"],
                                                     ["data"]]


@pytest.mark.parametrize("seed", range(3))
def test_a_table_that_does_not_fit_wraps_only_between_words(seed: int) -> None:
    """Properties of the deliberate layout: every line as wide as the table and no wider than the
    terminal; each free-text cell's lines are its words, whole and in order; whole columns are
    on one line; the header keeps rich's rule and blank edges."""
    rng = random.Random(100 + seed)
    checked = 0
    while checked < 100:
        t = _random_table(rng)
        width = rng.randint(20, 120)
        full = t.lines(10_000)
        lines = t.lines(width)
        if full is None or len(full[0]) <= width or lines is None:
            continue
        checked += 1
        ws = t.widths(width)
        assert ws is not None
        total = len(lines[0])
        assert total <= width and {cells(line) for line in lines} == {total}
        head = max(len(wrap(c, w)) for c, w in zip(t.columns, ws, strict=True))
        assert lines[0].strip() == "" and lines[-1].strip() == "" and set(lines[1 + head].strip()) == {"─"}
        for texts in (t.columns, *t.rows):
            for text, w, whole in zip(texts, ws, t.whole, strict=True):
                if whole:  # on one line of the output, as it is
                    assert (cells(text) or 0) <= w and any(text in line for line in lines)
                    continue
                pieces = wrap(text, w)
                assert all((cells(p) or 0) <= w for p in pieces)
                assert [x for p in pieces for x in p.split(" ")] == text.split(" ")  # no word cut or lost


def test_a_table_that_fits_only_with_words_cut_is_left_to_rich(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    t = Table(("id", "purpose", "datasets"), whole=("id",))
    t.add_row("auth_26309bc04462b3a5", "credit_decision", "social_insurance, tax_payments")
    assert t.lines(40) is None and t.lines(70) is not None
    monkeypatch.setenv("COLUMNS", "40")
    output.show(t)
    assert capsys.readouterr().out == _rich(t, 40, False)


@pytest.mark.parametrize("text", ["", "a", "ab cd", "x" * 30, "中文 数据 审批", "aa bb cc dd ee ff"])
@pytest.mark.parametrize("width", [1, 2, 3, 5, 8, 13])
def test_wrap_keeps_words_whole_when_they_fit(text: str, width: int) -> None:
    pieces = wrap(text, width)
    assert all((cells(p) or 0) <= width or len(p) == 1 for p in pieces)
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
    if all((cells(w) or 0) <= width for w in text.split(" ")):
        assert " ".join(pieces) == text


class _Stream(io.StringIO):
    def __init__(self, tty: bool, encoding: str = "utf-8") -> None:
        super().__init__()
        self._tty, self._encoding = tty, encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


@pytest.mark.parametrize("tty", [False, True])
@pytest.mark.parametrize("env", [{}, {"COLUMNS": "123"}, {"COLUMNS": "wide"}, {"TERM": "dumb"}, {"TERM": "unknown"},
                                 {"FORCE_COLOR": "1"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "1"},
                                 {"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, {"NO_COLOR": "1"},
                                 {"TERM": "dumb", "COLUMNS": "50"}, {"TERM": "dumb", "COLUMNS": "50", "LINES": "9"},
                                 {"COLUMNS": "60", "LINES": "x"}])
def test_the_width_and_the_bold_header_follow_rich_s_console(tty: bool, env: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same terminal rules as rich's Console: the width (COLUMNS, the terminal, else 80) and
    whether the header is bold (a terminal that is not dumb, TTY_COMPATIBLE, FORCE_COLOR)."""
    monkeypatch.setattr(plaintable.os, "get_terminal_size", _no_terminal)  # whatever runs the tests: a pipe
    monkeypatch.setattr("rich.console.os.get_terminal_size", _no_terminal)
    stream = _Stream(tty)
    console = Console(file=stream, _environ=env)
    how = layout(stream, env)
    assert how is not None
    assert how == (console.width, console.is_terminal and console.color_system is not None)
    t = Table(("name", "stewards"), whole=("name",))
    t.add_row("bank_loans", "bank_steward, 审批员")
    console.print(output._rich_table(t))
    assert "".join(line + "\n" for line in t.lines(how[0], bold=how[1]) or []) == stream.getvalue()


def _no_terminal(fd: int = 0) -> object:
    raise OSError("not a terminal")


def test_a_non_utf8_output_is_left_to_rich() -> None:
    assert layout(_Stream(False, "ascii"), {}) is None
    assert layout(_Stream(False, "latin-1"), {}) is None


def test_a_title_or_characters_not_measured_here_go_to_rich() -> None:
    assert not Table(("a",), title="T").simple()
    for bad in ("tab\there", "esc\x1b[31m", "e\u0301", "😀", "line\nbreak"):
        t = Table(("a",))
        t.add_row(bad)
        assert not t.simple(), bad
    assert not Table(("[b]x[/b]",)).simple() and not Table((":smile:",)).simple()


@pytest.mark.parametrize("text", ["registered x", "job job_1: awaiting_review", "  中文 数据：一般", "a" * 200,
                                  "[not markup] :smile: **x**", "tab\there", "bell\x07", "e\u0301"])
def test_say_prints_what_rich_printed(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """say() writes measured text itself and leaves the rest to rich: the bytes are rich's either way."""
    mine = io.StringIO()
    monkeypatch.setattr(sys, "stdout", mine)
    output.say(text)
    theirs = io.StringIO()
    Console(file=theirs, width=80).print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
    assert mine.getvalue() == theirs.getvalue()
