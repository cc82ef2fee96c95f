"""Data contracts: Great Expectations suites on batches, one report shape for every failure.

Great Expectations takes seconds to import; every test here shares the one lazily created context.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from connectors import ConfigError, Contract, ContractReport, SchemaError, SourceError, run_contract, schema_report
from connectors.errors import SchemaViolation

BATCH = pa.record_batch({
    "uscc": ["91350100M000100Y43", "bad-code", None, "914403001922038216"],
    "vat": [1.0, -5.0, 3.0, -7.5],
    "industry": ["C", "F", "Z", "C"],
})
SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "uscc", "regex": "^[0-9A-Z]{18}$"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "vat", "min_value": 0}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "industry", "value_set": ["C", "F"]}},
]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract(SUITE, columns=BATCH.schema.names)


def test_outcomes_follow_the_suite_order_with_counts_and_rows(contract: Contract) -> None:
    report = contract.validate(BATCH, row_offset=10)
    assert isinstance(report, ContractReport) and not report.success and report.rows_checked == 4
    assert [o.type for o in report.results] == [e["type"] for e in SUITE]
    not_null, regex, between, in_set = report.results
    assert (not_null.success, not_null.unexpected_count, not_null.unexpected_rows) == (False, 1, (13,))
    assert (regex.unexpected_count, regex.unexpected_rows) == (1, (12,))
    assert (between.unexpected_count, between.unexpected_rows) == (2, (12, 14))
    assert in_set.unexpected_rows == (13,) and in_set.column == "industry"
    assert "2 of 4 row(s) unexpected" in between.message


def test_a_clean_batch_passes(contract: Contract) -> None:
    good = pa.record_batch({"uscc": ["91350100M000100Y43"], "vat": [2.0], "industry": ["F"]})
    report = contract.validate(good)
    assert report.success and all(o.success for o in report.results) and not report.failures


def test_examples_are_steward_only_truncated_and_at_most_five() -> None:
    n = 12
    batch = pa.record_batch({"v": ["x" * 50 + str(i) for i in range(n)]})
    report = run_contract(batch, [{"type": "expect_column_values_to_match_regex",
                                   "kwargs": {"column": "v", "regex": "^y"}}])
    outcome = report.results[0]
    assert outcome.unexpected_count == n
    assert len(outcome.unexpected_examples) == 5 and all(len(e) <= 21 for e in outcome.unexpected_examples)
    plain = report.to_dict()
    assert "unexpected_examples" not in plain["results"][0] and "xxxxxxxx" not in report.to_text()
    assert report.to_dict(include_examples=True)["results"][0]["unexpected_examples"]
    assert "x" * 20 in report.to_text(include_examples=True)


def test_unknown_expectation_type_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match="unknown expectation type 'expect_column_values_to_be_awesome'"):
        Contract([{"type": "expect_column_values_to_be_awesome", "kwargs": {"column": "a"}}])
    with pytest.raises(ConfigError, match="expect_"):
        Contract([{"type": "drop_table", "kwargs": {}}])


def test_bad_kwargs_unknown_columns_and_code_kwargs_are_refused() -> None:
    with pytest.raises(ConfigError, match="expect_column_values_to_be_between: invalid kwargs"):
        Contract([{"type": "expect_column_values_to_be_between", "kwargs": {"column": "vat", "bogus": 1}}])
    with pytest.raises(ConfigError, match=r"unknown column\(s\) \['nope'\]"):
        Contract([{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}}], columns=["a"])
    with pytest.raises(ConfigError, match="row_condition"):
        Contract([{"type": "expect_column_values_to_not_be_null",
                   "kwargs": {"column": "a", "row_condition": "a > 1", "condition_parser": "pandas"}}])
    with pytest.raises(ConfigError, match="unknown key"):
        Contract([{"type": "expect_column_values_to_not_be_null", "kwarg": {"column": "a"}}])


def test_duplicate_expectations_are_reported_for_each_listing() -> None:
    e = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "uscc"}}
    report = run_contract(BATCH, [e, e])
    assert len(report.results) == 2 and report.results[0] == report.results[1]


def test_aggregate_expectations_report_the_observed_value_to_stewards_only() -> None:
    report = run_contract(BATCH, [{"type": "expect_column_mean_to_be_between",
                                   "kwargs": {"column": "vat", "min_value": 100}}])
    outcome = report.results[0]
    assert not outcome.success and outcome.unexpected_examples == ("-2.125",)
    assert "-2.125" not in outcome.message


def test_reports_of_consecutive_batches_merge(contract: Contract) -> None:
    a = contract.validate(BATCH)
    b = contract.validate(BATCH, row_offset=4)
    merged = a.merge(b)
    assert merged.rows_checked == 8 and not merged.success
    assert merged.results[2].unexpected_count == 4 and merged.results[2].unexpected_rows == (2, 4, 6, 8)
    with pytest.raises(ConfigError):
        a.merge(run_contract(BATCH, SUITE[:1]))


def test_schema_report_has_the_same_shape() -> None:
    err = SchemaError([SchemaViolation("type", "column 'n': 2 value(s) are not integers", column="n", count=2,
                                       rows=(3, 9), examples=("1,234", "NaN"))], rows_checked=10)
    report = schema_report(err)
    assert report.kind == "schema" and not report.success and report.rows_checked == 10
    (outcome,) = report.results
    assert (outcome.type, outcome.column, outcome.unexpected_count, outcome.unexpected_rows) == (
        "declared_type", "n", 2, (3, 9))
    assert "1,234" not in report.to_text() and "1,234" in report.to_text(include_examples=True)
    plain = schema_report(SourceError("data row 4 has 2 fields; the header has 3", row=4, check="ragged"))
    assert plain.results[0].type == "declared_ragged" and plain.results[0].unexpected_rows == (4,)
    assert set(plain.to_dict()) == set(report.to_dict())


def test_accepts_pandas_frames_and_pydantic_like_configs() -> None:
    class Exp:  # the manifest's Expectation model has .type and .kwargs
        type = "expect_column_values_to_not_be_null"
        kwargs = {"column": "uscc"}

    report = run_contract(BATCH.to_pandas(), [Exp()])
    assert report.results[0].unexpected_count == 1
