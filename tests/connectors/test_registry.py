"""The connector registry, the pinned public API, and the leaf-library rule."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import connectors
from connectors import SOURCES, BatchStream, ColumnSpec, ConfigError, CsvSource, ParquetSource, Source, get_source
from connectors.registry import register_source

PACKAGE = Path(connectors.__file__).parent


def test_registry_maps_kinds_to_sources() -> None:
    assert set(SOURCES) == {"csv", "parquet", "xlsx", "jsonl", "sql", "http", "ohlc"}
    assert SOURCES["csv"] is CsvSource and SOURCES["parquet"] is ParquetSource
    for kind in SOURCES:
        src = get_source(kind)
        assert src.kind == kind and isinstance(src, Source)


def test_unknown_kind_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector kind 'orc'.*\['csv', 'http', 'jsonl'"):
        get_source("orc")


def test_register_source_adds_a_kind_but_never_silently_replaces_one() -> None:
    class OrcSource:
        kind = "orc"

        def open(self, target, specs, options=None, *, bad_rows="fail"):  # pragma: no cover - never called
            raise NotImplementedError

    try:
        register_source("orc", OrcSource)
        assert isinstance(get_source("orc"), OrcSource)
        with pytest.raises(ConfigError, match="already registered"):
            register_source("csv", OrcSource)
    finally:
        SOURCES.pop("orc", None)


def test_streams_satisfy_the_batch_stream_protocol(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_text("a\n1\n")
    with get_source("csv").open(p, [ColumnSpec("a", "int64")]) as stream:
        assert isinstance(stream, BatchStream)


def test_public_api_is_pinned() -> None:
    assert sorted(connectors.__all__) == sorted([
        "COLUMN_TYPES", "SOURCES", "BatchStream", "ColumnSpec", "ConfigError", "ConnectorError", "Contract",
        "ContractReport", "CsvOptions", "CsvSource", "ExpectationOutcome", "FileBatchStream", "ParquetOptions",
        "ParquetSource", "SchemaError", "SchemaViolation", "Source", "SourceError", "arrow_schema", "cast_column",
        "check_header", "convert_text", "file_sha256", "get_source", "register_source", "run_contract",
        "schema_report", "FILE_KINDS", "SUFFIXES", "HttpOptions", "HttpSource", "JsonlOptions", "JsonlSource",
        "OhlcOptions", "OhlcSource", "RejectedRow", "Rejects", "SourceStream", "SqlOptions", "SqlSource",
        "XlsxOptions", "XlsxSource", "masked_url",
    ])
    for name in connectors.__all__:
        assert hasattr(connectors, name), name


def test_connectors_never_import_the_application() -> None:
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"sandbox", "policies", "dp"}, f"{path.name} imports {name}"


def test_importing_connectors_loads_neither_the_app_nor_great_expectations() -> None:
    code = ("import sys, connectors; bad = [m for m in sys.modules if m.split('.')[0] in "
            "('sandbox', 'great_expectations')]; print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
