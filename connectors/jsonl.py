"""The JSON lines connector: one JSON object per line, UTF-8, streamed in bounded memory.

* Each non-blank line must be a JSON object whose keys are exactly the declared names (a missing
  key is a null; an undeclared key is refused, naming it and the line). ``NaN``/``Infinity``
  literals, duplicate keys and nested objects/arrays are refused.
* Values follow the common rules (:func:`connectors.convert.python_column`): a JSON number in a
  ``string`` column is refused (codes are sent as text); strings in typed columns follow the CSV
  text rules.
* A UTF-8 BOM is stripped; NUL bytes and invalid UTF-8 are refused with the line number.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pyarrow as pa

from .base import (
    FileBatchStream,
    HashingReader,
    Rejects,
    Scan,
    check_bad_rows,
    open_regular,
    options_from,
    positive_int,
)
from .convert import RowCheck, declared_batch, python_rows_converter
from .csv import _scan_text_file
from .errors import SourceError
from .registry import register_source
from .schema import ColumnSpec, arrow_schema


@dataclass(frozen=True)
class JsonlOptions:
    batch_size: int = 10_000
    max_line_bytes: int = 16 << 20
    max_field_bytes: int = 1 << 20
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_line_bytes", "max_field_bytes"):
            positive_int(name, getattr(self, name))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key")
        out[k] = v
    return out


def parse_object(line: bytes | str, where: str) -> dict[str, Any]:
    """One strict JSON object (no NaN/Infinity, no duplicate keys)."""
    try:
        obj = json.loads(line, parse_constant=_no_constants, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        why = "NaN/Infinity are not JSON" if "not JSON" in str(exc) else (
            "a key appears twice" if "duplicate" in str(exc) else "not valid JSON")
        raise SourceError(f"{where}: {why}", check="format") from None
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: expected a JSON object, got {type(obj).__name__}", check="format")
    return obj


def records_to_columns(records: Sequence[Mapping[str, Any]], specs: Sequence[ColumnSpec], *, first_row: int,
                       ignore: frozenset[str] = frozenset()) -> list[list[Any]]:
    """Column-major values of records; undeclared keys (other than ``ignore``) are refused."""
    names = {s.name for s in specs}
    for i, rec in enumerate(records):
        extra = [k for k in rec if k not in names and k not in ignore]
        if extra:
            raise SourceError(f"record {first_row + i} has undeclared key(s) {[str(k)[:40] for k in extra[:5]]}",
                              row=first_row + i, check="header", details={"extra": [str(k)[:40] for k in extra]})
    return [[rec.get(s.name) for rec in records] for s in specs]


class JsonlSource:
    kind: ClassVar[str] = "jsonl"

    def open(self, target: str | Path, specs: Sequence[ColumnSpec], options: Mapping[str, Any] | None = None,
             *, bad_rows: str = "fail",
             row_check: RowCheck | None = None) -> FileBatchStream:
        opts: JsonlOptions = options_from(JsonlOptions, options, "jsonl")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        path, f = open_regular(target)
        try:
            scan = _scan_text_file(f, "utf-8")
            f.seek(0)
        except BaseException:
            f.close()
            raise
        hashing = HashingReader(f)
        rejects = Rejects()
        stream = FileBatchStream(self.kind, path, schema, scan, opts,
                                 self._batches(hashing, specs, schema, scan, opts, bad_rows, rejects, row_check), f.close,
                                 rejects)
        stream._progress = lambda: hashing.bytes_read
        return stream

    def _batches(self, f: HashingReader, specs: Sequence[ColumnSpec], schema: pa.Schema, scan: Scan,
                 opts: JsonlOptions, bad_rows: str, rejects: Rejects, row_check: RowCheck | None) -> Iterator[pa.RecordBatch]:
        reader: BinaryIO = f  # type: ignore[assignment]
        import io

        buffered = io.BufferedReader(reader, 1 << 20)  # type: ignore[arg-type]
        offset = 0
        line_no = 0
        buf: list[dict[str, Any]] = []

        def flush() -> pa.RecordBatch:
            cols = records_to_columns(buf, specs, first_row=offset + 1)
            return declared_batch(len(buf), python_rows_converter(cols, specs, row_offset=offset,
                                                                  max_field_bytes=opts.max_field_bytes,
                                                                  assume_timezone=opts.assume_timezone),
                                  schema, row_offset=offset, bad_rows=bad_rows, rejects=rejects,
                                   check=row_check)

        while True:
            line = buffered.readline(opts.max_line_bytes + 1)
            if not line:
                break
            line_no += 1
            if len(line) > opts.max_line_bytes:
                raise SourceError(f"line {line_no} is longer than {opts.max_line_bytes} bytes", row=line_no,
                                  check="field_size")
            if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            if not line.strip():
                continue
            buf.append(parse_object(line, f"line {line_no}"))
            if len(buf) >= opts.batch_size:
                batch = flush()
                offset += len(buf)
                buf = []
                yield batch
        if buf:
            batch = flush()
            offset += len(buf)
            yield batch
        if f.drain() != scan.sha256:
            raise SourceError("the file changed while it was being read; load it again", check="file")


register_source("jsonl", JsonlSource)
