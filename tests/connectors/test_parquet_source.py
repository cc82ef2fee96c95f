"""Parquet landing: read in batches, cast strictly (never lossily) to the declared schema."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors import ColumnSpec, ConfigError, ParquetSource, SchemaError, SourceError

SPECS = [ColumnSpec("code", "string", nullable=False), ColumnSpec("n", "int64"), ColumnSpec("x", "float64")]


def write(tmp_path: Path, table: pa.Table, name: str = "in.parquet", **kw) -> Path:
    p = tmp_path / name
    pq.write_table(table, p, **kw)
    return p


def read(path: Path, specs=SPECS, **options) -> pa.Table:
    with ParquetSource().open(path, specs, options) as stream:
        return pa.Table.from_batches(list(stream), schema=stream.schema)


def test_reads_in_batches_and_casts_to_the_declared_schema(tmp_path: Path) -> None:
    n = 1000
    t = pa.table({"x": pa.array([0.5] * n, pa.float32()), "code": [f"{i:05d}" for i in range(n)],
                  "n": pa.array(range(n), pa.int32())})
    p = write(tmp_path, t, row_group_size=300)
    with ParquetSource().open(p, SPECS, {"batch_size": 128}) as stream:
        batches = list(stream)
        lineage = stream.describe()
    assert len(batches) > 5 and all(b.schema == stream.schema for b in batches)
    out = pa.Table.from_batches(batches)
    assert out.schema.names == ["code", "n", "x"] and out.num_rows == n
    assert out.column("code").to_pylist()[:2] == ["00000", "00001"]
    assert lineage["connector"] == "parquet" and lineage["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()


def test_missing_extra_and_duplicate_columns_are_named(tmp_path: Path) -> None:
    p = write(tmp_path, pa.table({"code": ["a"], "n": [1], "y": [1.0]}))
    with pytest.raises(SourceError) as info:
        read(p)
    assert "missing declared column(s) ['x']" in info.value.message
    assert "undeclared column(s) ['y']" in info.value.message


def test_lossy_casts_and_bad_values_are_refused_with_rows(tmp_path: Path) -> None:
    p = write(tmp_path, pa.table({"code": ["a", "b", "c"], "n": [1.0, 2.5, 3.0], "x": [1.0, float("inf"), 2.0]}))
    with pytest.raises(SchemaError) as info:
        read(p)
    by_col = {v.column: v for v in info.value.violations}
    assert by_col["n"].rows == (2,) and by_col["x"].rows == (2,)


def test_nulls_in_a_non_nullable_column_and_codes_stored_as_numbers(tmp_path: Path) -> None:
    p = write(tmp_path, pa.table({"code": ["a", None], "n": [1, 2], "x": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match="null"):
        read(p)
    p2 = write(tmp_path, pa.table({"code": [7, 8], "n": [1, 2], "x": [1.0, 2.0]}), "num.parquet")
    with pytest.raises(SchemaError, match="stored as int64"):
        read(p2)


def test_string_columns_declared_numeric_follow_the_csv_rules(tmp_path: Path) -> None:
    p = write(tmp_path, pa.table({"code": ["a", "b"], "n": ["1", "01"], "x": ["1.5", "2"]}))
    with pytest.raises(SchemaError) as info:
        read(p)
    assert [(v.column, v.rows) for v in info.value.violations] == [("n", (2,))]


def test_timestamps_need_a_zone(tmp_path: Path) -> None:
    specs = [ColumnSpec("t", "timestamp")]
    naive = pa.table({"t": pa.array([dt.datetime(2023, 1, 1, 8)], pa.timestamp("ms"))})
    p = write(tmp_path, naive)
    with pytest.raises(SchemaError, match="assume_timezone"):
        read(p, specs)
    out = read(p, specs, assume_timezone="Asia/Shanghai")
    assert out.column("t").to_pylist() == [dt.datetime(2023, 1, 1, tzinfo=dt.UTC)]


def test_not_a_parquet_file_and_bad_options(tmp_path: Path) -> None:
    p = tmp_path / "fake.parquet"
    p.write_text("code,n,x\n")
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        read(p)
    good = write(tmp_path, pa.table({"code": ["a"], "n": [1], "x": [1.0]}))
    with pytest.raises(ConfigError):
        read(good, encoding="gbk")
