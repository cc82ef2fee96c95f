"""The CSV connector: streamed in bounded memory into declared Arrow types.

It follows the :class:`connectors.registry.Source` protocol: ``open(path, specs, options)``
returns a stream of ``pa.RecordBatch`` in the declared schema, whose ``describe()`` gives the
lineage record (connector kind, file SHA-256, size, rows, options).

CSV rules (THREATS.md §7, "landing"):

* the encoding is explicit (``utf-8`` by default, ``gbk``/``gb18030`` transcoded while streaming);
  invalid bytes are refused with the line number and a hint to set ``encoding``;
* a leading UTF-8 byte-order mark is stripped silently — Excel and most Chinese government
  export tools write one; a BOM in a file declared GBK is refused (the file is UTF-8);
* NUL bytes are refused; ragged rows and fields over ``max_field_bytes`` (1 MiB) are refused with
  their data row number; quoted newlines inside fields are values, not row ends;
* the header must hold exactly the declared column names (any order); missing, extra, duplicate
  and empty names are all reported;
* every value is read as text and converted strictly by :mod:`connectors.schema`;
* formula-looking cells (``=``, ``+``, ``-``, ``@``) are kept as text: escaping them is the job of
  whatever writes CSV *out* of the warehouse, not of landing.

The SHA-256 is computed in a first pass (so a caller can check idempotency before reading any
row) and again over the bytes actually parsed; if they differ the file changed while being read
and the stream raises instead of ending, so a consumer that commits only once the stream is
exhausted (as a Delta append does) never commits it.

``open(..., hash_first=False)`` (UTF-8 files) skips the first pass: the only hash is the one over
the bytes parsed, known when the stream ends (``stream.sha256`` is None until then), and the NUL
check runs beside it. For a consumer that can name what it commits only after the last row (the
warehouse stages a load's Parquet parts and commits them under the load id that this hash gives);
it reads the file once instead of twice. A file whose size or times changed between open and end
still fails the stream, and the hash is of exactly what was parsed either way.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import pyarrow as pa
import pyarrow.csv as pa_csv

from .base import (
    FileBatchStream,
    HashingReader,
    MiB,
    Rejects,
    Scan,
    check_bad_rows,
    open_regular,
    options_from,
    positive_int,
    unchanged,
)
from .convert import RowCheck, declared_batch
from .errors import ConfigError, SourceError
from .registry import register_source
from .schema import ColumnSpec, arrow_schema, convert_text

_CHUNK = MiB
#: threads converting a batch's columns (1: in the reader's own thread)
CONVERT_THREADS = 2
#: batches (or slices, in row-quarantine mode's bisection) below this many rows convert serially
PARALLEL_ROWS = 4096
_UTF8_BOM = codecs.BOM_UTF8
#: encodings a CSV may declare (normalised codec name -> pyarrow's name)
ENCODINGS: dict[str, str] = {"utf-8": "utf8", "gbk": "gbk", "gb18030": "gb18030"}


@dataclass(frozen=True)
class CsvOptions:
    encoding: str = "utf-8"
    delimiter: str = ","
    quotechar: str = '"'
    max_field_bytes: int = MiB
    #: bytes of CSV parsed per batch; a row must fit in one block
    block_size: int = 4 * MiB
    #: time zone for timestamp values written without an offset; None refuses them
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        try:
            name = codecs.lookup(str(self.encoding)).name
        except LookupError:
            name = ""
        if name not in ENCODINGS:
            raise ConfigError(f"encoding {str(self.encoding)[:30]!r} is not supported; use one of {sorted(ENCODINGS)}")
        object.__setattr__(self, "encoding", name)
        for opt in ("delimiter", "quotechar"):
            v = getattr(self, opt)
            if not isinstance(v, str) or len(v) != 1 or v in "\r\n":
                raise ConfigError(f"option {opt} must be one character other than a line break")
        if self.delimiter == self.quotechar:
            raise ConfigError("options delimiter and quotechar must differ")
        positive_int("max_field_bytes", self.max_field_bytes)
        positive_int("block_size", self.block_size)
        if self.block_size <= self.max_field_bytes:
            raise ConfigError("option block_size must be larger than max_field_bytes (a row must fit in one block)")
        if self.assume_timezone is not None and not isinstance(self.assume_timezone, str):
            raise ConfigError("option assume_timezone must be a time zone name such as Asia/Shanghai")


# --- file checks -----

def _scan_text_file(f: BinaryIO, encoding: str, *, decode: bool = True) -> Scan:
    """First pass over a text file: hash, size, NUL bytes and (``decode``) decodability.

    With ``decode=False`` (UTF-8 CSV: pyarrow validates UTF-8 while parsing, and
    :func:`locate_encoding_problem` names the line if it fails) this pass is hash + NUL only, at
    the speed of SHA-256; line numbers are counted only once a problem is found."""
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder(encoding)("strict") if decode else None
    size = 0
    first = True
    bom = False
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
        if first:
            bom = chunk.startswith(_UTF8_BOM)
            if bom and encoding != "utf-8":
                raise SourceError(f"the file starts with a UTF-8 byte-order mark but is declared {encoding}: "
                                  "it is probably UTF-8 (remove the encoding option)", check="encoding")
            first = False
        nul = chunk.find(b"\x00")
        if nul >= 0:
            raise _nul_error(f, size + nul)
        if decoder is not None:
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = _line_at(f, size + exc.start)
                raise SourceError(_encoding_message(encoding, line, size + exc.start), check="encoding",
                                  details={"line": line}) from None
        size += len(chunk)
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise SourceError(_encoding_message(encoding, _line_at(f, size), size), check="encoding") from None
    return Scan(sha256=h.hexdigest(), size=size, bom=bom)


def _nul_error(f: BinaryIO, offset: int) -> SourceError:
    line = _line_at(f, offset)
    return SourceError(f"NUL byte at line {line} (byte offset {offset}): not a text file, or a "
                       "UTF-16 export (save it as UTF-8)", check="nul_byte", details={"line": line})


def _find_nul(path: Path) -> SourceError | None:
    """Slow path, after a one-pass read failed: the first NUL byte, by line (what the first pass
    would have reported before anything else)."""
    _, f = open_regular(path)
    with f:
        done = 0
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            at = chunk.find(b"\x00")
            if at >= 0:
                return _nul_error(f, done + at)
            done += len(chunk)
    return None


def _line_at(f: BinaryIO, offset: int) -> int:
    """The 1-based line holding byte ``offset`` (slow path: only once a problem was found)."""
    f.seek(0)
    lines, done = 1, 0
    while done < offset:
        chunk = f.read(min(_CHUNK, offset - done))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        done += len(chunk)
    return lines


def locate_encoding_problem(path: Path, encoding: str) -> SourceError | None:
    """Slow path, after the fast reader saw invalid text: the first undecodable byte, by line."""
    _, f = open_regular(path)
    with f:
        try:
            _scan_text_file(f, encoding)
        except SourceError as exc:
            return exc if exc.check == "encoding" else None
    return None


def _encoding_message(encoding: str, line: int, offset: int) -> str:
    hint = ("; if it was exported by a Chinese-locale tool, set the option encoding: gbk (or gb18030)"
            if encoding == "utf-8" else "; check the declared encoding")
    return f"bytes that are not valid {encoding} at line {line} (byte offset {offset}){hint}"


# --- CSV --------------------------------------------------------------------------------------

_HEADER_BYTES = MiB


def _read_header(f: BinaryIO, opts: CsvOptions) -> list[str]:
    head = f.read(_HEADER_BYTES)
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM):]
    if not head.strip():
        raise SourceError("the file is empty: expected a header row with the declared column names", check="header")
    try:  # strict: the first MiB (the header) is checked here, the rest by the reader
        text = codecs.getincrementaldecoder(opts.encoding)("strict").decode(head)
    except UnicodeDecodeError as exc:
        line = head.count(b"\n", 0, exc.start) + 1
        raise SourceError(_encoding_message(opts.encoding, line, exc.start), check="encoding",
                          details={"line": line}) from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=opts.delimiter, quotechar=opts.quotechar,
                        doublequote=True, strict=True)
    try:
        header = next(reader)
    except (csv.Error, StopIteration):
        raise SourceError("the header row is not valid CSV (or is longer than 1 MiB)", row=0, check="header") from None
    if "\n" not in text and len(head) == _HEADER_BYTES:
        raise SourceError("the header row is longer than 1 MiB", row=0, check="header")
    return header


def check_header(header: Sequence[str], specs: Sequence[ColumnSpec]) -> None:
    """The header must hold exactly the declared names (any order); report every problem at once."""
    declared = [s.name for s in specs]
    problems: list[str] = []
    empty = [i + 1 for i, h in enumerate(header) if h.strip() == ""]
    if empty:
        problems.append(f"empty column name(s) at position(s) {empty}")
    seen: set[str] = set()
    dups = sorted({h for h in header if h in seen or seen.add(h)} - {""})  # type: ignore[func-returns-value]
    if dups:
        problems.append(f"duplicate column name(s) {[d[:40] for d in dups]}")
    missing = [d for d in declared if d not in header]
    if missing:
        problems.append(f"missing declared column(s) {missing}")
    extra = [h for h in dict.fromkeys(header) if h.strip() and h not in declared]
    if extra:
        hints = [h[:40] + (" (has surrounding spaces)" if h.strip() in declared else "") for h in extra]
        problems.append(f"undeclared column(s) {hints}")
    if problems:
        raise SourceError("header does not match the declared columns: " + "; ".join(problems), row=0,
                          check="header", details={"missing": missing, "extra": [h[:40] for h in extra]})


def _locate_csv_problem(path: Path, opts: CsvOptions, ncols: int) -> SourceError | None:
    """Slow path, only after pyarrow failed: find the first bad row with Python's csv module."""
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, opts.block_size * 4))  # module-global; restored below
    try:
        with open(path, encoding=opts.encoding, newline="", errors="replace") as f:
            if opts.encoding == "utf-8" and f.read(1) != "\ufeff":
                f.seek(0)
            reader = csv.reader(f, delimiter=opts.delimiter, quotechar=opts.quotechar, doublequote=True, strict=True)
            row = -1
            try:
                for record in reader:
                    if not record:
                        continue  # blank lines are skipped, as pyarrow does
                    row += 1
                    if row == 0:
                        continue
                    if len(record) != ncols:
                        return SourceError(f"data row {row} has {len(record)} fields; the header has {ncols}",
                                           row=row, check="ragged")
                    for i, value in enumerate(record):
                        if len(value.encode(opts.encoding, errors="replace")) > opts.max_field_bytes:
                            return SourceError(f"data row {row}, field {i + 1}: larger than the "
                                               f"{opts.max_field_bytes}-byte field limit", row=row, check="field_size")
            except csv.Error:
                return SourceError(f"malformed quoting near line {reader.line_num} (after data row {max(row, 0)})",
                                   row=max(row, 0) + 1, check="format")
    finally:
        csv.field_size_limit(old_limit)
    return None


class CsvSource:
    """CSV files, streamed with ``pyarrow.csv.open_csv`` and converted strictly to declared types."""

    kind: ClassVar[str] = "csv"
    #: ``open`` takes ``hash_first=False`` (one pass; see the module's notes)
    one_pass: ClassVar[bool] = True

    def open(self, target: str | Path, specs: Sequence[ColumnSpec],
             options: Mapping[str, Any] | None = None, *, bad_rows: str = "fail",
             row_check: RowCheck | None = None, hash_first: bool = True) -> FileBatchStream:
        """``hash_first=False``: no first pass for a UTF-8 file (see the module's notes); other
        encodings keep it, since it is also their decodability check."""
        opts: CsvOptions = options_from(CsvOptions, options, "csv")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        path, f = open_regular(target)
        one_pass = not hash_first and opts.encoding == "utf-8"
        before = os.fstat(f.fileno())
        try:
            if one_pass:
                scan = Scan(sha256=None, size=before.st_size, bom=f.read(len(_UTF8_BOM)) == _UTF8_BOM)
            else:
                scan = _scan_text_file(f, opts.encoding, decode=opts.encoding != "utf-8")
            f.seek(0)
            try:
                header = _read_header(f, opts)
                check_header(header, specs)
            except SourceError as exc:
                raise ((_find_nul(path) if one_pass else None) or exc) from None
            f.seek(0)
        except BaseException:
            f.close()
            raise
        hashing = HashingReader(f, background=True, watch_nul=one_pass)
        rejects = Rejects()

        def ended(digest: str) -> None:  # the stream's last check, before it reports its end
            if scan.sha256 is not None:
                if digest != scan.sha256:
                    raise SourceError("the file changed while it was being read; load it again", check="file")
                return
            if hashing.first_nul is not None:
                raise _nul_error(f, hashing.first_nul)
            unchanged(f, before, ctime=True)
            stream._settle_hash(digest)

        batches = self._batches(path, hashing, header, specs, schema, opts, bad_rows, rejects, row_check, ended)

        def close() -> None:
            hashing.close()
            f.close()

        stream = FileBatchStream(self.kind, path, schema, scan, opts, batches, close, rejects)
        if one_pass:
            stream._skipped_check = lambda: _find_nul(path)
        stream._progress = lambda: hashing.bytes_read
        return stream

    def _batches(self, path: Path, hashing: HashingReader, header: list[str], specs: Sequence[ColumnSpec],
                 schema: pa.Schema, opts: CsvOptions, bad_rows: str, rejects: Rejects,
                 row_check: RowCheck | None, ended: Callable[[str], None]) -> Iterator[pa.RecordBatch]:
        ragged: list[tuple[int, int]] = []

        def on_invalid_row(row: Any) -> str:
            ragged.append((row.expected_columns, row.actual_columns))
            return "error"

        def fail(exc: Exception) -> SourceError:
            located = (_find_nul(path) or locate_encoding_problem(path, opts.encoding)
                       or _locate_csv_problem(path, opts, len(header)))
            if located is not None:
                return located
            if ragged:
                exp, got = ragged[0]
                return SourceError(f"a row has {got} fields; the header has {exp}", check="ragged")
            if "straddl" in str(exc) or "block size" in str(exc):
                return SourceError(f"a row is larger than the {opts.block_size}-byte block size", check="field_size")
            # pyarrow's message quotes raw data: keep only its class
            return SourceError(f"the file could not be parsed as CSV (delimiter {opts.delimiter!r}, quotechar "
                               f"{opts.quotechar!r}, encoding {opts.encoding}): {type(exc).__name__}", check="format")

        read_options = pa_csv.ReadOptions(column_names=header, skip_rows=1, block_size=opts.block_size,
                                          encoding=ENCODINGS[opts.encoding])
        parse_options = pa_csv.ParseOptions(delimiter=opts.delimiter, quote_char=opts.quotechar, double_quote=True,
                                            escape_char=False, newlines_in_values=True, ignore_empty_lines=True,
                                            invalid_row_handler=on_invalid_row)
        convert_options = pa_csv.ConvertOptions(column_types={h: pa.string() for h in header}, null_values=[],
                                                strings_can_be_null=False, quoted_strings_can_be_null=False,
                                                check_utf8=True)
        try:
            reader = pa_csv.open_csv(hashing, read_options=read_options, parse_options=parse_options,
                                     convert_options=convert_options)
        except pa.ArrowInvalid as exc:
            if "Could not skip initial" in str(exc):  # header only, without a final newline
                reader = None
            else:
                raise fail(exc) from None
        offset = 0
        # the columns of a batch convert in parallel (Arrow's kernels release the GIL): the reader's
        # chain (parse, convert, contract) is what the Parquet writer waits on
        pool = ThreadPoolExecutor(CONVERT_THREADS, thread_name_prefix="twh-csv-convert") if CONVERT_THREADS > 1 else None
        try:
            while reader is not None:
                try:
                    raw = reader.read_next_batch()
                except StopIteration:
                    break
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise fail(exc) from None

                def convert(lo: int, hi: int, raw: pa.RecordBatch = raw, base: int = offset) -> tuple[list, list]:
                    def one(spec: ColumnSpec) -> tuple[pa.Array, list]:
                        return convert_text(raw.column(spec.name).slice(lo, hi - lo), spec, row_offset=base + lo,
                                            max_field_bytes=opts.max_field_bytes,
                                            assume_timezone=opts.assume_timezone)

                    parallel = pool is not None and hi - lo >= PARALLEL_ROWS
                    done = list(pool.map(one, specs)) if parallel else [one(s) for s in specs]  # type: ignore[union-attr]
                    return [a for a, _ in done], [v for _, vs in done for v in vs]

                batch = declared_batch(raw.num_rows, convert, schema, row_offset=offset, bad_rows=bad_rows,
                                       rejects=rejects, check=row_check)
                offset += raw.num_rows
                yield batch
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        ended(hashing.drain())


register_source("csv", CsvSource)
