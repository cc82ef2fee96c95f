"""delta-rs ↔ delta-spark: each engine reads every version the other wrote, row for row.

Tables written by delta-rs (the warehouse's own writes: append, merge, overwrite, a migration
that adds a column) are read by delta-spark at each version; tables written by delta-spark
(append, MERGE, schema evolution) are read by delta-rs and by the DuckDB gate's snapshot scan.
Protocol features delta-rs or the plain scan cannot read (deletion vectors, column mapping) stay
off on warehouse tables; a table that has them is sent to the Delta reader, never plain-scanned.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sandbox.gate.scan import snapshot_source
from sandbox.tables import storage

#: a SparkSession starts in ~1-2 min on the shared 2-core box under load (the first test pays it)
pytestmark = pytest.mark.timeout(900)

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), ("price", pa.float64()),
                    ("day", pa.date32()), ("ts", pa.timestamp("us", tz="UTC"))])


def _batch(rows: list[tuple], schema: pa.Schema = SCHEMA) -> pa.RecordBatch:
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in schema]
    return pa.record_batch([pa.array(list(c), f.type) for c, f in zip(cols, schema, strict=True)], schema=schema)


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):  # Spark returns naive UTC (session time zone UTC), Arrow aware UTC
        return v.replace(tzinfo=None) if v.tzinfo is None else v.astimezone(UTC).replace(tzinfo=None)
    return v


def _sorted(rows: list[dict[str, Any]]) -> list[tuple]:
    return sorted((tuple(_norm(r[k]) for k in sorted(r)) for r in rows), key=repr)


def _delta_rs(path: Path, version: int) -> list[tuple]:
    return _sorted(DeltaTable(str(path), version=version).to_pyarrow_table().to_pylist())


def _spark(spark, path: Path, version: int) -> list[tuple]:
    df = spark.read.format("delta").option("versionAsOf", version).load(str(path))
    return _sorted([r.asDict() for r in df.collect()])


def _gate(path: Path, version: int) -> list[tuple]:
    snap = storage.pin_snapshot(path, "interop", version)
    con = duckdb.connect(":memory:")
    try:
        source, _ = snapshot_source(con, snap, "src")
        cur = con.execute(f"SELECT * FROM {source}")
        names = [d[0] for d in cur.description]
        return _sorted([dict(zip(names, r, strict=True)) for r in cur.fetchall()])
    finally:
        con.close()


def _meta(load_id: str) -> dict[str, str]:
    return {"twh.load_id": load_id}


def _ts(h: int) -> datetime:
    return datetime(2024, 1, 1, h, tzinfo=UTC)


def test_tables_written_by_delta_rs_read_by_delta_spark(spark, tmp_path: Path) -> None:
    t = tmp_path / "rs"
    storage.create_table(t, SCHEMA)
    storage.write_batches(t, [_batch([(1, "a", 1.5, date(2024, 1, 1), _ts(1)), (2, None, None, None, None)])],
                          SCHEMA, metadata=_meta("ld_a"))
    storage.merge_batches(t, [_batch([(2, "b", 2.5, date(2024, 1, 2), _ts(2)), (3, "c", 3.5, None, _ts(3))])],
                          SCHEMA, keys=["id"], metadata=_meta("ld_m"))
    storage.write_batches(t, [_batch([(4, "d", -1.0, date(2024, 2, 1), None)])], SCHEMA, metadata=_meta("ld_o"),
                          mode="overwrite")
    wider = SCHEMA.append(pa.field("region", pa.string()))  # a migration that adds a column
    storage.write_batches(t, [_batch([(4, "d", -1.0, date(2024, 2, 1), None, "north"),
                                      (5, "e", 0.0, None, _ts(5), None)], wider)],
                          wider, metadata=_meta("ld_s"), mode="overwrite", schema_mode="overwrite")
    expected = {1: 2, 2: 3, 3: 1, 4: 2}  # rows per version: append, merge (1 updated, 1 new), overwrite, migrate
    for version, n in expected.items():
        rs = _delta_rs(t, version)
        assert len(rs) == n
        assert _spark(spark, t, version) == rs, f"version {version}"
    assert any("north" in row for row in _delta_rs(t, 4))


def test_tables_written_by_delta_spark_read_by_delta_rs_and_the_gate(spark, tmp_path: Path) -> None:
    from delta.tables import DeltaTable as SparkDeltaTable

    t = str(tmp_path / "spark")
    ddl = "id bigint, name string, price double, day date, ts timestamp"
    spark.createDataFrame([(1, "a", 1.5, date(2024, 1, 1), datetime(2024, 1, 1, 1)), (2, None, None, None, None)],
                          ddl).write.format("delta").save(t)
    spark.createDataFrame([(3, "c", 3.5, date(2024, 1, 3), None)], ddl).write.format("delta").mode("append").save(t)
    (SparkDeltaTable.forPath(spark, t).alias("t")
     .merge(spark.createDataFrame([(2, "b", 2.5, date(2024, 1, 2), datetime(2024, 1, 2)),
                                   (4, "d", 4.5, None, None)], ddl).alias("s"), "t.id = s.id")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    (spark.createDataFrame([(5, "e", 5.5, None, None, "north")], ddl + ", region string")
     .write.format("delta").mode("append").option("mergeSchema", "true").save(t))
    dt = DeltaTable(t)
    assert dt.version() == 3
    # the session's defaults keep the features delta-rs / the plain scan cannot read off
    protocol = dt.protocol()
    assert protocol.min_reader_version == 1 and not protocol.reader_features
    config = dt.metadata().configuration
    assert config.get("delta.enableDeletionVectors", "false") == "false"
    assert config.get("delta.columnMapping.mode", "none") == "none"
    assert not storage.needs_delta_reader(dt)
    for version, n in {0: 2, 1: 3, 2: 4, 3: 5}.items():
        sp = _spark(spark, Path(t), version)
        assert len(sp) == n
        assert _delta_rs(Path(t), version) == sp, f"delta-rs, version {version}"
        assert _gate(Path(t), version) == sp, f"gate, version {version}"
    assert any("north" in row for row in _gate(Path(t), 3))


def test_deletion_vectors_are_off_by_default_and_never_plain_scanned(spark, tmp_path: Path) -> None:
    assert spark.conf.get("spark.databricks.delta.properties.defaults.enableDeletionVectors") == "false"
    t = str(tmp_path / "dv")
    spark.sql(f"CREATE TABLE delta.`{t}` (id bigint, name string) USING delta "
              "TBLPROPERTIES ('delta.enableDeletionVectors' = 'true')")
    spark.createDataFrame([(i, f"n{i}") for i in range(6)], "id bigint, name string").coalesce(1) \
        .write.format("delta").mode("append").save(t)
    spark.sql(f"DELETE FROM delta.`{t}` WHERE id % 2 = 0")
    dt = DeltaTable(t)
    assert "deletionVectors" in (dt.protocol().reader_features or [])
    snap = storage.pin_snapshot(t, "dv")
    # a plain scan of the live files would bring the deleted rows back: the gate must not use it
    assert snap.needs_delta_reader
    expected = _spark(spark, Path(t), dt.version())
    assert [r[0] for r in expected] == [1, 3, 5]
    try:
        got = _gate(Path(t), dt.version())
    except Exception:  # noqa: BLE001 - refusing to read is fail-closed too
        return
    assert got == expected
