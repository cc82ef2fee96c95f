"""Declared column types and the strict conversions into them.

Types are declared, never inferred: a CSV is read as text and every value is converted here, so
a code with leading zeros declared ``string`` stays ``"00123"`` and ``"01"`` in an ``int64``
column is refused instead of silently becoming 1. What each declared type accepts:

========== ===========================================================================
string     any text; kept byte for byte (no trimming)
int64/32   ``[+-]?(0|[1-9][0-9]*)`` in range — no thousands separators, spaces, leading zeros
float64    decimal or scientific notation — no ``NaN``/``inf``, separators or spaces
bool       ``true``/``false``/``1``/``0`` (any case)
date       ``YYYY-MM-DD``, a real calendar date
timestamp  ISO 8601 with a zone offset (``Z``, ``+08:00``); naive values only with an explicit
           ``assume_timezone`` option. Stored as microseconds, UTC.
========== ===========================================================================

An empty field is null when the column is nullable and an error otherwise.

>>> arrow_schema([ColumnSpec("uscc", "string", nullable=False), ColumnSpec("n", "int64")])
uscc: string not null
n: int64
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .errors import MAX_EXAMPLES, ConfigError, SchemaViolation, truncate_example

#: the declared column types and their Arrow types
COLUMN_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}

_INT_RE = r"^[+-]?(0|[1-9][0-9]*)$"
_FLOAT_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME = r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
_TS_ZONED_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _TIME + r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_TS_NAIVE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}" + _TIME + r"$"
_BOOL_VALUES = {"true": True, "false": False, "1": True, "0": False}

_FORMAT_HINTS = {
    "int64": "an integer without separators, spaces or leading zeros",
    "int32": "an integer without separators, spaces or leading zeros",
    "float64": "a finite decimal number (no NaN/inf, separators or spaces)",
    "bool": "true/false/1/0",
    "date": "a date YYYY-MM-DD",
    "timestamp": "an ISO 8601 timestamp with a zone offset",
}

_NAME_RE = re.compile(r"^[^\x00-\x1f]{1,128}$")


@dataclass(frozen=True)
class ColumnSpec:
    """One declared column: its name, declared type (a key of :data:`COLUMN_TYPES`) and nullability."""

    name: str
    type: str
    nullable: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigError(f"column name {str(self.name)[:40]!r} is empty, too long or has control characters")
        if self.type not in COLUMN_TYPES:
            raise ConfigError(f"column {self.name!r}: unknown type {self.type!r}; use one of {sorted(COLUMN_TYPES)}",
                              details={"column": self.name})

    @property
    def arrow_type(self) -> pa.DataType:
        return COLUMN_TYPES[self.type]

    @property
    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)


def arrow_schema(specs: Sequence[ColumnSpec]) -> pa.Schema:
    """The Arrow schema of declared columns, in declared order; duplicate names are refused."""
    seen: set[str] = set()
    for s in specs:
        if s.name in seen:
            raise ConfigError(f"column {s.name!r} is declared twice", details={"column": s.name})
        seen.add(s.name)
    if not specs:
        raise ConfigError("no columns declared")
    return pa.schema([s.field for s in specs])


# --- strict conversion ------------------------------------------------------------------------


def _indices(mask: pa.Array) -> list[int]:
    """Positions where a boolean mask is true (nulls count as false)."""
    return pc.indices_nonzero(pc.fill_null(mask, False)).to_pylist()


def _all_true(mask: pa.Array) -> bool:
    """No false in a boolean mask (nulls do not count): one reduction, no positions."""
    return pc.all(mask, skip_nulls=True, min_count=0).as_py() is not False


def _violation(check: str, column: str, arr: pa.Array, idx: Sequence[int], row_offset: int, message: str,
               *, count: int | None = None) -> SchemaViolation:
    first = list(idx[:MAX_EXAMPLES])
    examples = tuple(truncate_example(v) for v in arr.take(pa.array(first, pa.int64())).to_pylist()) if first else ()
    n = len(idx) if count is None else count
    rows = tuple(row_offset + i + 1 for i in first)
    where = f" (data row {rows[0]}" + (f" and {n - 1} more)" if n > 1 else ")") if rows else ""
    return SchemaViolation(check=check, column=column, count=n, rows=rows, examples=examples,
                           message=f"column {column!r}: {message}{where}")


def _failing_positions(arr: pa.Array, fn: Callable[[pa.Array], object], limit: int = 1000) -> list[int]:
    """Positions where ``fn`` raises, by bisection: only used after a vectorised cast failed."""
    out: list[int] = []

    def walk(lo: int, hi: int) -> None:
        if len(out) >= limit or lo >= hi:
            return
        try:
            fn(arr.slice(lo, hi - lo))
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError, OverflowError):
            pass
        if hi - lo == 1:
            out.append(lo)
            return
        mid = (lo + hi) // 2
        walk(lo, mid)
        walk(mid, hi)

    walk(0, len(arr))
    return out


def _checked_cast(arr: pa.Array, target: pa.DataType, spec: ColumnSpec, source: pa.Array, row_offset: int,
                  what: str, out: list[SchemaViolation]) -> pa.Array | None:
    """``pc.cast(arr, target, safe=True)``; on failure record which rows failed (never the library's
    message, which quotes the raw value)."""
    try:
        return pc.cast(arr, target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _failing_positions(arr, lambda a: pc.cast(a, target, safe=True))
        out.append(_violation("type", spec.name, source, bad, row_offset, f"{len(bad)} value(s) are not {what}"))
        return None


def _timestamps_from_text(text: pa.Array, spec: ColumnSpec, row_offset: int, assume_timezone: str | None,
                          out: list[SchemaViolation]) -> pa.Array | None:
    target = COLUMN_TYPES["timestamp"]
    zoned = pc.match_substring_regex(text, _TS_ZONED_RE)
    naive = pc.match_substring_regex(text, _TS_NAIVE_RE)
    if assume_timezone is None:
        bad = _indices(pc.and_(pc.is_valid(text), pc.invert(zoned)))
        if bad:
            n_naive = len(_indices(naive))
            hint = (" — values without a zone offset need the option assume_timezone (e.g. Asia/Shanghai)"
                    if n_naive else "")
            out.append(_violation("type", spec.name, text, bad, row_offset,
                                  f"{len(bad)} value(s) are not {_FORMAT_HINTS['timestamp']}{hint}"))
            return None
        return _checked_cast(text, target, spec, text, row_offset, "valid timestamps", out)
    bad = _indices(pc.and_(pc.is_valid(text), pc.invert(pc.or_(zoned, naive))))
    if bad:
        out.append(_violation("type", spec.name, text, bad, row_offset,
                              f"{len(bad)} value(s) are not ISO 8601 timestamps"))
        return None
    zoned_part = pc.if_else(zoned, text, pa.scalar(None, pa.string()))
    naive_part = pc.if_else(naive, text, pa.scalar(None, pa.string()))
    z = _checked_cast(zoned_part, target, spec, text, row_offset, "valid timestamps", out)
    n = _checked_cast(naive_part, pa.timestamp("us"), spec, text, row_offset, "valid timestamps", out)
    if z is None or n is None:
        return None
    try:
        localised = pc.assume_timezone(n, timezone=assume_timezone, ambiguous="raise", nonexistent="raise")
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if "timezone" in str(exc).lower() and "not found" in str(exc).lower():
            raise ConfigError(f"assume_timezone: unknown time zone {assume_timezone!r}") from None
        out.append(SchemaViolation("type", f"column {spec.name!r}: a local time is ambiguous or does not exist in "
                                   f"{assume_timezone}", column=spec.name))
        return None
    return pc.if_else(zoned, z, pc.cast(localised, target))


def convert_text(text: pa.Array, spec: ColumnSpec, *, row_offset: int = 0, max_field_bytes: int | None = None,
                 assume_timezone: str | None = None) -> tuple[pa.Array, list[SchemaViolation]]:
    """Convert one column read as text (no nulls; empty strings) into its declared type.

    Returns the converted array and the violations found; when there are violations the array is
    not usable. ``row_offset`` is the number of data rows before this array (for row numbers).
    """
    out: list[SchemaViolation] = []
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if not pa.types.is_string(text.type):
        text = text.cast(pa.string())
    # The common case (no problem) is decided by one reduction per check; positions are only
    # computed once a check has failed, so a clean column costs few passes and no copies.
    lengths = pc.binary_length(text)
    shortest, longest = (pc.min_max(lengths).values() if len(text) else (None, None))
    if max_field_bytes is not None and longest is not None and longest.as_py() > max_field_bytes:
        big = _indices(pc.greater(lengths, max_field_bytes))
        out.append(_violation("field_size", spec.name, text, big, row_offset,
                              f"{len(big)} field(s) exceed the {max_field_bytes}-byte field limit"))
    has_empty = shortest is not None and shortest.as_py() == 0
    if not spec.nullable and has_empty:
        missing = _indices(pc.equal(lengths, 0))
        out.append(_violation("not_null", spec.name, text, missing, row_offset,
                              f"{len(missing)} empty value(s) in a non-nullable column"))
    if out:
        return text, out
    # empty -> null from here on (only reachable for nullable columns or when there are none)
    if has_empty:
        text = pc.if_else(pc.equal(lengths, 0), pa.scalar(None, pa.string()), text)
    if spec.type == "string":
        return text, out
    if spec.type == "bool":
        lowered = pc.utf8_lower(text)
        ok = pc.is_in(lowered, value_set=pa.array(list(_BOOL_VALUES)))
        bad = _indices(pc.and_(pc.is_valid(text), pc.invert(ok)))
        if bad:
            out.append(_violation("type", spec.name, text, bad, row_offset,
                                  f"{len(bad)} value(s) are not {_FORMAT_HINTS['bool']}"))
            return text, out
        truthy = pc.is_in(lowered, value_set=pa.array([k for k, v in _BOOL_VALUES.items() if v]))
        return pc.if_else(pc.is_valid(text), truthy, pa.scalar(None, pa.bool_())), out
    if spec.type == "timestamp":
        result = _timestamps_from_text(text, spec, row_offset, assume_timezone, out)
        return (result if result is not None else text), out
    fast = _fast_number_or_date(text, spec, lengths, shortest, longest)
    if fast is not None:
        return fast, out
    pattern = {"int64": _INT_RE, "int32": _INT_RE, "float64": _FLOAT_RE, "date": _DATE_RE}[spec.type]
    matched = pc.match_substring_regex(text, pattern)
    bad = [] if _all_true(matched) else _indices(pc.and_(pc.is_valid(text), pc.invert(matched)))
    if bad:
        out.append(_violation("type", spec.name, text, bad, row_offset,
                              f"{len(bad)} value(s) are not {_FORMAT_HINTS[spec.type]}"))
        return text, out
    what = {"int64": "integers in the int64 range", "int32": "integers in the int32 range",
            "float64": "finite numbers", "date": "real calendar dates"}[spec.type]
    numbers = text  # pyarrow's integer parser refuses a leading "+", the declared format allows it
    if spec.type in ("int64", "int32") and not _all_true(pc.invert(pc.starts_with(text, "+"))):
        numbers = pc.replace_substring_regex(text, pattern="^\\+", replacement="")
    result = _checked_cast(numbers, spec.arrow_type, spec, text, row_offset, what, out)
    if result is None:
        return text, out
    if spec.type == "float64":
        _reject_non_finite(result, spec, text, row_offset, out)  # "1e400" parses to inf
    return (result if not out else text), out


def _fast_number_or_date(text: pa.Array, spec: ColumnSpec, lengths: pa.Array, shortest: Any,
                         longest: Any) -> pa.Array | None:
    """The common case — every value valid — decided without a regular expression per value (the
    regex pass cost more than the rest of a column's conversion). Returns the converted column, or
    ``None`` when anything is unusual: then the full path below decides, and reports, exactly as
    before. Each shortcut accepts only what the format's pattern accepts:

    * integers: one optional sign, then ASCII digits, no leading zero (``_INT_RE``, term by term);
    * floats: Arrow's parser takes ``[sign] digits [. digits] [e [sign] digits]`` and the names of
      infinity and NaN; with every parsed value finite, what is left is ``_FLOAT_RE``'s set (a
      property test compares both on generated strings);
    * dates: every value exactly ten bytes and parsed by Arrow as ``YYYY-MM-DD``, a real date."""
    try:
        if spec.type in ("int64", "int32"):
            # Commonest of all: every value already in canonical form (what the integer prints
            # back as: no "+", no leading zero, no "-0"), which _INT_RE accepts. Arrow's parser
            # takes an optional "-", then ASCII digits or "0x"/"0X" and hex digits; of those, a
            # value starting neither with "0" (but "0" itself) nor with "-0" is canonical. So one
            # parse and two prefix tests decide, without printing the integers back to compare.
            # Anything else ("007", "0x10", "+5", "-0") takes the term-by-term check below.
            try:
                ints = pc.cast(text, spec.arrow_type, safe=True)
                zero_led = pc.or_(pc.and_(pc.starts_with(text, "0"), pc.greater(lengths, 1)),
                                  pc.starts_with(text, "-0"))
                if not pc.any(zero_led, skip_nulls=True, min_count=0).as_py():
                    return ints
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            signed = pc.or_(pc.starts_with(text, "+"), pc.starts_with(text, "-"))
            body = pc.if_else(signed, pc.utf8_slice_codeunits(text, 1), text)
            leading_zero = pc.and_(pc.starts_with(body, "0"), pc.greater(pc.binary_length(body), 1))
            if not _all_true(pc.and_(pc.ascii_is_decimal(body), pc.invert(leading_zero))):
                return None
            numbers = pc.if_else(pc.starts_with(text, "+"), body, text)
            return pc.cast(numbers, spec.arrow_type, safe=True)
        if spec.type == "float64":
            values = pc.cast(text, pa.float64(), safe=True)
            return values if _all_true(pc.is_finite(values)) else None
        if spec.type == "date":
            if shortest is None or shortest.as_py() != 10 or longest.as_py() != 10:
                return None
            return pc.cast(text, spec.arrow_type, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None


def _reject_non_finite(values: pa.Array, spec: ColumnSpec, shown: pa.Array, row_offset: int,
                       out: list[SchemaViolation]) -> None:
    finite = pc.is_finite(values)
    bad = [] if _all_true(finite) else _indices(pc.invert(finite))
    if bad:
        out.append(_violation("type", spec.name, shown, bad, row_offset,
                              f"{len(bad)} value(s) are NaN or infinite (or overflow float64)"))


def allowed_source(source: pa.DataType, target: str) -> bool:
    """Which stored Arrow types may be cast (checked, never lossy) into a declared type."""
    t = pa.types
    if target in ("int64", "int32"):
        return t.is_integer(source) or t.is_floating(source)  # 1.0 -> 1; 1.5 or NaN is refused
    if target == "float64":
        return t.is_floating(source) or t.is_integer(source)
    if target == "bool":
        return t.is_boolean(source)
    if target == "date":
        return t.is_date(source)
    if target == "timestamp":
        return t.is_timestamp(source)
    return False  # string: only string sources (handled by the caller)


def cast_column(values: pa.Array, spec: ColumnSpec, *, row_offset: int = 0,
                assume_timezone: str | None = None) -> tuple[pa.Array, list[SchemaViolation]]:
    """Cast a typed column (e.g. from Parquet) strictly into its declared type.

    Text columns go through :func:`convert_text` (so a Parquet string column declared ``int64``
    follows the CSV rules); other casts must be lossless; NaN/inf floats and nulls in a
    non-nullable column are refused.
    """
    out: list[SchemaViolation] = []
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    src = values.type
    is_text = pa.types.is_string(src) or pa.types.is_large_string(src)
    if pa.types.is_null(src):
        values = pa.nulls(len(values), spec.arrow_type)
    elif is_text and spec.type != "string":
        text = values.cast(pa.string())
        # real nulls in a typed file become empty text, then follow the declared nullability
        return convert_text(pc.fill_null(text, ""), spec, row_offset=row_offset, assume_timezone=assume_timezone)
    elif is_text:
        values = values.cast(pa.string())
    elif not allowed_source(src, spec.type):
        return values, [SchemaViolation("type", f"column {spec.name!r} is stored as {src}, declared {spec.type}: "
                                        "not converted (the cast could lose or invent information)", column=spec.name)]
    elif pa.types.is_timestamp(src) and src.tz is None:
        if assume_timezone is None:
            return values, [SchemaViolation("type", f"column {spec.name!r} holds timestamps without a time zone; "
                                            "set the option assume_timezone (e.g. Asia/Shanghai)", column=spec.name)]
        try:
            values = pc.assume_timezone(values, timezone=assume_timezone, ambiguous="raise", nonexistent="raise")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return values, [SchemaViolation("type", f"column {spec.name!r}: a local time is ambiguous or does not "
                                            f"exist in {assume_timezone}", column=spec.name)]
    if values.type != spec.arrow_type:
        cast = _checked_cast(values, spec.arrow_type, spec, values, row_offset,
                             f"losslessly convertible to {spec.type}", out)
        if cast is None:
            return values, out
        values = cast
    if spec.type == "float64":
        _reject_non_finite(pc.fill_null(values, 0.0), spec, values, row_offset, out)
    if not spec.nullable and values.null_count:
        nulls = _indices(pc.is_null(values))
        out.append(_violation("not_null", spec.name, values, nulls, row_offset,
                              f"{len(nulls)} null value(s) in a non-nullable column"))
    return values, out
