"""What every connector shares: option parsing, safe file opening, the batch stream, rejected rows.

:class:`SourceStream` is what ``Source.open`` returns: an iterator of Arrow batches in the
declared schema plus ``describe()`` (the lineage record) and, in row-quarantine mode,
:attr:`SourceStream.rejects` (the rows that did not convert, with their row numbers and why).
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from .errors import ConfigError, SourceError

MiB = 1 << 20
_CHUNK = MiB
#: what a source does with a row that does not convert: fail the load, or set it aside
BAD_ROW_MODES = ("fail", "quarantine")
#: rejected rows whose details are kept (all are counted)
MAX_REJECT_DETAILS = 1000


def options_from(cls: type, options: Mapping[str, Any] | None, kind: str) -> Any:
    """Build an options dataclass from a mapping, refusing unknown keys by name."""
    data = dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{kind} options: unknown option(s) {unknown}; known: {sorted(known)}",
                          details={"unknown": unknown})
    try:
        return cls(**data)
    except TypeError as exc:
        raise ConfigError(f"{kind} options: {exc}") from exc


def positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"option {name} must be a positive integer")


def check_bad_rows(mode: str) -> str:
    if mode not in BAD_ROW_MODES:
        raise ConfigError(f"bad_rows must be one of {list(BAD_ROW_MODES)}")
    return mode


# --- files ------------------------------------------------------------------------------------


def open_regular(path: str | Path) -> tuple[Path, BinaryIO]:
    if not isinstance(path, str | Path):
        raise ConfigError("a file connector's target is a file path")
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SourceError(f"source file {p.name!r} does not exist", check="file") from None
    except OSError as exc:
        raise SourceError(f"source file {p.name!r} cannot be opened ({exc.strerror})", check="file") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # FIFOs and devices would block or never end
        os.close(fd)
        raise SourceError(f"source {p.name!r} is not a regular file", check="file")
    os.set_blocking(fd, True)
    return p, os.fdopen(fd, "rb")


def file_sha256(path: str | Path) -> str:
    """The SHA-256 (hex) of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    _, f = open_regular(path)
    with f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Scan:
    #: None while the hash is deferred to the parse (see :class:`HashingReader`'s ``watch_nul``)
    sha256: str | None
    size: int
    bom: bool = False


def hash_and_stat(f: BinaryIO) -> tuple[Scan, os.stat_result]:
    """Hash a whole binary file (first pass) and return its size and stat, then rewind."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(_CHUNK), b""):
        h.update(chunk)
    before = os.fstat(f.fileno())
    f.seek(0)
    return Scan(sha256=h.hexdigest(), size=before.st_size), before


def unchanged(f: BinaryIO, before: os.stat_result, *, ctime: bool = False) -> None:
    """Raise if the open file was modified since ``before`` (sources read out of order); with
    ``ctime`` the change time too (a CSV read in one pass: any write or ``utime`` moves it)."""
    after = os.fstat(f.fileno())
    if ctime and after.st_ctime_ns != before.st_ctime_ns:
        raise SourceError("the file changed while it was being read; load it again", check="file")
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise SourceError("the file changed while it was being read; load it again", check="file")


class HashingReader(io.RawIOBase):
    """A read-only stream that hashes what passes through it (the bytes actually parsed).

    With ``background=True`` the SHA-256 runs in a thread of its own, a few chunks behind the
    reads: the parser gets each chunk as soon as it is read instead of after it is hashed (the
    hash was a fifth of the CSV reader's critical path). The chunks are the very ``bytes``
    objects handed to the parser (immutable), so what is hashed is still exactly what was
    parsed; :meth:`drain` waits for the hasher before it answers."""

    #: chunks read but not yet hashed, at most (bounds the hasher's memory)
    BACKLOG = 4

    def __init__(self, raw: BinaryIO, *, background: bool = False, watch_nul: bool = False) -> None:
        super().__init__()
        self._raw = raw
        self.hash = hashlib.sha256()
        self.bytes_read = 0
        #: with ``watch_nul``: the offset of the first NUL byte that passed, if any (a text source
        #: whose only pass is the parse checks for them here, beside the hash)
        self.first_nul: int | None = None
        self._watch_nul = watch_nul
        self._hashed = 0
        self._queue: queue.Queue[bytes | None] | None = queue.Queue(self.BACKLOG) if background else None
        self._hasher: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if self._queue is None:
            self._update(data)
        elif data:
            with self._lock:
                if self._stopped:  # drained or closed (by another thread): the hash is final
                    raise ValueError("read from a HashingReader after drain() or close()")
                if self._hasher is None:
                    self._hasher = threading.Thread(target=self._hash_queued, name="twh-source-hash", daemon=True)
                    self._hasher.start()
            self._queue.put(data)
        self.bytes_read += len(data)
        return data

    def _hash_queued(self) -> None:
        assert self._queue is not None
        while (chunk := self._queue.get()) is not None:
            self._update(chunk)

    def _update(self, chunk: bytes) -> None:
        self.hash.update(chunk)  # releases the GIL for chunks over 2 KiB
        if self._watch_nul and self.first_nul is None:
            at = chunk.find(b"\x00")
            if at >= 0:
                self.first_nul = self._hashed + at
        self._hashed += len(chunk)

    def _stop_hasher(self) -> None:
        with self._lock:
            self._stopped = True
            hasher, self._hasher = self._hasher, None
        if hasher is not None and self._queue is not None:
            self._queue.put(None)
            hasher.join()

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self) -> str:
        for _chunk in iter(lambda: self.read(_CHUNK), b""):
            pass
        self._stop_hasher()
        return self.hash.hexdigest()

    def close(self) -> None:
        self._stop_hasher()
        super().close()


# --- rejected rows (row-quarantine mode) ------------------------------------------------------


@dataclass(frozen=True)
class RejectedRow:
    #: 1-based data row number in the source
    row: int
    #: why (messages name the column and the check, never the value)
    reasons: tuple[str, ...]
    #: steward-only: truncated failing values
    examples: tuple[str, ...] = ()

    def to_dict(self, *, include_examples: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "reasons": list(self.reasons)}
        if include_examples:
            out["examples"] = list(self.examples)
        return out


class Rejects:
    """Rows a source set aside: all are counted, the first :data:`MAX_REJECT_DETAILS` kept."""

    def __init__(self) -> None:
        self.count = 0
        self.rows: list[RejectedRow] = []

    def add(self, row: RejectedRow) -> None:
        self.count += 1
        if len(self.rows) < MAX_REJECT_DETAILS:
            self.rows.append(row)


# --- the stream returned by open() ------------------------------------------------------------


class SourceStream(Iterator[pa.RecordBatch]):
    """Batches in the declared schema, plus ``describe()`` for lineage. Close it (or use ``with``).

    ``bytes_read`` (when the source knows it) and ``rows_read`` feed progress bars."""

    def __init__(self, kind: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch], *, options: Any = None,
                 lineage: Mapping[str, Any] | None = None, closer: Any = None, rejects: Rejects | None = None,
                 size: int | None = None) -> None:
        self.kind = kind
        self.schema = schema
        self._batches = batches
        self._options = options
        self._lineage = dict(lineage or {})
        self._closer = closer
        self.rejects = rejects or Rejects()
        self.rows_read = 0
        self.size = size
        self.complete = False
        self._progress: Any = None

    def progress(self) -> int | None:
        """Bytes consumed so far, if the source can tell."""
        return self._progress() if self._progress is not None else None

    def __iter__(self) -> SourceStream:
        return self

    def __next__(self) -> pa.RecordBatch:
        try:
            batch = next(self._batches)
        except StopIteration:
            self.complete = True
            self.close()
            raise
        except BaseException:
            self.close()
            raise
        self.rows_read += batch.num_rows
        return batch

    def describe(self) -> dict[str, Any]:
        """Lineage: connector kind, where the data came from, rows read so far, options."""
        opts = asdict(self._options) if is_dataclass(self._options) else dict(self._options or {})
        return {"connector": self.kind, **self._lineage, "rows": self.rows_read,
                "rows_rejected": self.rejects.count, "complete": self.complete, "options": opts}

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileBatchStream(SourceStream):
    """A :class:`SourceStream` over one file: lineage names the file, its SHA-256 and size."""

    def __init__(self, kind: str, path: Path, schema: pa.Schema, scan: Scan, options: Any,
                 batches: Iterator[pa.RecordBatch], closer: Any, rejects: Rejects | None = None) -> None:
        super().__init__(kind, schema, batches, options=options, closer=closer, rejects=rejects, size=scan.size,
                         lineage={"file_name": path.name, "sha256": scan.sha256, "size_bytes": scan.size})
        self.path = path
        self._scan = scan
        self._skipped_check: Any = None

    @property
    def sha256(self) -> str | None:
        """The file's SHA-256; None until the stream ends where the source hashes only what it
        parses (CSV opened with ``hash_first=False``)."""
        return self._scan.sha256

    def skipped_check(self) -> SourceError | None:
        """For a stream read in one pass, after it failed: what the skipped first pass would have
        refused before any row (a NUL byte), found now; None otherwise (slow path)."""
        return self._skipped_check() if self._skipped_check is not None and self._scan.sha256 is None else None

    def _settle_hash(self, sha256: str) -> None:
        """The deferred hash, once the last byte was parsed: lineage names it from then on."""
        self._scan = Scan(sha256=sha256, size=self._scan.size, bom=self._scan.bom)
        self._lineage["sha256"] = sha256
