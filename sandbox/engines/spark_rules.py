"""Spark expressions for the declared-schema rules and the common row-level expectations.

Built once per load by :mod:`sandbox.landing.spark`: each rule is a boolean :class:`Check` column
(``bad`` holds on the rows that break it) so that one aggregate pass counts all of them and the
write can re-check them. The patterns are :mod:`connectors.schema`'s, so a value the streaming
path refuses is refused here too (Java and Python agree on these simple regexes).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors import SourceError
from connectors.base import options_from
from connectors.csv import CsvOptions, _read_header, check_header
from connectors.parquet import _check_columns
from connectors.schema import _DATE_RE, _FLOAT_RE, _INT_RE, _TS_ZONED_RE, ColumnSpec

from .spark import functions

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import Column, DataFrame, SparkSession


_SPARK_TYPES = {"string": "string", "int64": "bigint", "int32": "int", "float64": "double", "bool": "boolean",
                "date": "date", "timestamp": "timestamp"}
_CORRUPT = "_twh_corrupt_record"
#: NUL, or the replacement character Java's decoders put where bytes were not valid text
_BAD_TEXT_RE = r"[\x00\x{FFFD}]"
_TYPE_HINT = {"int64": "an integer without separators, spaces or leading zeros in the int64 range",
              "int32": "an integer without separators, spaces or leading zeros in the int32 range",
              "float64": "a finite decimal number (no NaN/inf, separators or spaces)", "bool": "true/false/1/0",
              "date": "a real calendar date YYYY-MM-DD", "timestamp": "an ISO 8601 timestamp with a zone offset"}
_NATIVE = {"expect_column_values_to_not_be_null": {"column"},
           "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
           "expect_column_values_to_be_in_set": {"column", "value_set"}}


@dataclass
class Check:
    """One row-level rule: rows where ``bad`` holds violate it."""

    check: str
    column: str | None
    bad: Column
    shown: Column | None
    message: str


@dataclass
class Frame:
    raw: DataFrame
    typed: dict[str, Column]
    checks: list[Check]


def _text_rules(name: str, text: Column, spec: ColumnSpec, checks: list[Check]) -> Column:
    """Declared-type conversion of a text column (null = empty field); returns the typed value."""
    F = functions(text)  # Connect's or classic's: the session decides

    pattern = {"int64": _INT_RE, "int32": _INT_RE, "float64": _FLOAT_RE, "date": _DATE_RE,
               "timestamp": _TS_ZONED_RE}.get(spec.type)
    if spec.type == "string":
        return text
    if spec.type == "bool":
        lowered = F.lower(text)
        checks.append(Check("type", name, text.isNotNull() & ~lowered.isin("true", "false", "1", "0"), text,
                             f"column {name!r}: value(s) are not {_TYPE_HINT['bool']}"))
        return F.when(text.isNull(), F.lit(None).cast("boolean")).otherwise(lowered.isin("true", "1"))
    number = F.regexp_replace(text, r"^\+", "") if spec.type in ("int64", "int32") else text
    typed = _try_cast(number, spec.type)
    bad = ~text.rlike(pattern) | typed.isNull()
    if spec.type == "float64":
        bad = bad | F.isnan(typed) | (F.abs(typed) == float("inf"))
    checks.append(Check("type", name, text.isNotNull() & F.coalesce(bad, F.lit(True)), text,
                         f"column {name!r}: value(s) are not {_TYPE_HINT[spec.type]}"))
    return typed


def _try_cast(col: Column, spark_type: str) -> Column:
    # Column.try_cast exists from pyspark 4.0; ANSI mode makes a plain cast raise instead
    return col.try_cast(_SPARK_TYPES.get(spark_type, spark_type))


def csv_frame(spark: SparkSession, path: Path, specs: list[ColumnSpec], options: dict[str, Any]) -> Frame:
    F = functions(spark)  # Connect's or classic's: the session decides
    from pyspark.sql import types as T

    opts: CsvOptions = options_from(CsvOptions, options, "csv")
    with open(path, "rb") as f:
        header = _read_header(f, opts)
    check_header(header, specs)
    # the file's own column order, all text; the extra column collects rows Spark cannot split
    schema = T.StructType([T.StructField(h, T.StringType()) for h in header]
                          + [T.StructField(_CORRUPT, T.StringType())])
    raw = (spark.read.schema(schema)
           .option("header", "true").option("enforceSchema", "true")
           .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", _CORRUPT)
           .option("encoding", opts.encoding).option("sep", opts.delimiter)
           .option("quote", opts.quotechar).option("escape", opts.quotechar)  # RFC 4180 doubled quotes
           .option("multiLine", "false").option("maxCharsPerColumn", str(opts.max_field_bytes))
           .csv(str(path)))
    checks = [Check("ragged", None, F.col(_CORRUPT).isNotNull(), None,
                     "row(s) do not have the header's number of fields (or hold a quoted line break)")]
    typed: dict[str, Column] = {}
    for spec in specs:
        c = F.col(f"`{spec.name}`")
        text = F.when(c == "", F.lit(None).cast("string")).otherwise(c)
        checks.append(Check("encoding", spec.name, F.coalesce(c.rlike(_BAD_TEXT_RE), F.lit(False)), None,
                             f"column {spec.name!r}: NUL bytes or bytes that are not valid {opts.encoding}"))
        checks.append(Check("field_size", spec.name, F.coalesce(F.octet_length(c) > opts.max_field_bytes,
                                                                 F.lit(False)), None,
                             f"column {spec.name!r}: field(s) exceed the {opts.max_field_bytes}-byte limit"))
        if not spec.nullable:
            checks.append(Check("not_null", spec.name, text.isNull(), None,
                                 f"column {spec.name!r}: empty value(s) in a non-nullable column"))
        typed[spec.name] = _text_rules(spec.name, text, spec, checks)
    return Frame(raw, typed, checks)


def parquet_frame(spark: SparkSession, path: Path, specs: list[ColumnSpec]) -> Frame:
    import pyarrow.parquet as pq
    F = functions(spark)  # Connect's or classic's: the session decides
    from pyspark.sql import types as T

    try:
        stored = pq.read_schema(path)
    except Exception:
        raise SourceError(f"{path.name!r} is not a readable Parquet file", check="format") from None
    _check_columns(stored, specs)  # missing/undeclared (header) and lossy (retyped) columns: drift
    raw = spark.read.parquet(str(path))
    types = {f.name: f.dataType for f in raw.schema.fields}
    checks: list[Check] = []
    typed: dict[str, Column] = {}
    for spec in specs:
        c = F.col(f"`{spec.name}`")
        source = types[spec.name]
        if isinstance(source, T.StringType) and spec.type != "string":
            text = F.when(c.isNull() | (c == ""), F.lit(None).cast("string")).otherwise(c)
            if not spec.nullable:
                checks.append(Check("not_null", spec.name, text.isNull(), None,
                                     f"column {spec.name!r}: empty value(s) in a non-nullable column"))
            typed[spec.name] = _text_rules(spec.name, text, spec, checks)
            continue
        if isinstance(source, T.TimestampNTZType):
            checks.append(Check("type", spec.name, F.lit(True), None, f"column {spec.name!r} holds timestamps "
                                 "without a time zone; load it on the streaming engine with assume_timezone"))
        value = F.lit(None) if isinstance(source, T.NullType) else c
        cast = _try_cast(value, spec.type)
        bad = value.isNotNull() & cast.isNull()
        if spec.type in ("int64", "int32") and isinstance(source, T.FloatType | T.DoubleType):
            bad = bad | (value.isNotNull() & (F.isnan(value) | (value != F.floor(value))))
        if spec.type == "float64":
            bad = bad | (cast.isNotNull() & (F.isnan(cast) | (F.abs(cast) == float("inf"))))
        checks.append(Check("type", spec.name, F.coalesce(bad, F.lit(True)), value,
                             f"column {spec.name!r}: value(s) not losslessly convertible to {spec.type}"))
        if not spec.nullable:
            checks.append(Check("not_null", spec.name, cast.isNull(), None,
                                 f"column {spec.name!r}: null value(s) in a non-nullable column"))
        typed[spec.name] = cast
    return Frame(raw, typed, checks)


def natively_counted(etype: str, kwargs: dict[str, Any], spec: ColumnSpec) -> bool:
    """Whether :func:`native_unexpected` counts this expectation (else Great Expectations must)."""
    if etype not in _NATIVE or not set(kwargs) <= _NATIVE[etype]:
        return False
    if etype == "expect_column_values_to_not_be_null":
        return True
    if etype == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if spec.type not in ("int64", "int32", "float64") or (lo is None and hi is None) or any(
                v is not None and (isinstance(v, bool) or not isinstance(v, int | float)) for v in (lo, hi)):
            return False
        return all(isinstance(kwargs.get(k, False), bool) for k in ("strict_min", "strict_max"))
    return isinstance(kwargs.get("value_set"), list) and spec.type in ("string", "int64", "int32")


def native_unexpected(etype: str, kwargs: dict[str, Any], typed: Column, spec: ColumnSpec) -> Column | None:
    """The rows a common row-level expectation finds unexpected (as Great Expectations counts
    them: nulls only for not_null), or None when Great Expectations must evaluate it."""
    F = functions(typed)  # Connect's or classic's: the session decides

    if not natively_counted(etype, kwargs, spec):
        return None
    if etype == "expect_column_values_to_not_be_null":
        return typed.isNull()
    if etype == "expect_column_values_to_be_between":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        ok = F.lit(True)
        if lo is not None:
            ok = ok & ((typed > lo) if kwargs.get("strict_min") else (typed >= lo))
        if hi is not None:
            ok = ok & ((typed < hi) if kwargs.get("strict_max") else (typed <= hi))
        return typed.isNotNull() & ~ok
    values = kwargs["value_set"]
    if spec.type == "string":
        members = [v for v in values if isinstance(v, str)]
    else:
        members = [int(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
                   and float(v).is_integer()]
    return typed.isNotNull() & ~typed.isin(members) if members else typed.isNotNull()
