"""The SQL connector on SQLite and on a real PostgreSQL (server-side cursor, read-only, lineage)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connectors import ColumnSpec, ConfigError, SchemaError, SourceError, get_source

SPECS = [ColumnSpec("uscc", "string", nullable=False), ColumnSpec("month", "date"), ColumnSpec("vat", "float64")]


def _sqlite(tmp_path: Path, rows: list[tuple]) -> str:
    db = tmp_path / "src.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE pay (uscc TEXT, month TEXT, vat REAL)")
    con.executemany("INSERT INTO pay VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{db}"


def test_sqlite_table_in_batches_with_lineage(tmp_path: Path) -> None:
    url = _sqlite(tmp_path, [(f"{i:018d}", "2024-01-01", i * 1.5) for i in range(2500)])
    with get_source("sql").open({"url": url, "table": "pay"}, SPECS, {"batch_size": 1000}) as stream:
        sizes = [b.num_rows for b in stream]
        d = stream.describe()
    assert sizes == [1000, 1000, 500]
    assert d["connector"] == "sql" and d["rows"] == 2500 and d["complete"]
    assert d["query"] == 'SELECT "uscc", "month", "vat" FROM "pay"' and len(d["query_sha256"]) == 64


def test_numbers_in_a_code_column_and_undeclared_columns_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE pay (uscc INTEGER, month TEXT, vat REAL, extra TEXT)")
    con.execute("INSERT INTO pay VALUES (123, '2024-01-01', 1.0, 'x')")
    con.commit()
    url = f"sqlite:///{db}"
    with pytest.raises(SourceError, match=r"undeclared column\(s\) \['extra'\]"):
        get_source("sql").open({"url": url, "query": "SELECT * FROM pay"}, SPECS)
    with pytest.raises(SchemaError, match="codes must be sent as text"), \
            get_source("sql").open({"url": url, "query": "SELECT uscc, month, vat FROM pay"}, SPECS) as s:
        list(s)


def test_bad_targets_are_config_errors_and_driver_errors_name_no_data(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="exactly one of"):
        get_source("sql").open({"url": "sqlite://", "query": "SELECT 1", "table": "t"}, SPECS)
    with pytest.raises(ConfigError, match="one statement"):
        get_source("sql").open({"url": "sqlite://", "query": "SELECT 1; DROP TABLE t"}, SPECS)
    with pytest.raises(SourceError, match=r"the source query failed \(OperationalError\)"):
        get_source("sql").open({"url": _sqlite(tmp_path, []), "query": "SELECT nope FROM pay"}, SPECS)


def test_postgres_server_side_cursor_and_read_only(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    with engine.begin() as con:
        con.execute(text("DROP TABLE IF EXISTS pay"))
        con.execute(text("CREATE SEQUENCE IF NOT EXISTS s"))
        con.execute(text("CREATE TABLE pay (uscc text, month date, vat numeric(12,2))"))
        con.execute(text("INSERT INTO pay SELECT lpad(g::text, 18, '0'), DATE '2024-01-01' + g % 28, g * 0.5 "
                         "FROM generate_series(1, 5000) g"))
    engine.dispose()
    with get_source("sql").open({"url": postgres_url.replace("twh@", "twh:secret@"), "table": "pay"}, SPECS,
                                {"batch_size": 2000}) as stream:
        batches = list(stream)
        d = stream.describe()
    assert [b.num_rows for b in batches] == [2000, 2000, 1000]
    assert batches[0].column("uscc")[0].as_py() == "000000000000000001"  # leading zeros kept
    assert batches[0].column("vat")[0].as_py() == 0.5  # numeric (Decimal) -> float64, exactly
    assert "secret" not in d["url"] and d["dialect"] == "postgresql"
    # the query runs read-only: a manifest cannot write to the source (nextval writes)
    with pytest.raises(SourceError, match="ReadOnlySqlTransaction"), get_source("sql").open(
            {"url": postgres_url, "query": "SELECT uscc, month, vat FROM pay WHERE nextval('s') > 0"}, SPECS) as st:
        list(st)
