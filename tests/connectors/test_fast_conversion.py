"""The conversion's fast path (no regex per value) accepts exactly what the declared formats accept.

For every generated column, :func:`connectors.schema.convert_text` must give the same verdict and
the same values whether or not the shortcut is taken: the shortcut may only step aside, never
accept a value the format's pattern refuses (a leading zero in an integer, "inf", "1e", "2024-1-5").
"""

from __future__ import annotations

import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors import schema
from connectors.schema import ColumnSpec, convert_text

_ALPHABET = "0123456789+-.eE inafINAFty_,/:xT"
_PATTERNS = {"int64": schema._INT_RE, "int32": schema._INT_RE, "float64": schema._FLOAT_RE, "date": schema._DATE_RE}
_SAMPLES = {
    "int64": ["0", "7", "-12", "+12", "007", "-0", "+", "-", "1.0", "١٢", "１２", "9223372036854775808", " 1",
              "0x10", "0X1F", "-0x1", "1e3"],  # Arrow parses hex: the canonical-form shortcut must not
    "int32": ["2147483647", "2147483648", "-2147483648", "00", "+0"],
    "float64": ["1", "1.", ".5", "+.5", "-1e5", "1E+05", "1e", "e5", "inf", "-Infinity", "nan", "1e400", "0x10",
                "1_0", "1,5", " 1", "1 ", "..5", "1.2.3"],
    "date": ["2024-02-29", "2023-02-29", "2024-1-05", "2024/01/05", "20240105", "2024-01-05T00:00", "0000-01-01",
             "9999-12-31", "2024-13-01", " 2024-01-0"],
}


def _slow(values: list[str], type_: str):  # noqa: ANN202
    with pytest.MonkeyPatch.context() as m:
        m.setattr(schema, "_fast_number_or_date", lambda *_a: None)
        return convert_text(pa.array(values, pa.string()), ColumnSpec("c", type_, True))


def _same(values: list[str], type_: str) -> None:
    fast_values, fast_problems = convert_text(pa.array(values, pa.string()), ColumnSpec("c", type_, True))
    slow_values, slow_problems = _slow(values, type_)
    assert [p.message for p in fast_problems] == [p.message for p in slow_problems], values
    if not slow_problems:
        assert fast_values.equals(slow_values), values
    # and the regex is the authority: whatever converted cleanly matches the format's pattern
    if not fast_problems:
        nonempty = [v for v in values if v]
        assert all(re.fullmatch(_PATTERNS[type_].strip("^$"), v) for v in nonempty), values


@pytest.mark.parametrize("type_", sorted(_SAMPLES))
def test_each_tricky_value_alone_and_all_together(type_: str) -> None:
    for v in _SAMPLES[type_]:
        _same([v], type_)
        _same(["1" if type_ != "date" else "2024-01-05", v], type_)
    _same(_SAMPLES[type_], type_)


@settings(max_examples=300, deadline=None)
@given(type_=st.sampled_from(sorted(_PATTERNS)), values=st.lists(st.text(_ALPHABET, max_size=12), min_size=1,
                                                                     max_size=6))
def test_generated_columns(type_: str, values: list[str]) -> None:
    _same(values, type_)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(-10**12, 10**12).map(str), st.floats(allow_nan=False, allow_infinity=False)
                          .map(repr)), min_size=1, max_size=8))
def test_generated_valid_numbers_take_the_fast_path(values: list[str]) -> None:
    _same(values, "float64")
    got, problems = convert_text(pa.array(values, pa.string()), ColumnSpec("c", "float64", True))
    if not problems:
        assert pc.all(pc.equal(got, pa.array([float(v) for v in values]))).as_py()
