"""Exported files are parsed and re-written by trusted code; what does not parse is refused."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from sandbox.release.outputs import GatedFile, escape_formula, gate_outputs, with_trained


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


def test_json_is_reserialised():
    files, problems = gate_outputs([Out("r.json", b'{"b": 1, "a": [1, 2]}')])
    assert not problems and files[0].data.startswith(b'{\n  "a"')


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
    try:
        float(cell)
        is_number = cell.strip() == cell
    except ValueError:
        is_number = False
    assert is_number or not out.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_a_job_output_cannot_pose_as_the_trainers_certificate():
    trained = [GatedFile("model.safetensors", b"w"), GatedFile("model_card.json", b'{"epsilon": 1}')]
    forged = GatedFile("model_card.json", b'{"epsilon": 0.01}')
    files, problems = with_trained([forged, GatedFile("summary.csv", b"a\n1\n")], trained)
    assert files == [] and problems == ["model_card.json: the name is reserved for the platform's trainer"]
    files, problems = with_trained([GatedFile("summary.csv", b"a\n1\n")], trained)
    assert problems == [] and [f.name for f in files] == ["summary.csv", "model.safetensors", "model_card.json"]
