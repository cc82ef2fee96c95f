"""Ingest through the service: source blocks, load modes, lineage, drift + migrate, row quarantine, mock."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from ingest_helpers import manifest, register, table_rows, write_csv

from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import Conflict, Forbidden, InvalidInput, ValidationFailed


def _steward(people):
    return people["bank_steward"]


def test_append_is_idempotent_and_history_has_lineage(wh, people, tmp_path: Path) -> None:
    name = register(wh, people)
    f = write_csv(tmp_path / "a.csv", [("001", "2024-01-02", 1.5), ("002", "2024-01-02", 2.5)])
    first = wh.ingest.ingest(_steward(people), name, f)
    assert first["status"] == "committed" and first["version"] == 1
    assert wh.ingest.ingest(_steward(people), name, f)["status"] == "already_loaded"
    h = wh.dataset_history(people["analyst"], name)
    assert [v["version"] for v in h["versions"]] == [0, 1]
    v1 = h["versions"][1]
    assert v1["load_id"] == first["load_id"] and v1["connector"] == "csv" and v1["mode"] == "append"
    assert v1["source"]["file_name"] == "a.csv" and len(v1["source_sha256"]) == 64
    assert (v1["rows_in"], v1["rows_out"], v1["rows_quarantined"]) == (2, 2, 0)
    assert v1["validation"]["success"] is True and v1["validation"]["checks"] == 1


def test_overwrite_merge_and_incremental(wh, people, tmp_path: Path) -> None:
    s = _steward(people)
    name = register(wh, people, load={"mode": "merge", "keys": ["code"], "watermark": "day"})
    wh.ingest.ingest(s, name, write_csv(tmp_path / "a.csv", [("001", "2024-01-01", 1), ("002", "2024-01-01", 2)]))
    r = wh.ingest.ingest(s, name, write_csv(tmp_path / "b.csv", [("002", "2024-01-02", 20), ("003", "2024-01-02", 3)]))
    assert r["merge"] == {"keys": ["code"], "updated": 1, "inserted": 1}
    assert [x["price"] for x in table_rows(wh, name)] == [1, 20, 3]
    dup = write_csv(tmp_path / "d.csv", [("004", "2024-01-02", 1), ("004", "2024-01-03", 2)])
    with pytest.raises(InvalidInput, match="appears more than once"):
        wh.ingest.ingest(s, name, dup)
    # incremental: only rows above the last committed watermark
    inc = write_csv(tmp_path / "c.csv", [("005", "2024-01-03", 5), ("006", "2024-01-04", 6)])
    r = wh.ingest.ingest(s, name, inc, mode="incremental")
    assert r["watermark"]["new"] == "2024-01-04" and r["rows"] == 2
    more = write_csv(tmp_path / "e.csv", [("006", "2024-01-04", 6), ("007", "2024-01-05", 7), ("000", "2023-12-01", 0)])
    r = wh.ingest.ingest(s, name, more, mode="incremental")
    assert r["rows"] == 1 and r["watermark"] == {"column": "day", "previous": "2024-01-04", "new": "2024-01-05"}
    assert wh.ingest.ingest(s, name, write_csv(tmp_path / "f.csv", [("008", "2024-01-05", 1)]),
                            mode="incremental")["status"] == "up_to_date"
    # overwrite replaces every row in one commit; older versions stay for replay
    before = wh.datasets.show(s, name)["current_version"]
    r = wh.ingest.ingest(s, name, write_csv(tmp_path / "g.csv", [("009", "2024-02-01", 9)]), mode="overwrite")
    assert [x["code"] for x in table_rows(wh, name)] == ["009"] and r["version"] == before + 1
    with pytest.raises(InvalidInput, match="unknown load mode"):
        wh.ingest.ingest(s, name, tmp_path / "g.csv", mode="upsert")
    with pytest.raises(Forbidden):
        wh.ingest.ingest(people["analyst"], name, tmp_path / "g.csv", mode="overwrite")


def test_source_block_reruns_sql_and_is_idempotent(wh, people, tmp_path: Path) -> None:
    db = tmp_path / "src.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE p (code TEXT, day TEXT, price REAL)")
    con.execute("INSERT INTO p VALUES ('001', '2024-01-01', 1.0)")
    con.commit()
    name = register(wh, people, source={"kind": "sql", "url": f"sqlite:///{db}", "query": "SELECT code, day, price "
                                        "FROM p WHERE price >= 0"}, load={"mode": "incremental", "watermark": "day"})
    s = _steward(people)
    assert wh.ingest.ingest(s, name)["rows"] == 1
    assert wh.ingest.ingest(s, name)["status"] in ("already_loaded", "up_to_date")
    con.execute("INSERT INTO p VALUES ('002', '2024-01-02', 2.0)")
    con.commit()
    assert wh.ingest.ingest(s, name)["rows"] == 1
    h = wh.dataset_history(s, name)["versions"][-1]
    assert h["query"].startswith("SELECT code") and h["watermark"]["new"] == "2024-01-02"
    with pytest.raises(InvalidInput, match="no source: block"):
        wh.ingest.ingest(s, register(wh, people, name="other"))


def test_schema_drift_is_refused_until_a_steward_migrates(wh, people, tmp_path: Path) -> None:
    s = _steward(people)
    name = register(wh, people)
    wh.ingest.ingest(s, name, write_csv(tmp_path / "a.csv", [("001", "2024-01-01", 1.5)]))
    renamed = write_csv(tmp_path / "b.csv", [("002", "2024-01-02", 2.5, "x")], header="code,day,close,venue")
    with pytest.raises(Conflict, match=r"schema drift.*added \['close', 'venue'\].*missing \['price'\]"
                                       r".*twh dataset migrate") as info:
        wh.ingest.ingest(s, name, renamed)
    assert info.value.details["drift"]["missing"] == ["price"]
    new = manifest(schema=[*manifest()["schema"][:2],
                           {"name": "close", "type": "float64", "role": "measure"},
                           {"name": "venue", "type": "string", "role": "dimension"}], expectations=[])
    with pytest.raises(Forbidden):
        wh.migrate_dataset(people["analyst"], name, parse_manifest(new), {"price": "close"})
    r = wh.migrate_dataset(s, name, parse_manifest(new), {"price": "close"})
    assert r["diff"]["renamed"] == {"price": "close"} and r["diff"]["added"] == ["venue"]
    assert table_rows(wh, name) == [{"code": "001", "day": __import__("datetime").date(2024, 1, 1), "close": 1.5,
                                     "venue": None}]
    assert wh.ingest.ingest(s, name, renamed)["status"] == "committed"
    assert wh.manifest(name).columns[2].name == "close"  # the facade's cache saw the change
    audit = [r["action"] for r in wh.audit_records(people["auditor"], object_id=name)]
    assert "ingest.refused" in audit and "dataset.migrated" in audit
    # a retype that existing rows cannot take is refused, naming the column
    bad = manifest(schema=[*manifest()["schema"][:2], {"name": "close", "type": "int64", "role": "measure"},
                           {"name": "venue", "type": "string", "role": "dimension"}], expectations=[])
    with pytest.raises(InvalidInput, match="'close'"):
        wh.migrate_dataset(s, name, parse_manifest(bad))


def test_row_level_quarantine_is_an_opt_in(wh, people, tmp_path: Path) -> None:
    s = _steward(people)
    name = register(wh, people, load={"bad_rows": "quarantine", "max_bad_rows": 2})
    f = write_csv(tmp_path / "a.csv", [("001", "2024-01-01", 1), ("002", "2024-13-01", 2), ("003", "2024-01-03", -3),
                                       ("004", "2024-01-04", 4)])
    r = wh.ingest.ingest(s, name, f)
    assert r["rows"] == 2 and r["rows_quarantined"] == 2
    assert [x["code"] for x in table_rows(wh, name)] == ["001", "004"]
    report = json.loads((wh.settings.home / "quarantine" / name / f"{r['load_id']}.json").read_text())
    assert [x["row"] for x in report["rows"]] == [2, 3] and report["rows"][0]["examples"] == ["2024-13-01"]
    v = wh.dataset_history(s, name)["versions"][-1]
    assert (v["rows_in"], v["rows_out"], v["rows_quarantined"]) == (4, 2, 2)
    too_many = write_csv(tmp_path / "b.csv", [("1", "x", 1), ("2", "y", 1), ("3", "z", 1)])
    with pytest.raises(ValidationFailed, match="max_bad_rows"):
        wh.ingest.ingest(s, name, too_many)


def test_mock_is_schema_identical_and_lands_through_the_contract(wh, people, tmp_path: Path) -> None:
    name = register(wh, people)
    data = wh.datasets.mock(people["analyst"], name, rows=200, seed=1)
    assert data == wh.datasets.mock(people["analyst"], name, rows=200, seed=1)
    (tmp_path / "mock.csv").write_bytes(data)
    wh.datasets.register(_steward(people), parse_manifest(manifest(name="prices_copy")))
    assert wh.ingest.ingest(_steward(people), "prices_copy", tmp_path / "mock.csv")["rows"] == 200
    import io

    import pyarrow.parquet as pq

    t = pq.read_table(io.BytesIO(wh.datasets.mock(people["analyst"], name, rows=5, fmt="parquet")))
    assert t.schema.names == ["code", "day", "price"] and str(t.schema.field("day").type) == "date32[day]"
    assert all(0 <= p <= 1000 for p in t.column("price").to_pylist() if p is not None)


def test_every_row_lands_with_a_secret_record_key_that_a_migration_keeps(wh, people, tmp_path):
    """The cell-key method needs a key per row, assigned at landing (CSPRNG, never declared, so no
    query can name it) and kept by a schema migration: the same rows keep their perturbation."""
    from deltalake import DeltaTable

    from sandbox.tables.record_keys import RECORD_KEY

    s = people["bank_steward"]
    name = register(wh, people)
    wh.ingest.ingest(s, name, write_csv(tmp_path / "a.csv", [("001", "2024-01-01", 1.5), ("002", "2024-01-02", 2.5)]))

    def keys() -> dict[str, int]:
        with wh.db.read() as sess:
            from sandbox.context import get_dataset

            ds = get_dataset(sess, name)
        t = DeltaTable(ds.table_path).to_pyarrow_table()
        return dict(zip(t.column("code").to_pylist(), t.column(RECORD_KEY).to_pylist()))

    before = keys()
    assert len(set(before.values())) == 2 and all(-2 ** 31 <= k < 2 ** 31 for k in before.values())  # int32
    new = manifest(schema=[*manifest()["schema"], {"name": "venue", "type": "string", "role": "dimension"}])
    wh.migrate_dataset(s, name, parse_manifest(new))
    assert keys() == before
    assert RECORD_KEY not in [c.name for c in wh.manifest(name).columns]  # never declared
