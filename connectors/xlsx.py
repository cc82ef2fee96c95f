"""The Excel connector: ``.xlsx`` read with openpyxl in read-only (streaming) mode.

* One sheet (option ``sheet``, default the first); the first non-empty row is the header and must
  hold exactly the declared names, like a CSV header.
* Cells are read as stored values, never evaluated: a formula cell (``=SUM(A1:A9)``) or text
  that looks like one is kept as text — a ``string`` column keeps it verbatim (escaping it is the
  job of whatever writes CSV out of the warehouse), a typed column refuses it.
* Values go through the same rules as every connector (:func:`connectors.convert.python_column`):
  numbers in a ``string`` column are refused (a code typed into Excel as a number lost its
  leading zeros); Excel dates become ``date``/``timestamp`` values (timestamps need
  ``assume_timezone``, Excel has no zones).
* Memory is bounded by ``batch_size`` rows; the file is hashed first and checked unchanged after.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

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
from .convert import RowCheck, declared_batch, python_rows_converter
from .csv import check_header
from .errors import ConfigError, SourceError
from .registry import register_source
from .schema import ColumnSpec, arrow_schema


@dataclass(frozen=True)
class XlsxOptions:
    sheet: str | None = None
    batch_size: int = 10_000
    max_field_bytes: int = 1 << 20
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        positive_int("batch_size", self.batch_size)
        positive_int("max_field_bytes", self.max_field_bytes)
        if self.sheet is not None and not isinstance(self.sheet, str):
            raise ConfigError("option sheet must be a sheet name")


def _cell_text(v: Any) -> Any:
    return "" if v is None else v


class XlsxSource:
    kind: ClassVar[str] = "xlsx"

    def open(self, target: str | Path, specs: Sequence[ColumnSpec], options: Mapping[str, Any] | None = None,
             *, bad_rows: str = "fail",
             row_check: RowCheck | None = None) -> FileBatchStream:
        import openpyxl  # imported here: only Excel sources need it

        opts: XlsxOptions = options_from(XlsxOptions, options, "xlsx")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        path, f = open_regular(target)
        try:
            scan, before = hash_and_stat(f)
            try:
                wb = openpyxl.load_workbook(f, read_only=True, data_only=False, keep_links=False)
            except (zipfile.BadZipFile, KeyError, OSError, ValueError):
                raise SourceError(f"{path.name!r} is not a readable .xlsx workbook", check="format") from None
            if opts.sheet is not None and opts.sheet not in wb.sheetnames:
                wb.close()
                raise SourceError(f"the workbook has no sheet {opts.sheet[:40]!r}; it has {wb.sheetnames[:20]}",
                                  check="header")
            ws = wb[opts.sheet] if opts.sheet else wb.worksheets[0]
            rows = ws.iter_rows(values_only=True)
            header: list[str] | None = None
            for r in rows:
                if any(v is not None and str(v).strip() for v in r):
                    header = ["" if v is None else str(v) for v in r]
                    break
            if header is None:
                raise SourceError("the sheet is empty: expected a header row with the declared column names",
                                  check="header")
            while header and header[-1] == "":
                header.pop()  # trailing empty cells of a styled row are not columns
            check_header(header, specs)
        except BaseException:
            f.close()
            raise
        rejects = Rejects()

        def close() -> None:
            wb.close()
            f.close()

        batches = self._batches(rows, header, specs, schema, opts, bad_rows, rejects, row_check, f, before)
        return FileBatchStream(self.kind, path, schema, scan, opts, batches, close, rejects)

    def _batches(self, rows: Iterator[tuple[Any, ...]], header: list[str], specs: Sequence[ColumnSpec],
                 schema: pa.Schema, opts: XlsxOptions, bad_rows: str, rejects: Rejects, row_check: RowCheck | None, f: Any,
                 before: Any) -> Iterator[pa.RecordBatch]:
        index = [header.index(s.name) for s in specs]
        width = len(header)
        offset = 0
        buf: list[tuple[Any, ...]] = []

        def flush() -> pa.RecordBatch:
            columns = [[_cell_text(r[i]) if i < len(r) else "" for r in buf] for i in index]
            return declared_batch(len(buf), python_rows_converter(columns, specs, row_offset=offset,
                                                                  max_field_bytes=opts.max_field_bytes,
                                                                  assume_timezone=opts.assume_timezone),
                                  schema, row_offset=offset, bad_rows=bad_rows, rejects=rejects,
                                   check=row_check)

        for r in rows:
            if not any(v is not None and v != "" for v in r):
                continue  # blank rows are skipped, as in CSV
            if any(v is not None and v != "" for v in r[width:]):
                raise SourceError(f"data row {offset + len(buf) + 1} has values beyond the header's {width} columns",
                                  row=offset + len(buf) + 1, check="ragged")
            buf.append(r)
            if len(buf) >= opts.batch_size:
                batch = flush()
                offset += len(buf)
                buf = []
                yield batch
        if buf:
            batch = flush()
            offset += len(buf)
            yield batch
        unchanged(f, before)


register_source("xlsx", XlsxSource)
