"""The connector registry: a connector kind names a :class:`Source`.

A source turns a target (a file path today; a connection config for ``sql``/``http`` later) and
the declared columns into a stream of Arrow record batches in the declared schema, in bounded
memory. New kinds (``xlsx``, ``jsonl``, ``sql``, ``http``) register here; callers never branch
on the kind.

>>> sorted(SOURCES)
['csv', 'parquet']
>>> get_source("csv").kind
'csv'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from .errors import ConfigError
from .files import CsvSource, ParquetSource
from .schema import ColumnSpec


@runtime_checkable
class BatchStream(Protocol):
    """What ``Source.open`` returns: an iterator of batches that can describe its lineage."""

    schema: pa.Schema
    rows_read: int

    def __iter__(self) -> Iterator[pa.RecordBatch]: ...

    def __next__(self) -> pa.RecordBatch: ...

    def describe(self) -> dict[str, Any]:
        """Lineage: at least ``connector`` and, for files, ``sha256`` and ``size_bytes``.

        Complete (``rows``, ``complete``) once the stream is exhausted."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    kind: str

    def open(self, target: str | Path | Mapping[str, Any], specs: Sequence[ColumnSpec],
             options: Mapping[str, Any] | None = None) -> BatchStream:
        """Check the target against the declared columns and return a stream of batches.

        Raises :class:`connectors.errors.ConfigError` for bad options and
        :class:`connectors.errors.SourceError` (or its :class:`SchemaError`) for bad data —
        up front where the problem is visible at once, otherwise while iterating."""
        ...


#: connector kind -> source class
SOURCES: dict[str, type[Source]] = {"csv": CsvSource, "parquet": ParquetSource}


def get_source(kind: str) -> Source:
    """A fresh source of the given kind; an unknown kind is refused naming the known ones."""
    try:
        cls = SOURCES[kind]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown connector kind {str(kind)[:40]!r}; known: {sorted(SOURCES)}") from None
    return cls()


def register_source(kind: str, cls: type[Source]) -> None:
    """Add a connector kind (refuses to silently replace an existing one)."""
    if kind in SOURCES and SOURCES[kind] is not cls:
        raise ConfigError(f"connector kind {kind!r} is already registered")
    SOURCES[kind] = cls
