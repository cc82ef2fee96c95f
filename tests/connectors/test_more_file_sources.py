"""Excel, JSON lines, OHLC and the row-quarantine mode of the conversion path."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from connectors import ColumnSpec, ConfigError, SchemaError, SourceError, get_source

SPECS = [ColumnSpec("code", "string", nullable=False), ColumnSpec("n", "int64"), ColumnSpec("day", "date")]


def _xlsx(path: Path, rows: list[list], title: str = "Sheet1") -> Path:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = title
    for r in rows:
        ws.append(r)
    wb.save(path)
    return path


def _read(kind: str, path: Path, specs=SPECS, options=None, **kw) -> list[dict]:
    with get_source(kind).open(path, specs, options, **kw) as s:
        return [r for b in s for r in b.to_pylist()]


def test_xlsx_streams_with_declared_types_and_keeps_formulas_as_text(tmp_path: Path) -> None:
    p = _xlsx(tmp_path / "a.xlsx", [["code", "n", "day"], ["=HYPERLINK(\"x\")", 1, dt.date(2024, 1, 2)],
                                    ["00123", 2, dt.datetime(2024, 1, 3)], [None, None, None], ["@SUM(A1)", 3, None]])
    rows = _read("xlsx", p)
    assert [r["code"] for r in rows] == ['=HYPERLINK("x")', "00123", "@SUM(A1)"]
    assert rows[0]["day"] == dt.date(2024, 1, 2) and rows[2]["day"] is None


def test_xlsx_refuses_numbers_in_code_columns_formulas_in_typed_columns_and_wrong_headers(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="codes must be sent as text"):
        _read("xlsx", _xlsx(tmp_path / "a.xlsx", [["code", "n", "day"], [123, 1, None]]))
    with pytest.raises(SchemaError, match="'n'"):
        _read("xlsx", _xlsx(tmp_path / "b.xlsx", [["code", "n", "day"], ["a", "=1+1", None]]))
    with pytest.raises(SourceError, match=r"duplicate column name\(s\) \['n'\]"):
        _read("xlsx", _xlsx(tmp_path / "c.xlsx", [["code", "n", "n", "day"], ["a", 1, 1, None]]))
    with pytest.raises(SourceError, match="no sheet 'Data'"):
        _read("xlsx", _xlsx(tmp_path / "d.xlsx", [["code", "n", "day"]]), options={"sheet": "Data"})
    (tmp_path / "e.xlsx").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="not a readable .xlsx"):
        _read("xlsx", tmp_path / "e.xlsx")


def test_jsonl_strict_json(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'\xef\xbb\xbf{"code": "001", "n": 1, "day": "2024-01-02"}\n\n{"code": "002", "n": null}\n')
    assert _read("jsonl", p) == [{"code": "001", "n": 1, "day": dt.date(2024, 1, 2)},
                                 {"code": "002", "n": None, "day": None}]
    for body, match in [(b'{"code": "a", "n": NaN}\n', "NaN"), (b'{"code": "a", "code": "b"}\n', "appears twice"),
                        (b'{"code": "a", "x": 1}\n', r"undeclared key\(s\) \['x'\]"), (b'[1, 2]\n', "JSON object"),
                        (b'{"code": 7}\n', "codes must be sent as text"), (b'{"code": "a", "n": "1,234"}\n', "'n'"),
                        (b'{"code": "a\x00"}\n', "NUL byte"), (b'{"code": "\xff"}\n', "not valid utf-8")]:
        p.write_bytes(body)
        with pytest.raises(SourceError, match=match):
            _read("jsonl", p)


OHLC = [ColumnSpec("symbol", "string", nullable=False), ColumnSpec("ts", "date", nullable=False),
        ColumnSpec("open", "float64"), ColumnSpec("high", "float64"), ColumnSpec("low", "float64"),
        ColumnSpec("close", "float64"), ColumnSpec("volume", "int64")]


def _bars(tmp_path: Path, rows: list[str]) -> Path:
    p = tmp_path / "bars.csv"
    p.write_text("symbol,ts,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    return p


def test_ohlc_invariants_hold_across_batches(tmp_path: Path) -> None:
    good = ["A,2024-01-01,10,12,9,11,100", "B,2024-01-01,5,5,5,5,0", "A,2024-01-02,11,11.5,10,10.5,50"]
    assert len(_read("ohlc", _bars(tmp_path, good), OHLC)) == 3
    cases = {"A,2024-01-03,10,9,8,8.5,1": "open outside", "A,2024-01-03,10,12,11,11.5,1": "open outside",
             "A,2024-01-03,10,12,9,13,1": "close outside", "A,2024-01-03,10,12,9,11,-1": "volume < 0",
             "A,2024-01-02,10,12,9,11,1": "not strictly increasing"}
    for bad, match in cases.items():
        with pytest.raises(SchemaError, match=match) as info:
            _read("ohlc", _bars(tmp_path, [*good, bad]), OHLC)
        assert info.value.violations[0].rows == (4,)
    # out of order across batches (one row per batch)
    rows = ["A,2024-01-02,1,1,1,1,1", "A,2024-01-01,1,1,1,1,1"]
    with pytest.raises(SchemaError, match="strictly increasing"):
        _read("ohlc", _bars(tmp_path, rows), OHLC, {"via_options": {"block_size": 2 << 20, "max_field_bytes": 1 << 20}})


def test_ohlc_needs_its_columns_declared() -> None:
    with pytest.raises(ConfigError, match=r"does not declare column\(s\) \['volume'\]"):
        get_source("ohlc").open("x.csv", OHLC[:-1])
    with pytest.raises(ConfigError, match="via must be one of"):
        get_source("ohlc").open("x.csv", OHLC, {"via": "sql"})


def test_row_quarantine_mode_sets_bad_rows_aside_with_reasons(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("code,n,day\na,1,2024-01-01\nb,1;2,2024-01-02\n,3,2024-01-03\nd,4,2024-02-30\ne,5,\n")
    with get_source("csv").open(p, SPECS, bad_rows="quarantine") as s:
        rows = [r for b in s for r in b.to_pylist()]
        rejects = s.rejects
    assert [r["code"] for r in rows] == ["a", "e"]
    assert rejects.count == 3 and [r.row for r in rejects.rows] == [2, 3, 4]
    assert "'n'" in rejects.rows[0].reasons[0] and "non-nullable" in rejects.rows[1].reasons[0]
    assert rejects.rows[0].examples == ("1;2",)
    # the same rows in fail mode fail the batch
    with pytest.raises(SchemaError):
        _read("csv", p)
    # OHLC invariants in row mode too
    bars = _bars(tmp_path, ["A,2024-01-01,10,12,9,11,100", "A,2024-01-02,10,9,8,8.5,1", "A,2024-01-03,1,1,1,1,1"])
    with get_source("ohlc").open(bars, OHLC, bad_rows="quarantine") as s:
        kept = [r["ts"].day for b in s for r in b.to_pylist()]
        assert kept == [1, 3] and [r.row for r in s.rejects.rows] == [2]
