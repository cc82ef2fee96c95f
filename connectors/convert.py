"""One conversion path for every connector: raw rows -> the declared schema, whole batch or row by row.

A connector hands :func:`declared_batch` a function that converts rows ``[lo, hi)`` of its raw
batch (text through :func:`connectors.schema.convert_text`, typed values through
:func:`connectors.schema.cast_column`, Python values through :func:`python_column`).

* ``bad_rows="fail"`` (the default): any violation raises :class:`SchemaError` for the batch.
* ``bad_rows="quarantine"`` (a steward's opt-in): the failing rows are found by bisection (the
  vectorised conversion runs on halves until single rows fail), set aside in ``rejects`` with
  their row numbers and reasons, and the good rows are converted and returned.

Python values (JSON lines, spreadsheets, SQL drivers, HTTP APIs) are mapped to text and then
converted with the CSV rules, so "declared, not inferred" means the same everywhere; a number in
a ``string`` column is refused (a code like ``00123`` that became the number 123 lost its zeros).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from .base import RejectedRow, Rejects
from .errors import SchemaError, SchemaViolation, truncate_example
from .schema import ColumnSpec, convert_text

#: converts raw rows [lo, hi) -> (arrays in declared order, violations); row numbers already offset
SliceConverter = Callable[[int, int], tuple[list[pa.Array], list[SchemaViolation]]]
#: extra row checks on a converted batch (e.g. OHLC invariants): -> {position: reason}
RowCheck = Callable[[pa.RecordBatch, int], dict[int, str]]


def _bad_positions(n: int, ok: Callable[[int, int], bool], limit: int) -> list[int]:
    out: list[int] = []

    def walk(lo: int, hi: int) -> None:
        if lo >= hi or len(out) >= limit or ok(lo, hi):
            return
        if hi - lo == 1:
            out.append(lo)
            return
        mid = (lo + hi) // 2
        walk(lo, mid)
        walk(mid, hi)

    walk(0, n)
    return out


def declared_batch(n_rows: int, convert: SliceConverter, schema: pa.Schema, *, row_offset: int,
                   bad_rows: str = "fail", rejects: Rejects | None = None,
                   check: RowCheck | None = None) -> pa.RecordBatch:
    """Convert ``n_rows`` raw rows into one batch of ``schema`` (see the module docstring).

    ``check`` runs once on the converted rows and returns {position: reason} of rows breaking a
    rule the types cannot express (its reasons carry no values)."""
    quarantine = bad_rows == "quarantine" and rejects is not None
    arrays, violations = convert(0, n_rows)
    bad: dict[int, list[SchemaViolation] | str] = {}
    if not violations:
        batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
        positions: Sequence[int] = range(n_rows)  # (a range: no list of every row number per batch)
    elif not quarantine:
        raise SchemaError(violations, rows_checked=row_offset + n_rows)
    else:
        for p in _bad_positions(n_rows, lambda lo, hi: not convert(lo, hi)[1], limit=n_rows):
            bad[p] = convert(p, p + 1)[1]
        kept: list[int] = []
        parts, start = [], 0
        for p in [*sorted(bad), n_rows]:
            if p > start:
                parts.append(pa.RecordBatch.from_arrays(convert(start, p)[0], schema=schema))
                kept.extend(range(start, p))
            start = p + 1
        table = pa.Table.from_batches(parts, schema=schema).combine_chunks()
        batch = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=schema)
        positions = kept
    broken = check(batch, row_offset) if (check is not None and batch.num_rows) else {}
    if broken and not quarantine:
        pos = sorted(broken)
        rows = tuple(row_offset + positions[i] + 1 for i in pos[:5])
        more = f" and {len(pos) - 1} more" if len(pos) > 1 else ""
        raise SchemaError([SchemaViolation(check="invariant", count=len(pos), rows=rows,
                                           message=f"{broken[pos[0]]} (data row {rows[0]}{more})")],
                          rows_checked=row_offset + n_rows)
    for i, reason in broken.items():
        bad[positions[i]] = reason
    if not bad:
        return batch
    assert rejects is not None
    for p in sorted(bad):
        why = bad[p]
        if isinstance(why, str):
            rejects.add(RejectedRow(row=row_offset + p + 1, reasons=(why,)))
        else:
            rejects.add(RejectedRow(row=row_offset + p + 1, reasons=tuple(v.message for v in why),
                                    examples=tuple(e for v in why for e in v.examples)[:5]))
    if not broken:
        return batch
    return batch.filter(pa.array([positions[i] not in bad for i in range(batch.num_rows)]))


# --- Python values ------------------------------------------------------------------------------

_NOT_TEXT = object()


def _as_text(value: Any, spec: ColumnSpec) -> Any:
    """A Python value as the text the declared-type rules read; ``_NOT_TEXT`` if it is refused."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if spec.type == "string":
        return _NOT_TEXT  # numbers in a code column have lost their leading zeros: refuse
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)  # 'nan'/'inf' fail the float rule
    if isinstance(value, _dt.datetime):
        if spec.type == "date" and value.time() == _dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()  # spreadsheets store dates as midnight datetimes
        return value.isoformat()
    if isinstance(value, _dt.date):
        return value.isoformat()
    return _NOT_TEXT


def python_column(values: Sequence[Any], spec: ColumnSpec, *, row_offset: int, max_field_bytes: int | None = None,
                  assume_timezone: str | None = None) -> tuple[pa.Array, list[SchemaViolation]]:
    """Convert Python values (from JSON, a spreadsheet, a database driver) into the declared type."""
    texts = [_as_text(v, spec) for v in values]
    wrong = [i for i, t in enumerate(texts) if t is _NOT_TEXT]
    if wrong:
        what = type(values[wrong[0]]).__name__
        rows = tuple(row_offset + i + 1 for i in wrong[:5])
        hint = " (codes must be sent as text)" if spec.type == "string" else ""
        return pa.nulls(len(values), spec.arrow_type), [SchemaViolation(
            check="type", column=spec.name, count=len(wrong), rows=rows,
            examples=tuple(truncate_example(json.dumps(values[i], default=str)) for i in wrong[:5]),
            message=f"column {spec.name!r}: {len(wrong)} value(s) of JSON/driver type {what}, declared "
                    f"{spec.type}{hint} (data row {rows[0]})")]
    return convert_text(pa.array(texts, pa.string()), spec, row_offset=row_offset, max_field_bytes=max_field_bytes,
                        assume_timezone=assume_timezone)


def python_rows_converter(columns: Sequence[Sequence[Any]], specs: Sequence[ColumnSpec], *, row_offset: int,
                          max_field_bytes: int | None = None, assume_timezone: str | None = None) -> SliceConverter:
    """A :data:`SliceConverter` over column-major Python values (one list per declared column)."""

    def convert(lo: int, hi: int) -> tuple[list[pa.Array], list[SchemaViolation]]:
        arrays, problems = [], []
        for values, spec in zip(columns, specs, strict=True):
            arr, vs = python_column(values[lo:hi], spec, row_offset=row_offset + lo, max_field_bytes=max_field_bytes,
                                    assume_timezone=assume_timezone)
            arrays.append(arr)
            problems.extend(vs)
        return arrays, problems

    return convert
