"""Connectors: land external data in declared Arrow types, and check it against data contracts.

A leaf library: it knows nothing of the warehouse application (``sandbox``) and never imports it.

* :mod:`connectors.schema` — declared column types (:data:`COLUMN_TYPES`) and strict conversion;
* :mod:`connectors.csv`, :mod:`~connectors.parquet`, :mod:`~connectors.xlsx`, :mod:`~connectors.jsonl`
  — file sources (bounded memory, SHA-256 for lineage); :mod:`connectors.sql` (SQLAlchemy),
  :mod:`connectors.http` (paged JSON APIs, CKAN), :mod:`connectors.ohlc` (price bars);
* :mod:`connectors.convert` — the one conversion path (whole batch, or row-quarantine mode);
* :mod:`connectors.base` — the stream every source returns, rejected rows, file helpers;
* :mod:`connectors.registry` — connector kind -> source (:data:`SOURCES`, :func:`get_source`);
* :mod:`connectors.contracts` — Great Expectations suites -> :class:`ContractReport`;
* :mod:`connectors.errors` — the library's error tree.
"""

from .base import FileBatchStream, RejectedRow, Rejects, SourceStream, file_sha256
from .contracts import Contract, ContractReport, ExpectationOutcome, run_contract, schema_report
from .csv import CsvOptions, CsvSource, check_header
from .errors import ConfigError, ConnectorError, SchemaError, SchemaViolation, SourceError
from .http import HttpOptions, HttpSource
from .jsonl import JsonlOptions, JsonlSource
from .ohlc import OhlcOptions, OhlcSource
from .parquet import ParquetOptions, ParquetSource
from .registry import FILE_KINDS, SOURCES, SUFFIXES, BatchStream, Source, get_source, register_source
from .schema import COLUMN_TYPES, ColumnSpec, arrow_schema, cast_column, convert_text
from .sql import SqlOptions, SqlSource, masked_url
from .xlsx import XlsxOptions, XlsxSource

__all__ = [
    "COLUMN_TYPES",
    "FILE_KINDS",
    "SOURCES",
    "SUFFIXES",
    "HttpOptions",
    "HttpSource",
    "JsonlOptions",
    "JsonlSource",
    "OhlcOptions",
    "OhlcSource",
    "RejectedRow",
    "Rejects",
    "SourceStream",
    "SqlOptions",
    "SqlSource",
    "XlsxOptions",
    "XlsxSource",
    "masked_url",
    "BatchStream",
    "ColumnSpec",
    "ConfigError",
    "ConnectorError",
    "Contract",
    "ContractReport",
    "CsvOptions",
    "CsvSource",
    "ExpectationOutcome",
    "FileBatchStream",
    "ParquetOptions",
    "ParquetSource",
    "SchemaError",
    "SchemaViolation",
    "Source",
    "SourceError",
    "arrow_schema",
    "cast_column",
    "check_header",
    "convert_text",
    "file_sha256",
    "get_source",
    "register_source",
    "run_contract",
    "schema_report",
]
