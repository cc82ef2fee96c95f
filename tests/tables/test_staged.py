"""Two-step loads (sandbox.tables.staged): parts in no version, then one commit; nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from sandbox.errors import Conflict
from sandbox.tables import staged, storage

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("payload", pa.string())])


def batches(k: int, n: int = 100, start: int = 0):
    for i in range(k):
        s = start + i * n
        yield pa.record_batch([pa.array(range(s, s + n), pa.int64()), pa.array([f"row-{j}" for j in range(s, s + n)])],
                              schema=SCHEMA)


def meta(load_id: str) -> dict[str, str]:
    return {storage.LOAD_ID_KEY: load_id, "twh.dataset": "t"}


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "t"
    storage.create_table(path, SCHEMA)
    return path


def paths(table: Path) -> list[str]:
    return sorted(DeltaTable(str(table)).get_add_actions(flatten=True).column("path").to_pylist())


def folders(table: Path) -> list[str]:
    return sorted(p.name for p in table.iterdir() if p.name.startswith(staged.STAGE_PREFIX))


def test_staged_parts_are_in_no_version_until_the_commit(table: Path) -> None:
    parts = staged.stage(table, batches(3), SCHEMA)
    assert storage.latest_version(table) == 0 and paths(table) == []
    assert parts.rows == 300 and parts.actions and all(a.path.startswith(parts.folder + "/") for a in parts.actions)
    version = staged.commit(table, parts, metadata=meta("ld_a"))
    assert version == 1 == storage.find_load(table, "ld_a")
    dt = DeltaTable(str(table))
    assert dt.to_pyarrow_table().num_rows == 300 and paths(table) == sorted(a.path for a in parts.actions)
    assert storage.rows_added(table, 1) == 300  # the staging write's own count, in the commit's metrics
    commit = json.loads((table / "_delta_log" / f"{1:020d}.json").read_text().splitlines()[0])["commitInfo"]
    assert commit["twh.load_id"] == "ld_a" and commit["operationMetrics"]["num_added_rows"] == 300
    # statistics travel with the parts (file skipping keeps working)
    assert sum(dt.get_add_actions(flatten=True).column("num_records").to_pylist()) == 300
    assert not (table / parts.folder / "_delta_log").exists()  # the staging table's own log is gone


def test_discarded_parts_leave_nothing(table: Path) -> None:
    parts = staged.stage(table, batches(2), SCHEMA)
    staged.discard(table, parts)
    assert folders(table) == [] and storage.latest_version(table) == 0


def test_a_load_committed_twice_is_refused_and_its_second_parts_removed(table: Path) -> None:
    staged.commit(table, staged.stage(table, batches(1), SCHEMA), metadata=meta("ld_same"))
    again = staged.stage(table, batches(1, start=1000), SCHEMA)
    with pytest.raises(Conflict, match="already committed"):
        staged.commit(table, again, metadata=meta("ld_same"))
    assert len(folders(table)) == 1 and again.folder not in folders(table)
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 100 and storage.latest_version(table) == 1


def test_a_batch_that_fails_mid_stage_leaves_no_parts(table: Path) -> None:
    class Boom(Exception):
        pass

    def failing():
        yield from batches(2)
        raise Boom("the source failed after two batches")

    with pytest.raises(Boom):
        staged.stage(table, failing(), SCHEMA)
    assert folders(table) == [] and storage.latest_version(table) == 0


def test_schema_drift_is_refused_before_anything_is_written(table: Path) -> None:
    other = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("payload", pa.string())])
    with pytest.raises(Conflict, match="schema drift"):
        staged.stage(table, iter([]), other)
    assert folders(table) == []


def test_an_overwrite_replaces_every_row_in_one_commit(table: Path) -> None:
    staged.commit(table, staged.stage(table, batches(2), SCHEMA), metadata=meta("ld_1"))
    version = staged.commit(table, staged.stage(table, batches(1, n=7), SCHEMA), metadata=meta("ld_2"),
                            mode="overwrite")
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 7
    assert DeltaTable(str(table), version=1).to_pyarrow_table().num_rows == 200  # older versions still read
    assert storage.history(table)[-1]["metrics"]["num_removed_files"] >= 1 and version == 2


def test_an_answer_lost_after_the_commit_landed_does_not_delete_the_committed_files(table: Path, monkeypatch) -> None:
    """The commit lands, then the call fails (a dropped connection to the store): the parts are
    the table's now, so they must not be "cleaned up" as if the commit had failed."""
    real = DeltaTable.create_write_transaction

    def lands_then_fails(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        real(self, *args, **kwargs)
        raise OSError("connection reset after the commit")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", lands_then_fails)
    parts = staged.stage(table, batches(2), SCHEMA)
    assert staged.commit(table, parts, metadata=meta("ld_lost")) == 1
    assert DeltaTable(str(table)).to_pyarrow_table().num_rows == 200  # every file it names is there


def test_a_commit_that_did_not_land_removes_its_parts(table: Path, monkeypatch) -> None:
    def fails(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        raise OSError("the store refused the commit")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", fails)
    parts = staged.stage(table, batches(1), SCHEMA)
    with pytest.raises(OSError):
        staged.commit(table, parts, metadata=meta("ld_failed"))
    assert folders(table) == [] and storage.latest_version(table) == 0
