"""Connectors: land external data in declared Arrow types, and check it against data contracts.

A leaf library: it knows nothing of the warehouse application (``sandbox``) and never imports it.

* :mod:`connectors.schema` — declared column types (:data:`COLUMN_TYPES`) and strict conversion;
* :mod:`connectors.files` — CSV and Parquet sources (bounded memory, SHA-256 for lineage);
* :mod:`connectors.registry` — connector kind -> source (:data:`SOURCES`, :func:`get_source`);
* :mod:`connectors.contracts` — Great Expectations suites -> :class:`ContractReport`;
* :mod:`connectors.errors` — the library's error tree.
"""

from .contracts import Contract, ContractReport, ExpectationOutcome, run_contract, schema_report
from .errors import ConfigError, ConnectorError, SchemaError, SchemaViolation, SourceError
from .files import CsvOptions, CsvSource, FileBatchStream, ParquetOptions, ParquetSource, check_header, file_sha256
from .registry import SOURCES, BatchStream, Source, get_source, register_source
from .schema import COLUMN_TYPES, ColumnSpec, arrow_schema, cast_column, convert_text

__all__ = [
    "COLUMN_TYPES",
    "SOURCES",
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
