"""Declared types and strict conversion: what each type accepts and refuses, and how it says so."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors import COLUMN_TYPES, ColumnSpec, ConfigError, arrow_schema, cast_column, convert_text


def conv(values: list[str], type_: str, nullable: bool = True, **kw):
    return convert_text(pa.array(values, pa.string()), ColumnSpec("c", type_, nullable), **kw)


def ok(values: list[str], type_: str, **kw) -> list:
    arr, problems = conv(values, type_, **kw)
    assert problems == [], [p.message for p in problems]
    assert arr.type == COLUMN_TYPES[type_]
    return arr.to_pylist()


def bad(values: list[str], type_: str, nullable: bool = True, **kw):
    _, problems = conv(values, type_, nullable, **kw)
    assert problems, f"{values} should be refused as {type_}"
    return problems


def test_column_types_are_exactly_the_declared_set() -> None:
    assert COLUMN_TYPES == {
        "string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(),
        "bool": pa.bool_(), "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC"),
    }


def test_column_spec_refuses_unknown_type_and_bad_names() -> None:
    with pytest.raises(ConfigError, match="unknown type 'decimal'"):
        ColumnSpec("x", "decimal")
    with pytest.raises(ConfigError):
        ColumnSpec("", "string")
    with pytest.raises(ConfigError):
        ColumnSpec("a\nb", "string")


def test_arrow_schema_keeps_order_and_nullability_and_refuses_duplicates() -> None:
    schema = arrow_schema([ColumnSpec("b", "int64", False), ColumnSpec("a", "string")])
    assert schema.names == ["b", "a"]
    assert not schema.field("b").nullable and schema.field("a").nullable
    with pytest.raises(ConfigError, match="declared twice"):
        arrow_schema([ColumnSpec("a", "int64"), ColumnSpec("a", "string")])
    with pytest.raises(ConfigError):
        arrow_schema([])


def test_strings_are_kept_byte_for_byte_leading_zeros_and_formulas_included() -> None:
    values = ["007", "0", " padded ", "=SUM(A1:A9)", "+8613800000000", "-1", "@cmd", "中文"]
    assert ok(values, "string") == values


@pytest.mark.parametrize("text", ["1,234", " 12", "12 ", "NaN", "inf", "01", "1.0", "1e3", "", "0x10", "１２"])
def test_int_refuses_anything_but_plain_integers(text: str) -> None:
    problems = bad([text], "int64", nullable=False)
    assert problems[0].column == "c" and problems[0].rows == (1,)


def test_int_accepts_signed_plain_integers_and_checks_range() -> None:
    assert ok(["0", "-0", "+5", "-17", "9223372036854775807"], "int64") == [0, 0, 5, -17, 2**63 - 1]
    assert bad(["9223372036854775808"], "int64")[0].check == "type"
    assert ok(["2147483647"], "int32") == [2**31 - 1]
    problems = bad(["1", "2147483648", "3"], "int32")
    assert problems[0].rows == (2,) and problems[0].count == 1


@pytest.mark.parametrize("text", ["NaN", "nan", "inf", "-Infinity", "1e400", "1,5", "1,234.5", " 1.5", "1.5.1", "--1"])
def test_float_refuses_non_finite_and_formatted_numbers(text: str) -> None:
    bad([text], "float64")


def test_float_accepts_decimal_and_scientific_notation() -> None:
    got = ok(["1.5", "-0.25", ".5", "3.", "1e-05", "2E3", "+7"], "float64")
    assert got == [1.5, -0.25, 0.5, 3.0, 1e-5, 2000.0, 7.0]


def test_bool_date_and_timestamp() -> None:
    assert ok(["true", "FALSE", "1", "0", "True"], "bool") == [True, False, True, False, True]
    bad(["yes"], "bool")
    assert ok(["2023-02-28"], "date") == [dt.date(2023, 2, 28)]
    for text in ["2023-02-30", "2023-2-3", "20230203", "2023/02/03"]:
        bad([text], "date")
    utc = ok(["2023-01-01T08:00:00+08:00", "2023-01-01 00:00:00Z"], "timestamp")
    assert utc[0] == utc[1] == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


def test_naive_timestamps_need_an_explicit_time_zone() -> None:
    problems = bad(["2023-01-01T08:00:00"], "timestamp")
    assert "assume_timezone" in problems[0].message
    got = ok(["2023-01-01T08:00:00", "2023-01-01T00:00:00Z"], "timestamp", assume_timezone="Asia/Shanghai")
    assert got[0] == got[1] == dt.datetime(2023, 1, 1, tzinfo=dt.UTC)


def test_empty_is_null_only_when_nullable() -> None:
    assert ok(["", "5"], "int64") == [None, 5]
    assert ok(["", "x"], "string") == [None, "x"]
    problems = bad(["5", ""], "int64", nullable=False)
    assert problems[0].check == "not_null" and problems[0].rows == (2,)
    assert bad([""], "string", nullable=False)[0].check == "not_null"


def test_violations_give_row_numbers_counts_and_truncated_examples_never_the_raw_value() -> None:
    secret = "SECRET-" + "x" * 100
    values = ["1"] * 10 + [secret] * 7
    problems = bad(values, "int64", row_offset=100)
    p = problems[0]
    assert p.count == 7
    assert p.rows == (111, 112, 113, 114, 115)  # at most 5, offset by the rows before this batch
    assert len(p.examples) == 5 and all(len(e) <= 21 for e in p.examples)
    assert secret not in p.message and "SECRET" not in p.message
    assert "examples" not in p.to_dict() and p.to_dict(include_examples=True)["examples"]


def test_field_size_limit() -> None:
    problems = bad(["short", "y" * 200], "string", max_field_bytes=100)
    assert problems[0].check == "field_size" and problems[0].rows == (2,)


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=20))
def test_int64_round_trips_any_integer(values: list[int]) -> None:
    arr, problems = convert_text(pa.array([str(v) for v in values], pa.string()), ColumnSpec("n", "int64"))
    assert not problems and arr.to_pylist() == values


@given(st.lists(st.text(min_size=1), max_size=20))
def test_strings_round_trip_unchanged(values: list[str]) -> None:
    arr, problems = convert_text(pa.array(values, pa.string()), ColumnSpec("s", "string", nullable=False))
    assert not problems and arr.to_pylist() == values


# --- typed (Parquet) columns ---


def test_cast_column_allows_widening_and_refuses_lossy_casts() -> None:
    arr, problems = cast_column(pa.array([1, 2], pa.int32()), ColumnSpec("n", "int64"))
    assert not problems and arr.type == pa.int64()
    _, problems = cast_column(pa.array([1.0, 1.5]), ColumnSpec("n", "int64"))
    assert problems and problems[0].rows == (2,)
    _, problems = cast_column(pa.array([1, 2**40]), ColumnSpec("n", "int32"))
    assert problems and problems[0].rows == (2,)
    _, problems = cast_column(pa.array([1, 2]), ColumnSpec("s", "string"))
    assert problems and "stored as int64" in problems[0].message  # codes stored as numbers lost their zeros


def test_cast_column_refuses_nan_nulls_and_naive_timestamps() -> None:
    assert cast_column(pa.array([1.0, float("nan")]), ColumnSpec("x", "float64"))[1][0].rows == (2,)
    assert cast_column(pa.array([1.0, None]), ColumnSpec("x", "float64", nullable=False))[1][0].check == "not_null"
    naive = pa.array([dt.datetime(2023, 1, 1, 8)], pa.timestamp("us"))
    assert cast_column(naive, ColumnSpec("t", "timestamp"))[1]
    arr, problems = cast_column(naive, ColumnSpec("t", "timestamp"), assume_timezone="Asia/Shanghai")
    assert not problems and arr.to_pylist() == [dt.datetime(2023, 1, 1, tzinfo=dt.UTC)]
    ns = pa.array([1], pa.timestamp("ns", tz="UTC"))  # 1 ns cannot be kept in microseconds
    assert cast_column(ns, ColumnSpec("t", "timestamp"))[1]


def test_cast_column_text_follows_the_csv_rules() -> None:
    arr, problems = cast_column(pa.array(["1", None], pa.large_string()), ColumnSpec("n", "int64"))
    assert not problems and arr.to_pylist() == [1, None]
    assert cast_column(pa.array(["01"]), ColumnSpec("n", "int64"))[1]
    dict_arr = pa.array(["a", "b", "a"]).dictionary_encode()
    arr, problems = cast_column(dict_arr, ColumnSpec("s", "string"))
    assert not problems and arr.to_pylist() == ["a", "b", "a"]
