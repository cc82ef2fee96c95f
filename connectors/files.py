"""File connectors, kept importable from one place: CSV (:mod:`connectors.csv`), Parquet
(:mod:`connectors.parquet`), Excel (:mod:`connectors.xlsx`) and JSON lines (:mod:`connectors.jsonl`).

The shared pieces (safe opening, hashing, the stream) live in :mod:`connectors.base`."""

from __future__ import annotations

from .base import FileBatchStream, Scan, file_sha256
from .csv import ENCODINGS, CsvOptions, CsvSource, check_header
from .jsonl import JsonlOptions, JsonlSource
from .parquet import ParquetOptions, ParquetSource
from .xlsx import XlsxOptions, XlsxSource

__all__ = ["ENCODINGS", "CsvOptions", "CsvSource", "FileBatchStream", "JsonlOptions", "JsonlSource",
           "ParquetOptions", "ParquetSource", "Scan", "XlsxOptions", "XlsxSource", "check_header", "file_sha256"]
