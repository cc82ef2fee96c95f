"""Delta storage: layout, one atomic commit per load, idempotent loads, pinned snapshots, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from connectors.schema import COLUMN_TYPES, ColumnSpec, arrow_schema
from sandbox.errors import Conflict, InvalidInput, NotFound
from sandbox.tables import storage

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("payload", pa.string())])


def batch(start: int, n: int = 100) -> pa.RecordBatch:
    return pa.record_batch([pa.array(range(start, start + n), pa.int64()),
                            pa.array([f"row-{i}" for i in range(start, start + n)])], schema=SCHEMA)


def batches(k: int, n: int = 100, start: int = 0):
    for i in range(k):
        yield batch(start + i * n, n)


def rows(snapshot) -> int:
    if not snapshot.files:
        return 0
    return duckdb.sql(f"SELECT count(*) FROM read_parquet({list(snapshot.files)!r})").fetchall()[0][0]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = storage.table_path(tmp_path, "government", "t")
    assert storage.create_table(path, SCHEMA) == 0
    return path


def test_layout_one_table_per_dataset_under_its_zone(tmp_path: Path) -> None:
    assert storage.table_path(tmp_path, "government", "tax_payments") == tmp_path / "tables/government/tax_payments"
    assert storage.table_path(tmp_path, "market", "bank_loans") == tmp_path / "tables/market/bank_loans"
    for kind, name in [("private", "x"), ("market", "../x"), ("market", "X"), ("market", "")]:
        with pytest.raises(InvalidInput):
            storage.table_path(tmp_path, kind, name)
    assert storage.quarantine_path(tmp_path, "tax_payments", "ld_1") == tmp_path / "quarantine/tax_payments/ld_1.json"
    with pytest.raises(InvalidInput):
        storage.quarantine_path(tmp_path, "tax_payments", "../../etc/x")


def test_quarantine_report_is_written_whole(tmp_path: Path) -> None:
    path = storage.write_quarantine_report(tmp_path, "tax_payments", "ld_1", {"success": False, "名": "税"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"success": False, "名": "税"}
    assert [p.name for p in path.parent.iterdir()] == ["ld_1.json"]  # no temp file left


def test_create_table_keeps_every_declared_type_and_refuses_a_second_table(tmp_path: Path) -> None:
    schema = arrow_schema([ColumnSpec(f"c_{t}", t, nullable=(i % 2 == 0)) for i, t in enumerate(COLUMN_TYPES)])
    path = storage.table_path(tmp_path, "market", "all_types")
    assert storage.create_table(path, schema) == 0
    assert pa.schema(DeltaTable(str(path)).schema().to_arrow()).equals(schema)
    with pytest.raises(Conflict):
        storage.create_table(path, schema)


def test_all_batches_land_in_one_commit_with_our_metadata(table: Path) -> None:
    version = storage.append_batches(table, batches(7), SCHEMA,
                                     metadata={"twh.load_id": "ld_a", "twh.source_sha256": "ab" * 32})
    assert version == 1 and storage.latest_version(table) == 1
    hist = storage.history(table)
    assert [h["version"] for h in hist] == [0, 1]
    assert hist[1]["operation"] == "WRITE" and hist[1]["rows_added"] == 700
    assert hist[1]["metadata"] == {"twh.load_id": "ld_a", "twh.source_sha256": "ab" * 32}
    assert storage.rows_added(table, 1) == 700
    assert rows(storage.pin_snapshot(table, "t")) == 700


def test_a_failing_batch_stream_commits_nothing_and_its_error_comes_through(table: Path) -> None:
    class ContractFailed(Exception):
        pass

    def bad():
        yield from batches(5)
        raise ContractFailed("row 501 failed")

    with pytest.raises(ContractFailed, match="row 501"):
        storage.append_batches(table, bad(), SCHEMA, metadata={"twh.load_id": "ld_bad"}, target_file_size=1024)
    assert storage.latest_version(table) == 0 and rows(storage.pin_snapshot(table, "t")) == 0
    assert storage.find_load(table, "ld_bad") is None
    assert storage.append_batches(table, batches(5), SCHEMA, metadata={"twh.load_id": "ld_bad"}) == 1


def test_loads_are_idempotent(table: Path) -> None:
    assert storage.find_load(table, "ld_x") is None
    v = storage.append_batches(table, batches(2), SCHEMA, metadata={"twh.load_id": "ld_x"})
    assert storage.find_load(table, "ld_x") == v == 1
    with pytest.raises(Conflict) as info:
        storage.append_batches(table, batches(2), SCHEMA, metadata={"twh.load_id": "ld_x"})
    assert info.value.details["version"] == 1
    assert storage.append_batches(table, batches(1), SCHEMA, metadata={"twh.load_id": "ld_y"}) == 2
    assert storage.find_load(table, "ld_x") == 1 and storage.find_load(table, "ld_y") == 2


def test_concurrent_commits_of_the_same_load_land_once(table: Path) -> None:
    barrier = threading.Barrier(2, timeout=20)
    outcomes: list[object] = []

    def slow():
        barrier.wait()  # both writers have passed find_load's check before either commits
        yield from batches(3)

    def run() -> None:
        try:
            outcomes.append(storage.append_batches(table, slow(), SCHEMA, metadata={"twh.load_id": "ld_same"}))
        except Conflict as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "int"]
    assert storage.latest_version(table) == 1 and rows(storage.pin_snapshot(table, "t")) == 300


def test_concurrent_commits_of_different_loads_both_land(table: Path) -> None:
    barrier = threading.Barrier(2, timeout=20)

    def slow(start: int):
        barrier.wait()
        yield from batches(3, start=start)

    threads = [threading.Thread(target=storage.append_batches, args=(table, slow(s), SCHEMA),
                                kwargs={"metadata": {"twh.load_id": f"ld_{s}"}}) for s in (0, 10_000)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert storage.latest_version(table) == 2 and rows(storage.pin_snapshot(table, "t")) == 600


def test_snapshots_pin_a_version(table: Path) -> None:
    storage.append_batches(table, batches(2), SCHEMA, metadata={"twh.load_id": "ld_1"})
    storage.append_batches(table, batches(3, start=10_000), SCHEMA, metadata={"twh.load_id": "ld_2"})
    v1, v2, latest = (storage.pin_snapshot(table, "t", 1), storage.pin_snapshot(table, "t", 2),
                      storage.pin_snapshot(table, "t"))
    assert (v1.version, v2.version, latest.version) == (1, 2, 2)
    assert set(v1.files) < set(v2.files) and latest.files == v2.files
    assert all(os.path.isabs(f) and os.path.exists(f) for f in v2.files)
    assert (rows(v1), rows(v2)) == (200, 500)
    assert v1.columns == ("id", "payload") and not v1.needs_delta_reader and v1.dataset == "t"
    assert v1.table_path == str(table)
    with pytest.raises(NotFound):
        storage.pin_snapshot(table, "t", 3)
    with pytest.raises(InvalidInput):
        storage.pin_snapshot(table, "t", -1)


def test_snapshots_of_tables_a_plain_scan_would_misread_need_the_delta_reader(tmp_path: Path) -> None:
    part = tmp_path / "partitioned"
    write_deltalake(str(part), pa.table({"k": ["a", "b"], "v": [1, 2]}), partition_by=["k"])
    assert storage.pin_snapshot(part, "p").needs_delta_reader
    dv = tmp_path / "dv"
    DeltaTable.create(str(dv), SCHEMA, configuration={"delta.enableDeletionVectors": "true"})
    assert storage.pin_snapshot(dv, "dv").needs_delta_reader


def test_schema_drift_and_missing_tables_are_refused(table: Path, tmp_path: Path) -> None:
    other = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("payload", pa.large_string())])
    with pytest.raises(Conflict, match="schema drift"):
        storage.append_batches(table, [], other, metadata={"twh.load_id": "ld_d"})

    def wrong_batches():
        yield pa.record_batch([pa.array([1]), pa.array([1])], names=["id", "payload"])

    with pytest.raises(InvalidInput):
        storage.append_batches(table, wrong_batches(), SCHEMA, metadata={"twh.load_id": "ld_w"})
    with pytest.raises(NotFound):
        storage.find_load(tmp_path / "nothing", "ld_1")
    with pytest.raises(InvalidInput):
        storage.append_batches(table, batches(1), SCHEMA, metadata={"twh.source_sha256": "x"})
    assert storage.latest_version(table) == 0


CHILD = textwrap.dedent("""
    import sys, time
    import pyarrow as pa
    from sandbox.tables import storage
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("payload", pa.string())])
    def gen():
        for i in range(400):
            if i == 5:
                print("STARTED", flush=True)
            time.sleep(0.01)
            ids = range(i * 2000, (i + 1) * 2000)
            yield pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"payload-{j:012d}" * 4 for j in ids])],
                                  schema=schema)
    v = storage.append_batches(sys.argv[1], gen(), schema, metadata={"twh.load_id": sys.argv[2]},
                               target_file_size=256 * 1024)
    print("COMMITTED", v, flush=True)
""")


def test_sigkill_mid_write_leaves_the_previous_version_and_a_retry_succeeds(table: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    storage.append_batches(table, batches(1), SCHEMA, metadata={"twh.load_id": "ld_base"})
    saw_orphans = False
    for attempt, delay in enumerate((0.15, 0.4, 0.8)):
        before = storage.pin_snapshot(table, "t")
        load = f"ld_kill{attempt}"
        proc = subprocess.Popen([sys.executable, str(script), str(table), load], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "STARTED"  # the writer is consuming batches
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == -signal.SIGKILL
        after = storage.pin_snapshot(table, "t")
        assert after.version == before.version and after.files == before.files
        assert rows(after) == rows(before) and storage.find_load(table, load) is None
        on_disk = {str(p) for p in table.glob("*.parquet")}
        saw_orphans |= bool(on_disk - set(after.files))  # parts written but never committed
        retry = storage.append_batches(table, batches(3, start=1_000_000 * (attempt + 1)), SCHEMA,
                                       metadata={"twh.load_id": load})
        assert retry == before.version + 1 and rows(storage.pin_snapshot(table, "t")) == rows(before) + 300
    assert saw_orphans, "the kill never landed mid-write: make the child slower"
    assert time.monotonic() - started < 15


def _column_chunks(path: Path) -> dict:
    import pyarrow.parquet as pq

    files = list(Path(path).rglob("*.parquet"))
    meta = pq.ParquetFile(files[0]).metadata.row_group(0)
    return {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}


def test_the_record_key_column_is_written_without_a_dictionary_and_the_rest_as_before(tmp_path: Path) -> None:
    """The record-key column's values are random: a dictionary only costs the writer time. Naming a
    writer property resets delta-rs's compression to none, so this also holds Snappy and the other
    columns' dictionaries in place (a regression would double the table's size silently). Batches
    this small (under 1000 rows) decide nothing about the declared columns."""
    from sandbox.tables.record_keys import keyed_schema, with_record_keys

    schema = keyed_schema(SCHEMA)
    path = storage.table_path(tmp_path, "government", "k")
    storage.create_table(path, schema)
    storage.append_batches(path, (with_record_keys(b) for b in batches(3, n=500)), schema,
                           metadata={"twh.load_id": "ld_" + "a" * 24})
    cols = _column_chunks(path)
    assert "RLE_DICTIONARY" not in cols["__twh_rkey"].encodings
    assert "RLE_DICTIONARY" in cols["payload"].encodings and "RLE_DICTIONARY" in cols["id"].encodings
    assert {c.compression for c in cols.values()} == {"SNAPPY"}
    assert cols["__twh_rkey"].statistics.has_min_max  # the Delta log's stats are unchanged


def test_mostly_distinct_columns_are_written_without_a_dictionary_repeated_ones_keep_it(tmp_path: Path) -> None:
    """A column whose first batch is more than half distinct values (codes, names, amounts) is
    written with plain pages from the start instead of a dictionary the writer would give up on;
    a column of repeated values keeps its dictionary; Snappy and the statistics stay everywhere,
    and the rows read back unchanged."""
    from sandbox.tables.record_keys import RECORD_KEY, keyed_schema, with_record_keys

    schema = keyed_schema(SCHEMA)
    path = storage.table_path(tmp_path, "government", "d")
    storage.create_table(path, schema)

    def repeated(start: int, n: int) -> pa.RecordBatch:  # unique ids, ten distinct payloads
        return pa.record_batch([pa.array(range(start, start + n), pa.int64()),
                                pa.array([f"kind-{i % 10}" for i in range(start, start + n)])], schema=SCHEMA)

    storage.append_batches(path, (with_record_keys(repeated(i * 5000, 5000)) for i in range(3)), schema,
                           metadata={"twh.load_id": "ld_" + "d" * 24})
    cols = _column_chunks(path)
    assert "RLE_DICTIONARY" not in cols["id"].encodings
    assert "RLE_DICTIONARY" not in cols[RECORD_KEY].encodings
    assert "RLE_DICTIONARY" in cols["payload"].encodings
    assert {c.compression for c in cols.values()} == {"SNAPPY"}
    assert all(c.statistics.has_min_max for c in cols.values())
    snap = storage.pin_snapshot(path, "d")
    got = duckdb.sql(f"SELECT count(*), count(DISTINCT id), count(DISTINCT payload), min(id), max(id) "
                     f"FROM read_parquet({list(snap.files)!r})").fetchall()[0]
    assert got == (15000, 15000, 10, 0, 14999)
