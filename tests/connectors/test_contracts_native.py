"""The native (Arrow) path of common expectations gives what Great Expectations gives."""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import Contract

BATCH = pa.record_batch({"n": pa.array([1, 5, None, 12, -3, 7]), "x": pa.array([0.5, None, 2.5, 9.0, 1.0, 3.0]),
                         "s": pa.array(["a", "b", None, "zz", "a", "c"])})
SUITES = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "n"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "n", "min_value": 0, "max_value": 10}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "min_value": 1, "strict_min": True}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "max_value": 3.0, "strict_max": True}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": ["a", "b", "c"]}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "n", "value_set": [1, 5, 7]}},
]


@pytest.mark.parametrize("expectation", SUITES, ids=lambda e: e["type"][14:] + "-" + e["kwargs"]["column"])
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
