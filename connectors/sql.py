"""The SQL connector: any SQLAlchemy URL, read in chunks with a server-side cursor.

Target (from the manifest's ``source:`` block)::

    {"url": "postgresql+psycopg://reader@db/tax", "query": "SELECT uscc, month, vat_paid FROM payments"}
    {"url": "sqlite:////data/tax.db", "table": "payments"}

* ``stream_results`` + ``yield_per``: PostgreSQL uses a named (server-side) cursor, so memory is
  bounded by ``batch_size`` rows whatever the table's size; SQLite steps its cursor lazily.
* The query runs in a read-only transaction where the dialect supports one (PostgreSQL), so a
  manifest cannot write to the source; one statement only.
* The result's column names must be exactly the declared ones; values are converted with the
  common rules (:func:`connectors.convert.python_column`).
* Lineage: the URL with its password masked, the query and its SHA-256. Driver messages can
  quote data, so errors keep only the exception class.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from .base import Rejects, SourceStream, check_bad_rows, options_from, positive_int
from .convert import RowCheck, declared_batch, python_rows_converter
from .csv import check_header
from .errors import ConfigError, SourceError
from .registry import register_source
from .schema import ColumnSpec, arrow_schema


@dataclass(frozen=True)
class SqlOptions:
    batch_size: int = 10_000
    max_field_bytes: int = 1 << 20
    assume_timezone: str | None = None

    def __post_init__(self) -> None:
        positive_int("batch_size", self.batch_size)
        positive_int("max_field_bytes", self.max_field_bytes)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def masked_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is reported by open()
        return "<unparseable URL>"


def sql_target(target: Any, specs: Sequence[ColumnSpec]) -> tuple[str, str]:
    """(url, query) of a target mapping; ``table`` becomes a SELECT of the declared columns."""
    if not isinstance(target, Mapping) or not isinstance(target.get("url"), str):
        raise ConfigError("a sql source needs url: (a SQLAlchemy URL) and query: or table:")
    unknown = sorted(set(target) - {"url", "query", "table"})
    if unknown:
        raise ConfigError(f"sql source: unknown key(s) {unknown}; known: ['query', 'table', 'url']")
    query, table = target.get("query"), target.get("table")
    if (query is None) == (table is None):
        raise ConfigError("a sql source needs exactly one of query: and table:")
    if table is not None:
        if not isinstance(table, str) or not table or "\x00" in table:
            raise ConfigError("sql source: table must be a table name")
        cols = ", ".join(_quote(s.name) for s in specs)
        query = f"SELECT {cols} FROM " + ".".join(_quote(p) for p in table.split("."))
    if not isinstance(query, str) or not query.strip():
        raise ConfigError("sql source: query must be a SELECT statement")
    if ";" in query.strip().rstrip(";"):
        raise ConfigError("sql source: one statement only")
    return target["url"], query.strip().rstrip(";")


class SqlSource:
    kind: ClassVar[str] = "sql"

    def open(self, target: Mapping[str, Any], specs: Sequence[ColumnSpec], options: Mapping[str, Any] | None = None,
             *, bad_rows: str = "fail",
             row_check: RowCheck | None = None) -> SourceStream:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

        opts: SqlOptions = options_from(SqlOptions, options, "sql")
        check_bad_rows(bad_rows)
        schema = arrow_schema(specs)
        url, query = sql_target(target, specs)
        try:
            engine = create_engine(url, poolclass=None)
        except (ArgumentError, NoSuchModuleError, ValueError) as exc:
            raise ConfigError(f"sql source: cannot use the URL {masked_url(url)!r} ({type(exc).__name__})") from None
        conn = result = None
        try:
            conn = engine.connect()
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            result = conn.execute(text(query).execution_options(stream_results=True, yield_per=opts.batch_size))
            check_header([str(k) for k in result.keys()], specs)
        except SQLAlchemyError as exc:
            _close(result, conn, engine)
            raise SourceError(f"the source query failed ({type(getattr(exc, 'orig', None) or exc).__name__})",
                              check="source") from None
        except BaseException:
            _close(result, conn, engine)
            raise
        rejects = Rejects()
        lineage = {"url": masked_url(url), "query": query,
                   "query_sha256": hashlib.sha256(query.encode()).hexdigest(), "dialect": engine.dialect.name}
        return SourceStream(self.kind, schema, self._batches(result, specs, schema, opts, bad_rows, rejects, row_check),
                            options=opts, lineage=lineage, rejects=rejects,
                            closer=lambda: _close(result, conn, engine))

    def _batches(self, result: Any, specs: Sequence[ColumnSpec], schema: pa.Schema, opts: SqlOptions,
                 bad_rows: str, rejects: Rejects, row_check: RowCheck | None) -> Iterator[pa.RecordBatch]:
        from sqlalchemy.exc import SQLAlchemyError

        keys = [str(k) for k in result.keys()]
        index = [keys.index(s.name) for s in specs]
        offset = 0
        try:
            for part in result.partitions(opts.batch_size):
                cols = [[row[i] for row in part] for i in index]
                conv = python_rows_converter(cols, specs, row_offset=offset, max_field_bytes=opts.max_field_bytes,
                                             assume_timezone=opts.assume_timezone)
                batch = declared_batch(len(part), conv, schema, row_offset=offset, bad_rows=bad_rows, rejects=rejects,
                                   check=row_check)
                offset += len(part)
                yield batch
        except SQLAlchemyError as exc:
            raise SourceError(f"reading the source query failed ({type(getattr(exc, 'orig', None) or exc).__name__})",
                              check="source") from None


def _close(result: Any, conn: Any, engine: Any) -> None:
    for thing in (result, conn):
        if thing is not None:
            try:
                thing.close()
            except Exception:  # noqa: BLE001, S110 - closing after a failure: nothing left to do
                pass
    engine.dispose()


register_source("sql", SqlSource)
