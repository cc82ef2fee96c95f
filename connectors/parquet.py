"""The Parquet connector: read in batches and cast strictly (never lossily) to the declared schema.

Text columns declared numeric are read with the CSV text rules. A stored type that cannot be
cast without loss (``int64`` where ``string`` is declared: the codes lost their leading zeros)
is refused before any row is read, as a :class:`SchemaError` with ``check="retyped"``; missing
or undeclared columns as a :class:`SourceError` with ``check="header"``. Both are schema drift.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.parquet as pq

from .base import (
    FileBatchStream,
    Rejects,
    check_bad_rows,
    hash_and_stat,
    open_regular,
    options_from,
    positive_int,
    unchanged,
)
from .convert import RowCheck, declared_batch
from .errors import SchemaError, SchemaViolation, SourceError
from .registry import register_source
from .schema import ColumnSpec, allowed_source, arrow_schema, cast_column


@dataclass(frozen=True)
class ParquetOptions:
    batch_size: int = 65_536
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        positive_int("batch_size", self.batch_size)


# --- Parquet ----------------------------------------------------------------------------------


class ParquetSource:
    """Parquet files, read in batches and cast strictly (never lossily) to the declared schema."""

    kind: ClassVar[str] = "parquet"

    def open(self, target: str | Path, specs: Sequence[ColumnSpec],
             options: Mapping[str, Any] | None = None, *, bad_rows: str = "fail",
             row_check: RowCheck | None = None) -> FileBatchStream:
        opts: ParquetOptions = options_from(ParquetOptions, options, "parquet")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        path, f = open_regular(target)
        try:
            scan, before = hash_and_stat(f)
            try:
                pf = pq.ParquetFile(f)
            except (pa.ArrowInvalid, OSError):
                raise SourceError(f"{path.name!r} is not a readable Parquet file", check="format") from None
            _check_columns(pf.schema_arrow, specs)
        except BaseException:
            f.close()
            raise
        rejects = Rejects()
        batches = self._batches(pf, f, before, specs, schema, opts, bad_rows, rejects, row_check)
        return FileBatchStream(self.kind, path, schema, scan, opts, batches, f.close, rejects)

    def _batches(self, pf: pq.ParquetFile, f: BinaryIO, before: os.stat_result, specs: Sequence[ColumnSpec],
                 schema: pa.Schema, opts: ParquetOptions, bad_rows: str, rejects: Rejects, row_check: RowCheck | None) -> Iterator[pa.RecordBatch]:
        offset = 0
        names = [s.name for s in specs]
        try:
            for raw in pf.iter_batches(batch_size=opts.batch_size, columns=names, use_threads=False):
                def convert(lo: int, hi: int, raw: pa.RecordBatch = raw, base: int = offset) -> tuple[list, list]:
                    arrays, problems = [], []
                    for spec in specs:
                        values, vs = cast_column(raw.column(spec.name).slice(lo, hi - lo), spec, row_offset=base + lo,
                                                 assume_timezone=opts.assume_timezone)
                        arrays.append(values)
                        problems.extend(vs)
                    return arrays, problems

                batch = declared_batch(raw.num_rows, convert, schema, row_offset=offset, bad_rows=bad_rows,
                                       rejects=rejects, check=row_check)
                offset += raw.num_rows
                yield batch
        except (pa.ArrowInvalid, OSError) as exc:
            raise SourceError(f"the Parquet file could not be read ({type(exc).__name__})", check="format") from None
        # Parquet is read out of order, so instead of re-hashing, check the file was not touched
        unchanged(f, before)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        pa.types.is_dictionary(t) and _is_text(t.value_type))


def _check_columns(stored: pa.Schema, specs: Sequence[ColumnSpec]) -> None:
    """Stored columns vs declared: missing, undeclared, duplicate and retyped columns, all at once."""
    names = stored.names
    problems = []
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        problems.append(f"duplicate column name(s) {dups}")
    missing = [s.name for s in specs if s.name not in names]
    if missing:
        problems.append(f"missing declared column(s) {missing}")
    extra = [n for n in names if n not in {s.name for s in specs}]
    if extra:
        problems.append(f"undeclared column(s) {[n[:40] for n in extra]}")
    retyped = {}
    for spec in specs:
        if spec.name in names and not dups:
            t = stored.field(spec.name).type
            if pa.types.is_null(t) or _is_text(t):
                continue  # text follows the CSV rules; all-null columns fit any type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if spec.type == "string" or not allowed_source(t, spec.type):
                retyped[spec.name] = (str(t), spec.type)
    if problems:
        raise SourceError("Parquet columns do not match the declared columns: " + "; ".join(problems),
                          check="header", details={"missing": missing, "extra": extra})
    if retyped:
        raise SchemaError([SchemaViolation(check="retyped", column=c, message=f"column {c!r} is stored as {t}, "
                                           f"declared {d} (not converted: the cast could lose or invent information)")
                           for c, (t, d) in retyped.items()])


register_source("parquet", ParquetSource)
