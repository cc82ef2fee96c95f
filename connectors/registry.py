"""The connector registry: a connector kind names a :class:`Source`.

A source turns a target (a file path for the file kinds; a mapping for ``sql`` and ``http``)
and the declared columns into a stream of Arrow record batches in the declared schema, in
bounded memory. Callers never branch on the kind. Each source module registers its kind here
(:func:`register_source`); this module imports none of them.

=========  ==================================================  ===================================
kind       target                                              module
=========  ==================================================  ===================================
csv        a file (explicit encoding: utf-8, gbk, gb18030)      :mod:`connectors.csv`
parquet    a file                                              :mod:`connectors.parquet`
xlsx       a file (one sheet; formulas kept as text)           :mod:`connectors.xlsx`
jsonl      a file (one JSON object per line)                   :mod:`connectors.jsonl`
sql        ``{url, query | table}`` (any SQLAlchemy URL)        :mod:`connectors.sql`
http       ``{url, resource_id, params}`` (CKAN paging)         :mod:`connectors.http`
ohlc       a file or http target, through option ``via``        :mod:`connectors.ohlc`
=========  ==================================================  ===================================

>>> sorted(SOURCES)
['csv', 'http', 'jsonl', 'ohlc', 'parquet', 'sql', 'xlsx']
>>> sorted(FILE_KINDS)
['csv', 'jsonl', 'parquet', 'xlsx']
>>> get_source("csv").kind
'csv'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from .errors import ConfigError
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
             options: Mapping[str, Any] | None = None, *, bad_rows: str = "fail") -> BatchStream:
        """Check the target against the declared columns and return a stream of batches.

        ``bad_rows="quarantine"`` sets rows that do not convert aside in ``stream.rejects``
        instead of failing the load (see :mod:`connectors.convert`).

        Raises :class:`connectors.errors.ConfigError` for bad options and
        :class:`connectors.errors.SourceError` (or its :class:`SchemaError`) for bad data —
        up front where the problem is visible at once, otherwise while iterating."""
        ...


#: connector kind -> source class; each source module registers its kind (``register_source``) when
#: the package is imported, so this module knows none of them
SOURCES: dict[str, type[Source]] = {}
#: kinds whose target is one local file (hashed for lineage and idempotency)
FILE_KINDS = frozenset({"csv", "parquet", "xlsx", "jsonl"})
#: file suffix -> kind, for callers that are given only a file
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
            ".xlsx": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl"}


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
