"""The warm-view cache's bookkeeping, without a JVM: LRU bound, held entries, racing creators, file keys.

(The views themselves — pinned versions, a commit after the view, a table created again at the same
path, the bound on a real session's catalog — are tested on both kinds of Spark session in
tests/gate/test_spark_parity.py.)
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from sandbox.gate.spark_views import Entry, ViewCache, identity, plain_parquet
from sandbox.tables.snapshot import Snapshot


class FakeCatalog:
    def __init__(self) -> None:
        self.views: set[str] = set()

    def dropTempView(self, name: str) -> None:  # noqa: N802 - pyspark's name
        self.views.discard(name)


class FakeSession:
    def __init__(self) -> None:
        self.catalog = FakeCatalog()


def _maker(session: FakeSession, made: list[str]) -> Any:
    def make(name: str) -> Entry:
        session.catalog.views.add(name)
        made.append(name)
        return Entry(name, session)
    return make


def test_lru_drops_the_least_recently_used_view_no_query_holds() -> None:
    session, made = FakeSession(), []
    cache = ViewCache("s", lambda: 2)
    a = cache.acquire(("a",), _maker(session, made))  # held through the test
    for key in ("b", "c", "d"):
        cache.release(cache.acquire((key,), _maker(session, made)))
    # "a" is the oldest but held: "b" and "c" went instead
    assert cache.names() == [made[0], made[3]] and session.catalog.views == {made[0], made[3]}
    cache.release(a)
    assert len(cache) == 2
    again = cache.acquire(("d",), _maker(session, made))  # a hit: nothing made
    assert again.name == made[3] and len(made) == 4
    cache.release(again)
    cache.release(cache.acquire(("e",), _maker(session, made)))
    assert made[0] not in session.catalog.views, "the released, least recently used view was not dropped"


def test_racing_creators_keep_one_view_and_drop_the_other() -> None:
    session, made = FakeSession(), []
    cache = ViewCache("s", lambda: 8)
    gate = threading.Barrier(2)

    def slow(name: str) -> Entry:
        gate.wait(timeout=5)  # both threads are inside make: both missed
        return _maker(session, made)(name)

    got: list[Entry] = []
    threads = [threading.Thread(target=lambda: got.append(cache.acquire(("k",), slow))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 2 and made[0] != made[1], "names are unique per creation"
    assert got[0] is got[1] and got[0].users == 2
    assert session.catalog.views == {got[0].name}, "the loser's view was not dropped"


def test_names_come_from_a_hash_not_from_the_key() -> None:
    session, made = FakeSession(), []
    entry = ViewCache("s", lambda: 4).acquire(("connect", "sid", "/w/tables/x'; DROP", 3, "f"), _maker(session, made))
    assert re.fullmatch(r"__twh_s_[0-9a-f]{24}_[0-9a-f]{8}", entry.name)


def _snap(files: tuple[str, ...], version: int = 0, **kw: Any) -> Snapshot:
    return Snapshot("d", "/w/t", version, files, **kw)


def test_the_key_changes_with_the_version_and_the_files() -> None:
    one = identity(_snap(("/w/t/part-1.parquet",)))
    assert identity(_snap(("/w/t/part-1.parquet",), version=1)) != one
    assert identity(_snap(("/w/t/part-2.parquet",))) != one  # the table created again at the same path


@pytest.mark.parametrize("files, kw, plain", [
    (("/w/t/a.parquet", "/w/t/b.parquet"), {}, True),
    (("s3://bucket/t/a.parquet",), {}, True),
    (("/w/t/a.parquet",), {"needs_delta_reader": True}, False),  # deletion vectors, column mapping, partitions
    ((), {}, False),  # no files: the Delta read
    (("/w/t/a[1].parquet",), {}, False),  # Hadoop would glob it
    (("/w/t/a*.parquet",), {}, False),
    (("/w/t:x/a.parquet",), {}, False),  # a colon: Hadoop reads a scheme
    (("relative/a.parquet",), {}, False),
    (("http://host/a.parquet",), {}, False),
])
def test_plain_parquet_only_for_files_hadoop_takes_verbatim(files: tuple[str, ...], kw: Any, plain: bool) -> None:
    assert plain_parquet(_snap(files, **kw)) is plain



def test_a_query_reads_only_its_columns_of_a_warm_view() -> None:
    """The warm view holds every column of the version (the record keys too); each query reads it
    through a projection to the columns its plan reads, as the DuckDB engine's views do, so a column
    the plan does not name is out of scope in the SQL Spark runs."""
    import sqlglot
    from sqlglot import exp

    from sandbox.gate.spark_engine import transpile

    sql = transpile("SELECT r.region, COUNT(*) AS n FROM registry AS r JOIN registry AS s ON r.region = s.region "
                    "GROUP BY r.region", {"registry": "__twh_s_x"}, set(), {"registry": ("region",)})
    tree = sqlglot.parse_one(sql, read="spark")
    reads = [t for t in tree.find_all(exp.Table) if t.name == "__twh_s_x"]
    assert len(reads) == 2
    for t in reads:
        select = t.find_ancestor(exp.Select)
        assert [c.name for c in select.expressions] == ["region"] and select.parent_select is not None
    # a view with no column list (a heavy-unit table: the platform's own k, w, c) is read as it is
    sql = transpile("SELECT 1 FROM registry LEFT JOIN h AS x ON registry.region = x.k",
                    {"registry": "__twh_s_x", "h": "__twh_k_y"}, set(), {"registry": ("region",)})
    assert "LEFT JOIN `__twh_k_y` AS x ON" in sql, sql
