"""The Spark engine's warm reads: one temp view per (session, table, pinned version), kept across queries.

Reading a Delta table at a pinned version costs Spark a log replay, a file listing and an analysis
(seconds, on every query, over Spark Connect as over a classic session); the query itself is often
a fraction of that. So the first query on a (table, version) in a session registers a temp view
that reads exactly that version, and later queries use the view by name:

* **what is cached:** the analysed read of the version, as a temp view in the session's catalog
  (on a Connect server, in the server-side session of this process's client: one client per server
  per process, :func:`sandbox.engines.spark.get_remote_session`, so its session id is reused). When
  the warehouse already knows the version's Parquet files and they are plain (the ``Snapshot``'s
  ``files``, from delta-rs, as the DuckDB engine reads them; no deletion vectors, column mapping or
  partition columns), the view is ``spark.read.schema(<the version's Delta schema>).parquet(files)``:
  no log replay, listing or data-skipping job per query. Otherwise it is the Delta read at
  ``versionAsOf``, whose analysed plan holds that version's snapshot;
* **keyed by** the session (:func:`sandbox.engines.spark.session_key`), the table path, the version
  and a digest of the version's file list (:func:`identity`): a new version is a new key, never a
  stale hit; a table dropped and created again at the same path (version 0 again) has other files;
  and a later commit cannot change what a view over version *v* reads (its files are immutable; its
  Delta snapshot is fixed at analysis);
* **named** ``__twh_s_<sha256 of the key>_<random>`` (heavy-unit tables ``__twh_k_…``): derived from
  a hash, never from user or dataset text, and unique per creation, so two threads creating the same
  view, or an eviction racing a creation, never touch each other's view;
* **bounded:** an LRU of :data:`MAX_CACHED_SNAPSHOTS` views (and :data:`MAX_CACHED_HEAVY` heavy-unit
  tables, whose rows are cached); an evicted entry's view is dropped (and its rows unpersisted) once
  no running query holds it — a query holds its entries from lookup to collect.

The checks stay where they were: the plan is the checked plan, the SQL reads the view through a
projection to the plan's columns under the dataset's alias (:func:`.spark_engine.transpile`: the
view holds every column, a query has only its own in scope), the record-key column is read like any
other column the plan names, and the gate's release rules run on the result as before.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InternalError
from ..tables.snapshot import Snapshot

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

MAX_CACHED_SNAPSHOTS = 16
MAX_CACHED_HEAVY = 32

#: Spark type name (DataType.typeName()) -> the DuckDB type id check_literal_types reasons about
TYPE_IDS: dict[str, str] = {
    "byte": "tinyint", "short": "smallint", "integer": "integer", "long": "bigint", "float": "float",
    "double": "double", "decimal": "decimal", "string": "varchar", "varchar": "varchar", "char": "varchar",
    "date": "date", "timestamp": "timestamp with time zone", "timestamp_ntz": "timestamp", "boolean": "boolean",
}
#: characters Hadoop expands in a path (globs) or cannot take in a local path (a scheme's colon)
_UNSAFE = set("{}[]*?\\\x00")


def schema_types(schema: Any) -> dict[str, tuple[str, str]]:
    """Spark schema -> {column (folded): (DuckDB type id, Spark type name)}."""
    return {f.name.casefold(): (TYPE_IDS.get(f.dataType.typeName(), f.dataType.typeName()),
                                f.dataType.simpleString()) for f in schema.fields}


def plain_parquet(snap: Snapshot) -> bool:
    """Whether Spark can read exactly ``snap``'s files as plain Parquet: the version needs no Delta
    reader and every file is an absolute local path or an ``s3://`` URI Hadoop takes verbatim."""
    return not snap.needs_delta_reader and bool(snap.files) and all(
        not (_UNSAFE & set(f)) and ((f.startswith("/") and ":" not in f) or f.startswith("s3://"))
        for f in snap.files)


@dataclass(eq=False)
class Entry:
    """A cached view: its name in ``session``'s catalog, its column types, and the DataFrame whose
    rows are cached (heavy-unit tables), to unpersist on eviction."""

    name: str
    session: Any = field(repr=False)
    types: dict[str, tuple[str, str]] = field(default_factory=dict)
    cached: Any = field(default=None, repr=False)
    users: int = 0


class ViewCache:
    """An LRU of temp views; :meth:`acquire` / :meth:`release` around each use."""

    def __init__(self, prefix: str, limit: Callable[[], int]) -> None:
        self._prefix, self._limit = prefix, limit
        self._entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        with self._lock:
            return [e.name for e in self._entries.values()]

    def acquire(self, key: tuple[str | int, ...], make: Callable[[str], Entry]) -> Entry:
        """The entry for ``key``, made by ``make(view name)`` on a miss; held until :meth:`release`."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                hit.users += 1
                self._entries.move_to_end(key)
                return hit
        digest = hashlib.sha256("\x00".join(map(str, key)).encode()).hexdigest()[:24]
        made = make(f"__twh_{self._prefix}_{digest}_{uuid.uuid4().hex[:8]}")  # slow: outside the lock
        with self._lock:
            hit = self._entries.get(key)
            spare = [made] if hit is not None else []  # another thread made it meanwhile: keep theirs
            if hit is None:
                hit = self._entries[key] = made
            hit.users += 1
            self._entries.move_to_end(key)
            spare += self._evict()
        _drop(spare)
        return hit

    def release(self, entry: Entry) -> None:
        with self._lock:
            entry.users -= 1
            spare = self._evict()
        _drop(spare)

    def clear(self) -> None:
        """Forget every entry no query holds, dropping its view (tests; a session being replaced)."""
        with self._lock:
            spare = [e for e in self._entries.values() if e.users == 0]
            self._entries = OrderedDict((k, e) for k, e in self._entries.items() if e.users > 0)
        _drop(spare)

    def _evict(self) -> list[Entry]:
        """Pop least-recently-used entries no query holds until the cache is within its limit."""
        out: list[Entry] = []
        excess = len(self._entries) - self._limit()
        for key in [k for k, e in self._entries.items() if e.users == 0][:max(excess, 0)]:
            out.append(self._entries.pop(key))
        return out


def _drop(entries: list[Entry]) -> None:
    for e in entries:
        try:
            e.session.catalog.dropTempView(e.name)
            if e.cached is not None:
                e.cached.unpersist()
        except Exception:  # noqa: BLE001 - the session is gone: so is its view
            pass


SNAPSHOTS = ViewCache("s", lambda: MAX_CACHED_SNAPSHOTS)
HEAVY = ViewCache("k", lambda: MAX_CACHED_HEAVY)


def identity(snap: Snapshot) -> tuple[str, int, str]:
    """What a view of ``snap`` is cached under: the table, the version and the digest of the version's
    files — a table dropped and created again at the same path restarts at version 0 with other
    files, and must not be served the old table's view."""
    return snap.table_path, snap.version, hashlib.sha256("\n".join(snap.files).encode()).hexdigest()


def snapshot_view(spark: SparkSession, snap: Snapshot) -> Entry:
    """A held view reading exactly ``snap`` in ``spark``'s session (release it with
    ``SNAPSHOTS.release``)."""
    from ..engines.spark import session_key

    def make(name: str) -> Entry:
        try:
            delta = spark.read.format("delta").option("versionAsOf", snap.version).load(snap.table_path)
            schema = delta.schema  # analysed here: the version's Delta schema (over Connect, nothing is checked
            # until it is asked)
            # The same files delta-rs pinned, read with the same schema: nothing left for Delta to replay
            df = spark.read.schema(schema).parquet(*snap.files) if plain_parquet(snap) else delta
            df.createOrReplaceTempView(name)
        except Exception:
            # Spark's messages name host paths: keep them out of the response.
            raise InternalError(
                f"the snapshot of {snap.dataset!r} at version {snap.version} could not be opened",
                details={"dataset": snap.dataset, "version": snap.version},
            ) from None
        return Entry(name, spark, schema_types(schema))

    return SNAPSHOTS.acquire((*session_key(spark), *identity(snap)), make)


def heavy_view(spark: SparkSession, snap: Snapshot, base: Entry, unit: str, max_rows: int) -> Entry:
    """A held view of ``xxhash64(unit) -> w = m / N, c = floor(m * 2**10 / N)`` for units with
    N > m rows of ``snap`` (read through its view ``base``), the columns of :mod:`.dp_bounding`'s
    table; its rows cached. (The dp plan's ``light_sql`` is not used: ``engine_sql`` computes the
    same integers.)"""
    from dp.grid import COUNT_EXPONENT

    from ..engines.spark import functions, session_key

    F = functions(spark)  # Connect's or classic's: the session decides
    m = int(max_rows)

    def make(name: str) -> Entry:
        try:
            col = F.col("`" + unit.replace("`", "``") + "`")
            counts = (spark.table(base.name).select(F.xxhash64(col).alias("k"))
                      .groupBy("k").agg(F.count(F.lit(1)).alias("n")))
            heavy = counts.where(F.col("n") > m).select(
                "k", (F.lit(float(m)) / F.col("n")).alias("w"),
                F.floor(F.lit(m * 2 ** COUNT_EXPONENT) / F.col("n")).cast("bigint").alias("c")).cache()
            heavy.createOrReplaceTempView(name)
        except Exception:  # messages can name paths or values: not in the response
            raise InternalError(f"the heavy units of {snap.dataset!r} at version {snap.version} could not be counted",
                                details={"dataset": snap.dataset, "version": snap.version}) from None
        return Entry(name, spark, cached=heavy)

    return HEAVY.acquire((*session_key(spark), *identity(snap), unit, m), make)
