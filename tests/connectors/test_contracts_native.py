"""The native (Arrow) path of common expectations gives what Great Expectations gives."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import Contract

BATCH = pa.record_batch({"n": pa.array([1, 5, None, 12, -3, 7]), "x": pa.array([0.5, None, 2.5, 9.0, 1.0, 3.0]),
                         "s": pa.array(["a", "b", None, "zz", "a", "c"]),
                         # lengths are characters, not bytes: 北京市 is 3 long (9 bytes)
                         "t": pa.array(["北京市", "abc", None, "上海", "", "重庆两江新区"])})
SUITES = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "n"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", "min_value": 0, "max_value": 10}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 1, "strict_min": True}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "max_value": 3.0, "strict_max": True}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a", "b", "c"]}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "n", "value_set": [1, 5, 7]}},
    {"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "t", "value": 3}},
    {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "t", "min_value": 1, "max_value": 3}},
    {"type": "expect_column_value_lengths_to_be_between",
     "kwargs": {"column": "t", "min_value": 2, "strict_min": True}},
    {"type": "expect_column_value_lengths_to_be_between",
     "kwargs": {"column": "t", "max_value": 3, "strict_max": True}},
]


@pytest.mark.parametrize("expectation", SUITES, ids=lambda e: f"{e['type'][14:]}-{e['kwargs']['column']}-{len(str(e))}")
def test_native_matches_great_expectations(expectation: dict) -> None:
    c = Contract([expectation], columns=BATCH.schema.names)
    assert c._native  # the native path is taken for Arrow input
    native = c.validate(BATCH, row_offset=10).results[0]
    ge = c.validate(BATCH.to_pandas(), row_offset=10).results[0]  # pandas input: Great Expectations
    assert native.success == ge.success
    assert native.unexpected_count == ge.unexpected_count > 0
    assert native.message == ge.message
    # pandas turns an int column with nulls into floats: compare values, not their spelling
    assert sorted(map(_norm, native.unexpected_examples)) == sorted(map(_norm, ge.unexpected_examples))


def _norm(text: str) -> object:
    if text in ("null", "nan", "None"):
        return "null"
    try:
        return float(text)
    except ValueError:
        return text


def test_the_rest_runs_in_great_expectations_on_only_the_columns_it_names() -> None:
    """A mixed suite: native checks plus one GE-only check, which is handed just its column; the
    outcome is the one the whole suite gives in Great Expectations."""
    suite = [SUITES[0], SUITES[4], {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "s",
                                                                                              "regex": "^[ab]$"}}]
    c = Contract(suite, columns=BATCH.schema.names)
    assert c._native == {0, 1} and c._rest_columns == ["s"]
    mixed = c.validate(BATCH, row_offset=3)
    whole = c.validate(BATCH.to_pandas(), row_offset=3)
    assert [(r.success, r.unexpected_count, r.unexpected_rows, r.message) for r in mixed.results] == \
        [(r.success, r.unexpected_count, r.unexpected_rows, r.message) for r in whole.results]
    assert mixed.results[2].unexpected_count == 2 and mixed.results[2].unexpected_rows == (7, 9)


def test_a_table_level_expectation_gets_the_whole_batch() -> None:
    c = Contract([SUITES[0], {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
                 columns=BATCH.schema.names)
    assert c._rest_columns is None
    assert c.validate(BATCH).results[1].success


def test_lengths_of_non_text_columns_are_left_to_great_expectations() -> None:
    c = Contract([{"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "n", "value": 1}}],
                 columns=BATCH.schema.names)
    native = c.validate(BATCH)
    ge = c.validate(BATCH.to_pandas())
    assert (native.success, native.results[0].unexpected_count) == (ge.success, ge.results[0].unexpected_count)


EDGES = pa.record_batch({"n": pa.array([0, 4, 10, None]), "t": pa.array(["abc", "北京市", None, "xyz"])})


@pytest.mark.parametrize("kwargs", [
    {"min_value": 0, "max_value": 10}, {"min_value": 0, "strict_min": True}, {"max_value": 10, "strict_max": True},
    {"min_value": 1}, {"max_value": 9}, {"min_value": -5, "max_value": 10, "strict_max": False},
])
def test_integer_bounds_decided_by_min_and_max_agree_with_great_expectations_at_the_edges(kwargs: dict) -> None:
    """Integers passing is judged from the column's minimum and maximum: a value on a bound, strict
    or not, and one just past it give Great Expectations' answer."""
    c = Contract([{"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", **kwargs}}])
    native, ge = c.validate(EDGES).results[0], c.validate(EDGES.to_pandas()).results[0]
    assert (native.success, native.unexpected_count, native.message) == (ge.success, ge.unexpected_count, ge.message)


@pytest.mark.parametrize("value", [3, 2, 4])
def test_equal_lengths_decided_by_min_and_max_agree_with_great_expectations(value: int) -> None:
    c = Contract([{"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "t", "value": value}}])
    native, ge = c.validate(EDGES).results[0], c.validate(EDGES.to_pandas()).results[0]
    assert (native.success, native.unexpected_count, native.message) == (ge.success, ge.unexpected_count, ge.message)
    assert native.success is (value == 3)
