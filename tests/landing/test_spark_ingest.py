"""Landing on Spark (sandbox.landing.spark): the same outcomes as the streaming path.

A good file lands as one delta-spark commit whose rows equal what delta-rs and DuckDB read; a
file that fails its contract, has wrong types or ragged rows is quarantined and commits nothing;
re-running a load is a no-op; history shows the load like any other.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ingest_helpers import register, table_rows, write_csv
from spark_cluster import MASTER_ENV

from sandbox.errors import Conflict, InvalidInput, ValidationFailed
from sandbox.settings import Settings
from sandbox.tables import storage

#: a SparkSession starts in ~1-2 min on the shared 2-core box under load (the first test pays it)
# the PostgreSQL pass leaves these out: Spark ingest writes the catalog through the same code as the
# DuckDB ingest, which that pass runs (tests/landing/test_ingest_*.py)
pytestmark = [pytest.mark.timeout(900), pytest.mark.sqlite_pass]

# one expectation the Spark aggregate counts itself, one Great Expectations evaluates on Spark
EXPECTATIONS = [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0}},
                {"type": "expect_column_value_lengths_to_equal", "kwargs": {"column": "code", "value": 3}}]




@pytest.fixture
def kind(request: pytest.FixtureRequest) -> str:
    """``classic`` (this process's SparkSession) or ``connect`` (the Connect server on the cluster)."""
    which = getattr(request, "param", "classic")
    return "classic" if os.environ.get(MASTER_ENV) else which  # the cluster child: its classic driver


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str, spark, kind: str, request: pytest.FixtureRequest) -> Settings:
    # the master of the session-wide `spark` fixture (tests/conftest.py): one SparkSession per process
    from spark_cluster import SPARK_TEST_MASTER

    extra: dict = {}
    if kind == "connect":
        server = request.getfixturevalue("spark_connect")
        extra = {"spark_remote": server.url, "spark_connect_token": server.token}
    return Settings(home=tmp_path / "wh", database_url=catalog_url, engine="spark", spark_master=SPARK_TEST_MASTER,
                    **extra)


#: also over Spark Connect (and, in the cluster child, on the classic driver on the cluster)
BOTH = pytest.mark.parametrize("kind", ["classic", pytest.param("connect", marks=pytest.mark.cluster_subset)],
                               indirect=True)


def _version(wh, name: str) -> int:
    return wh.datasets.show(wh.users.principal("bank_steward"), name)["current_version"]


def _table(wh, name: str) -> Path:
    from sandbox.context import get_dataset
    from sandbox.tables.uris import to_path

    with wh.db.read() as s:
        return to_path(get_dataset(s, name).table_path)


def _duckdb_rows(wh, name: str) -> list[dict]:
    snap = storage.pin_snapshot(_table(wh, name), name, _version(wh, name))
    assert not snap.needs_delta_reader
    # the declared columns (table_rows drops the secret record key too, after checking every row has one)
    cur = duckdb.connect().execute("SELECT * EXCLUDE (__twh_rkey) FROM read_parquet(?)", [list(snap.files)])
    names = [d[0] for d in cur.description]
    return sorted((dict(zip(names, r, strict=True)) for r in cur.fetchall()),
                  key=lambda r: tuple(str(v) for v in r.values()))


def _expectations(wh) -> list[dict]:
    """Over Connect the expectation only Great Expectations evaluates keeps a load on the streaming path
    (test_connect_keeps_great_expectations_loads_on_the_streaming_path): the natively counted one here."""
    return EXPECTATIONS[:1] if wh.settings.spark_remote else EXPECTATIONS


@BOTH
def test_good_csv_lands_once_and_reads_the_same_everywhere(wh, people, tmp_path: Path, kind: str) -> None:
    s = people["bank_steward"]
    name = register(wh, people, expectations=_expectations(wh))
    f = write_csv(tmp_path / "a.csv", [("001", "2024-01-02", 1.5), ("002", "2024-01-03", ""),
                                       ("003", "2024-01-04", "+2e1")])
    r = wh.ingest.ingest(s, name, f)
    assert (r["status"], r["version"], r["rows"], r["engine"]) == ("committed", 1, 3, "spark")
    rows = table_rows(wh, name)
    assert [(x["code"], str(x["day"]), x["price"]) for x in rows] == [
        ("001", "2024-01-02", 1.5), ("002", "2024-01-03", None), ("003", "2024-01-04", 20.0)]
    assert _duckdb_rows(wh, name) == rows
    # re-running the same load is a no-op, on either engine (same load id)
    assert wh.ingest.ingest(s, name, f)["status"] == "already_loaded"
    assert wh.ingest.ingest(s, name, f, engine="duckdb")["status"] == "already_loaded"
    assert storage.latest_version(_table(wh, name)) == 1
    v1 = wh.dataset_history(s, name)["versions"][1]
    assert (v1["load_id"], v1["mode"], v1["connector"]) == (r["load_id"], "append", "csv")
    assert (v1["rows_in"], v1["rows_out"], v1["rows_quarantined"]) == (3, 3, 0)
    assert v1["validation"]["success"] is True and v1["validation"]["checks"] == len(_expectations(wh))
    # a crash between the Spark commit and the catalog update is repaired like a delta-rs one
    assert storage.find_load(_table(wh, name), r["load_id"]) == 1
    assert storage.rows_added(_table(wh, name), 1) == 3


@BOTH
def test_bad_files_are_quarantined_and_commit_nothing(wh, people, tmp_path: Path, kind: str) -> None:
    s = people["bank_steward"]
    name = register(wh, people, expectations=_expectations(wh))
    # wrong types and ragged rows fail the batch instead of being nulled
    bad = tmp_path / "bad.csv"
    bad.write_text("code,day,price\n001,2024-01-02,abc\n002,2024-02-30,1\n003,2024-01-02\n004,2024-01-02,1,9\n"
                   "005,2024-01-02,01.5e\n", encoding="utf-8")
    with pytest.raises(ValidationFailed, match="quarantined") as e:
        wh.ingest.ingest(s, name, bad)
    report = json.loads(next((wh.settings.home / "quarantine" / name).glob("*.json")).read_text())
    assert report["kind"] == "schema" and report["file_name"] == "bad.csv"
    failed = {(x["type"], x["column"]): x["unexpected_count"] for x in report["results"]}
    assert failed == {("declared_ragged", None): 2, ("declared_type", "price"): 2, ("declared_type", "day"): 1}
    assert e.value.details["load_id"] == report["load_id"]
    # a contract failure (negative price) likewise, with the steward's examples in the report only
    neg = write_csv(tmp_path / "neg.csv", [("001", "2024-01-02", -1.5), ("002", "2024-01-02", 2)])
    with pytest.raises(ValidationFailed, match="price"):
        wh.ingest.ingest(s, name, neg)
    assert _version(wh, name) == 0
    assert storage.latest_version(_table(wh, name)) == 0
    # drift is refused before Spark reads a row
    with pytest.raises(Conflict, match="schema drift"):
        wh.ingest.ingest(s, name, write_csv(tmp_path / "d.csv", [("001", "2024-01-02", 1)], header="code,day,cost"))
    # loads Spark does not take, asked for explicitly, are refused rather than silently streamed
    lines = tmp_path / "a.jsonl"
    lines.write_text('{"code": "001", "day": "2024-01-02", "price": 1}\n', encoding="utf-8")
    with pytest.raises(InvalidInput, match="engine spark"):
        wh.ingest.ingest(s, name, lines, engine="spark")


@pytest.mark.parametrize("kind", ["connect"], indirect=True)
def test_connect_keeps_great_expectations_loads_on_the_streaming_path(wh, people, tmp_path: Path, kind: str) -> None:
    if not wh.settings.spark_remote:
        pytest.skip("the cluster child runs a classic driver")
    s = people["bank_steward"]
    name = register(wh, people, expectations=EXPECTATIONS)
    f = write_csv(tmp_path / "a.csv", [("001", "2024-01-02", 1.5)])
    with pytest.raises(InvalidInput, match="Great Expectations"):  # asked for explicitly: refused, saying why
        wh.ingest.ingest(s, name, f, engine="spark")
    r = wh.ingest.ingest(s, name, f)  # the engine's default: streamed, with the whole contract checked
    assert r["status"] == "committed" and "engine" not in r


def test_parquet_overwrite_on_spark(wh, people, tmp_path: Path) -> None:
    s = people["bank_steward"]
    name = register(wh, people)
    wh.ingest.ingest(s, name, write_csv(tmp_path / "a.csv", [("001", "2024-01-02", 1.5)]), engine="duckdb")
    p = tmp_path / "b.parquet"
    pq.write_table(pa.table({"code": ["007", "008"], "day": pa.array([19000, 19001], pa.date32()),
                             "price": pa.array([1, 2], pa.int32())}), p)  # int32 widens losslessly
    r = wh.ingest.ingest(s, name, p, mode="overwrite")
    assert (r["version"], r["rows"], r["engine"]) == (2, 2, "spark")
    assert [(x["code"], x["price"]) for x in table_rows(wh, name)] == [("007", 1.0), ("008", 2.0)]
    h = wh.dataset_history(s, name)["versions"]
    assert [(v["mode"], v["connector"]) for v in h[1:]] == [("append", "csv"), ("overwrite", "parquet")]
