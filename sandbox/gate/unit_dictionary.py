"""Dense, stable ids for privacy units, without raw unit values in the catalog.

The differencing guard stores populations as roaring bitmaps of dense ids. Two files make the
ids, both under ``<home>/units/`` (trusted storage, like the tables; never the catalog, the
audit log or a sandbox):

``dictionary/part-<first id>.parquet``
    the warehouse-wide dictionary, append-only: ``HMAC-SHA256(warehouse key, CAST(unit AS
    VARCHAR))`` (first 16 bytes) -> id. One dictionary, so datasets joined on the same unit get
    the same ids; append-only, so an id never changes meaning and the ledger stays valid across
    versions. The number of ids handed out is committed in the catalog (the ``"*"`` row of
    ``differencing_heads``, locked while extending): parts and rows beyond it are leftovers of
    a writer that died and are ignored, then overwritten.
``snapshots/<key>.npz``
    one per (dataset, version, files, unit column, DuckDB version): the snapshot's units as
    DuckDB ``hash(unit)`` (64 bits, sorted) -> id. Built once per table version (:meth:`prepare`,
    a scan, one HMAC per distinct unit, computed inside DuckDB) and then read by every query of
    that version: the engine hands each cell's ``hash(unit)`` list as a numpy array, and
    :meth:`ids` maps it with one sort and one binary search. A hash missing from the sidecar,
    or two units of one snapshot with one hash, fail closed (``InternalError``).

Why a keyed hash and not the values: whoever reads the dictionary learns nothing without the
key (``secrets/``); the unkeyed 64-bit hashes in the sidecars can confirm a guessed value, so
they stay next to the tables they were computed from.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
import threading
from array import array
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyroaring import BitMap
from sqlalchemy import delete, select

from ..catalog.db import Database, DifferencingHead, UnitId
from ..errors import InternalError
from ..tables import objects
from ..tables.snapshot import Snapshot
from ..tables.uris import Location

#: the catalog row whose ``populations`` column counts the ids handed out
DICTIONARY_HEAD = "*"
MAC_BYTES = 16
_CACHE_SIZE = 8


def _pads(key: bytes) -> tuple[bytes, bytes]:
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


def unit_mac(key: bytes, value: str) -> bytes:
    """The dictionary's key for a unit value (what the DuckDB expression below computes)."""
    return hmac.digest(key, value.encode("utf-8"), "sha256")[:MAC_BYTES]


# HMAC-SHA256 inside DuckDB: H(K^opad || H(K^ipad || m)); the pads are query parameters, never SQL text.
_MAC_SQL = "unhex(left(sha256($2::BLOB || unhex(sha256($1::BLOB || encode(CAST({u} AS VARCHAR))))), {n2}))"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(path: str, side: "Sidecar") -> None:
    with open(path, "wb") as fh:  # a file object: np.savez would append ".npz" to a name
        np.savez(fh, hashes=side.hashes, ids=side.ids)


class Sidecar:
    """One snapshot's ``hash(unit) -> id``, sorted by hash, with a bucket index on the hash's top
    bits (hashes are uniform): a lookup is one gather and a step or two, no binary search."""

    def __init__(self, hashes: np.ndarray, ids: np.ndarray) -> None:
        self.hashes, self.ids = hashes, ids
        self._bits = int(min(24, max(8, int(hashes.size).bit_length())))
        buckets = np.arange(2**self._bits + 1, dtype=np.uint64) << np.uint64(64 - self._bits)
        buckets[-1] = np.iinfo(np.uint64).max
        self._starts = np.searchsorted(hashes, buckets[:-1]).astype(np.int64)

    def bitmap(self, values: Any) -> BitMap:
        """The ids of a cell's ``hash(unit)`` values (numpy array or list); fail closed on a miss."""
        try:  # sorted: the gathers below walk forward
            h = np.sort(np.asarray(values, dtype=np.uint64))
        except (TypeError, ValueError, OverflowError):  # not DuckDB hash() values (another engine?)
            raise InternalError("a released cell's units are not DuckDB hash() values") from None
        if h.size == 0:
            return BitMap()
        size = self.hashes.size
        pos = self._starts[(h >> np.uint64(64 - self._bits)).astype(np.int64)]
        todo = np.arange(h.size)
        while todo.size:  # walk each bucket to the value (a bucket holds about one hash)
            p = pos[todo]
            behind = (p < size) & (self.hashes[np.minimum(p, size - 1)] < h[todo])
            todo = todo[behind]
            pos[todo] += 1
        if (pos >= size).any() or not np.array_equal(self.hashes[np.minimum(pos, size - 1)], h):
            raise InternalError("a released cell holds a privacy unit missing from the unit dictionary")
        out = BitMap(array("I", np.sort(self.ids[pos]).tobytes()))  # sorted: built 3x faster
        if len(out) != h.size:  # a unit counted twice: the population would be wrong
            raise InternalError("a released cell lists a privacy unit twice")
        return out


class UnitDictionary:
    """Dense unit ids over ``root`` (``<home>/units``); see the module docstring."""

    def __init__(self, db: Database, root: Path, key: bytes, shared: Location | None = None) -> None:
        self.db, self.root, self._key = db, Path(root), key
        #: the warehouse's shared storage (workers on several machines): the parts live there and
        #: ``root/dictionary`` holds this machine's copies of committed parts only
        self.shared = shared.child("units", "dictionary") if shared is not None else None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Sidecar] = OrderedDict()

    # -- where things are

    def _sidecar_path(self, snap: Snapshot, unit: str) -> Path:
        ident = "\n".join([snap.dataset, snap.table_path, str(snap.version), unit, duckdb.__version__,
                           *sorted(snap.files)])
        return self.root / "snapshots" / f"{hashlib.sha256(ident.encode()).hexdigest()}.npz"

    def _parts(self) -> Path:
        return self.root / "dictionary"

    # -- reading

    def sidecar(self, snap: Snapshot, unit: str) -> Sidecar:
        """The prepared sidecar of ``snap`` (``InternalError`` if :meth:`prepare` never ran)."""
        path = self._sidecar_path(snap, unit)
        with self._lock:
            hit = self._cache.get(path.name)
            if hit is not None:
                self._cache.move_to_end(path.name)
                return hit
        try:
            with np.load(path) as z:
                side = Sidecar(z["hashes"], z["ids"])
        except FileNotFoundError:
            raise InternalError(f"the unit dictionary of {snap.dataset!r} (version {snap.version}) is not "
                                "prepared", details={"dataset": snap.dataset, "version": snap.version}) from None
        with self._lock:
            self._cache[path.name] = side
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return side

    # -- building (once per table version)

    def prepare(self, snap: Snapshot, unit: str) -> Sidecar:
        """Build ``snap``'s sidecar if missing: new units get the next ids (committed first)."""
        path = self._sidecar_path(snap, unit)
        if path.exists():
            return self.sidecar(snap, unit)
        from .scan import snapshot_source  # the one way trusted code reads a snapshot

        con = duckdb.connect(":memory:", config={"temp_directory": ""})
        try:
            source, _ = snapshot_source(con, snap, "__twh_units_src")
            ipad, opad = _pads(self._key)
            u = _quote(unit)
            mac = _MAC_SQL.format(u=u, n2=2 * MAC_BYTES)
            con.execute(f"CREATE TABLE units AS SELECT hash({u}) AS h, {mac} AS mac FROM "
                        f"(SELECT DISTINCT {u} FROM {source} WHERE {u} IS NOT NULL)", [ipad, opad])
            (n, distinct), = con.execute("SELECT count(*), count(DISTINCT h) FROM units").fetchall()
            if n != distinct:  # two units, one 64-bit hash: their populations could not be told apart
                raise InternalError(f"two privacy units of {snap.dataset!r} share a hash",
                                    details={"dataset": snap.dataset, "version": snap.version})
            after_commit: list[tuple[int, pa.Table]] = []
            with self.db.transaction() as s:
                head = s.execute(select(DifferencingHead).where(DifferencingHead.dataset == DICTIONARY_HEAD)
                                 .with_for_update()).scalar_one_or_none()
                if head is None:
                    head = DifferencingHead(dataset=DICTIONARY_HEAD, populations=0)
                    s.add(head)
                    s.flush()
                self._migrate_legacy(s, head, after_commit)
                count = int(head.populations)
                self._attach(con, count)
                new = con.sql("SELECT units.mac FROM units ANTI JOIN known USING (mac) ORDER BY units.mac") \
                    .to_arrow_table()
                con.execute("CREATE TEMP VIEW dict AS SELECT * FROM known")
                if new.num_rows:
                    first = count + 1
                    if count + new.num_rows >= 2**32:  # roaring bitmaps hold 32-bit ids
                        raise InternalError("the unit dictionary is full (2^32 units)")
                    ids = pa.array(np.arange(first, first + new.num_rows, dtype=np.uint64))
                    part = pa.table({"mac": new.column("mac"), "id": ids})
                    self._write_part(first, part, after_commit)
                    head.populations = count + new.num_rows
                    con.register("fresh", part)
                    con.execute("CREATE OR REPLACE TEMP VIEW dict AS SELECT * FROM known UNION ALL "
                                "SELECT mac, CAST(id AS UBIGINT) AS id FROM fresh")
                rows = con.execute("SELECT units.h, dict.id FROM units JOIN dict USING (mac) ORDER BY units.h") \
                    .fetchnumpy()
            # Committed: the ids are the dictionary's now, so the sidecar may name them.
            for first, part in after_commit:
                self._write_local(first, part)
            side = Sidecar(np.asarray(rows["h"], dtype=np.uint64), np.asarray(rows["id"], dtype=np.uint32))
            if side.hashes.size != n:
                raise InternalError("the unit dictionary lost units", details={"dataset": snap.dataset})
            _atomic_write(path, lambda p: _save(p, side))
            return side
        except duckdb.Error as exc:
            raise InternalError(f"the unit dictionary of {snap.dataset!r} could not be built ({type(exc).__name__})",
                                details={"dataset": snap.dataset, "error_class": type(exc).__name__}) from None
        finally:
            con.close()

    def _write_local(self, first: int, part: pa.Table) -> None:
        _atomic_write(self._parts() / f"part-{first:012d}.parquet", lambda p: pq.write_table(part, p))

    def _write_part(self, first: int, part: pa.Table, after_commit: list[tuple[int, pa.Table]]) -> None:
        """Write a new part (inside the transaction that commits its ids). Shared: to the shared
        storage now (a writer that dies leaves a part past the count there, which the next writer
        overwrites under the same row lock) and to this machine's copy only once committed, so the
        copy never holds a part that differs from the committed one."""
        if self.shared is None:
            self._write_local(first, part)
            return
        sink = pa.BufferOutputStream()
        pq.write_table(part, sink)
        objects.write(self.shared.child(f"part-{first:012d}.parquet"), sink.getvalue().to_pybytes())
        after_commit.append((first, part))

    def _pull(self, count: int) -> None:
        """Copy the committed parts (first id <= count) this machine lacks from the shared storage."""
        if self.shared is None:
            return
        have = {p.name for p in self._parts().glob("part-*.parquet")} if self._parts().exists() else set()
        for name in objects.names(self.shared):
            if not (name.startswith("part-") and name.endswith(".parquet")) or name in have:
                continue
            if int(name.removeprefix("part-").removesuffix(".parquet")) > count:
                continue  # not committed (yet, or a dead writer's leftover)
            data = objects.read(self.shared.child(name))
            if data is None:
                raise InternalError("a part of the unit dictionary vanished from the shared storage")
            self._parts().mkdir(mode=0o700, parents=True, exist_ok=True)
            _atomic_write(self._parts() / name, lambda p, data=data: Path(p).write_bytes(data))

    def _attach(self, con: duckdb.DuckDBPyConnection, count: int) -> None:
        """View ``known(mac, id)``: the committed ids (1..count) of every part."""
        self._pull(count)
        parts = sorted(p for p in self._parts().glob("part-*.parquet")
                       if int(p.stem.removeprefix("part-")) <= count) if self._parts().exists() else []
        if parts:
            files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in parts)
            con.execute(f"CREATE OR REPLACE TEMP VIEW known AS SELECT mac, CAST(id AS UBIGINT) AS id "
                        f"FROM read_parquet([{files}]) WHERE id <= {int(count)}")
        else:
            con.execute("CREATE OR REPLACE TEMP VIEW known AS SELECT CAST(NULL AS BLOB) AS mac, "
                        "CAST(NULL AS UBIGINT) AS id WHERE false")

    def _migrate_legacy(self, session: Any, head: DifferencingHead,
                        after_commit: list[tuple[int, pa.Table]]) -> None:
        """Ledgers written before this dictionary used ids from the ``unit_ids`` table, which held
        raw unit values: move them here under their keyed hashes (same ids) and empty the table."""
        rows = session.execute(select(UnitId.id, UnitId.value).order_by(UnitId.id)).all()
        if not rows:
            return
        count = int(head.populations)
        fresh = [(unit_mac(self._key, v), i) for i, v in rows if i > count]
        if fresh:
            part = pa.table({"mac": pa.array([m for m, _ in fresh], pa.binary()),
                             "id": pa.array([i for _, i in fresh], pa.uint64())})
            self._write_part(fresh[0][1], part, after_commit)
            head.populations = max(count, max(i for _, i in fresh))
        session.execute(delete(UnitId))
        session.flush()
