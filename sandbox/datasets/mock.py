"""Mock data: a table with the dataset's exact schema and none of its values.

Generated from the manifest alone (declared types, ``min``/``max`` ranges, ``categories``), never
from the table, so it may leave the warehouse: enterprises download it to develop jobs locally.

* string: a category when declared; otherwise a code ``M`` + 17 digits drawn from a pool that
  is the same for every dataset, so identifiers and join keys of two mock tables join (and
  match an 18-character ``^[0-9A-Z]{18}$`` rule like the USCC);
* int/float: uniform in the declared range (default 0..1000); bool: fair coin;
* date/timestamp: uniform over 2020-01-01..2024-12-31 (timestamps in UTC);
* nullable non-key columns are null about 2% of the time.

Seeded: the same manifest, row count and seed give the same bytes.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from connectors.schema import COLUMN_TYPES

from .manifest import DatasetManifest

MAX_MOCK_ROWS = 1_000_000
_KEY_POOL = 5000
_EPOCH = date(2020, 1, 1)
_DAYS = (date(2024, 12, 31) - _EPOCH).days


def mock_table(manifest: DatasetManifest, rows: int = 1000, seed: int = 0) -> pa.Table:
    if not 0 < rows <= MAX_MOCK_ROWS:
        from ..errors import InvalidInput

        raise InvalidInput(f"rows must be between 1 and {MAX_MOCK_ROWS}", details={"field": "rows"})
    rng = np.random.default_rng(seed)
    arrays, fields = [], []
    for c in manifest.columns:
        t = COLUMN_TYPES[c.type]
        lo = c.min if c.min is not None else 0.0
        hi = c.max if c.max is not None else max(lo + 1000.0, lo)
        if c.type == "string":
            if c.categories:
                values = [c.categories[i] for i in rng.integers(0, len(c.categories), rows)]
            else:
                values = [f"M{k:017d}" for k in rng.integers(0, _KEY_POOL, rows)]
            arr = pa.array(values, pa.string())
        elif c.type in ("int64", "int32"):
            arr = pa.array(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, rows), t)
        elif c.type == "float64":
            arr = pa.array(np.round(rng.uniform(lo, hi, rows), 4), t)
        elif c.type == "bool":
            arr = pa.array(rng.random(rows) < 0.5, t)
        elif c.type == "date":
            arr = pa.array([_EPOCH + timedelta(days=int(d)) for d in rng.integers(0, _DAYS, rows)], t)
        else:
            start = datetime(2020, 1, 1, tzinfo=UTC)
            arr = pa.array([start + timedelta(seconds=int(x)) for x in rng.integers(0, _DAYS * 86400, rows)], t)
        keyish = c.role.value in ("identifier", "join_key")
        if c.nullable and not keyish and rows > 1:
            arr = pa.array(arr.to_pylist(), t, mask=rng.random(rows) < 0.02)
        arrays.append(arr)
        fields.append(pa.field(c.name, t, nullable=c.nullable))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def mock_bytes(manifest: DatasetManifest, rows: int = 1000, seed: int = 0, fmt: str = "csv") -> bytes:
    """The mock table serialised as ``csv`` (header + ISO values) or ``parquet``."""
    table = mock_table(manifest, rows, seed)
    buf = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buf)
    elif fmt == "csv":
        pa_csv.write_csv(table, buf)
    else:
        from ..errors import InvalidInput

        raise InvalidInput("format must be csv or parquet", details={"field": "format"})
    return buf.getvalue()
