"""Engine-neutral pieces of a result: rows streamed in batches, unit lists as numpy slices, and
which literal kinds each column type may be compared with. Both engines (DuckDB, Spark) use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

#: rows fetched per round trip; suppressed rows are counted and dropped as they stream
FETCH_BATCH = 10_000

NUMERIC = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint", "uinteger",
            "ubigint", "uhugeint", "float", "double", "decimal"}
TEMPORAL = {"date", "timestamp", "timestamp with time zone", "timestamp_s", "timestamp_ms", "timestamp_ns"}
#: literal kind -> column type ids it may be compared with without DuckDB casting the column
COMPATIBLE: dict[str, set[str]] = {
    "number": NUMERIC,
    "string": {"varchar", "enum"} | TEMPORAL,  # DuckDB casts the literal, once, not the column
    "temporal": TEMPORAL,
    "boolean": {"boolean"},
    "pattern": {"varchar"},
    # a bucketed (or clamped) column: CAST(x AS DOUBLE) of a string would fail or not by the data
    "numeric": NUMERIC | {"boolean"},
}
EXPECTED = {"number": "numbers", "string": "strings", "temporal": "DATE/TIMESTAMP literals",
             "boolean": "TRUE/FALSE", "pattern": "LIKE patterns", "numeric": "numbers"}


def unit_arrays(columns: Mapping[int, Any]) -> dict[int, list[Any]]:
    """Result column index -> its cells' unit lists as numpy slices of one buffer (an Arrow list
    column each; no Python int per unit)."""
    arrays: dict[int, list[Any]] = {}
    for i, chunked in columns.items():
        column = chunked.combine_chunks()
        offsets, values = column.offsets.to_numpy(), column.values.to_numpy(zero_copy_only=False)
        arrays[i] = [values[offsets[r]:offsets[r + 1]] for r in range(len(column))]
    return arrays


def merge_rows(width: int, plain: Sequence[int], rows: Iterable[Sequence[Any]],
               arrays: Mapping[int, list[Any]]) -> Iterator[list[Any]]:
    """Full result rows: the ``plain`` columns' values from ``rows`` and the unit lists from
    ``arrays``, in the same row order."""
    for r, values in enumerate(rows):
        row: list[Any] = [None] * width
        for i, v in zip(plain, values):
            row[i] = v
        for i, cells in arrays.items():
            row[i] = cells[r]
        yield row
