"""Heavy privacy units of a pinned snapshot: ``hash(unit) → m / N`` (and ``c = floor(m·2**10 / N)``)
for units with N > m rows, and the snapshot's *bounded copy*.

The heavy-unit table is computed once per (snapshot, unit column, m) by trusted code and cached
in this process; the dp rewrite LEFT JOINs it so that each such unit's rows weigh m/N (at most m
in all). Never shown to anyone: it is an input of the engine only.

A join costs every query a read, a hash and a probe of the unit column per row (≈ 8× the raw
query at 10M rows / 1M units). So with one dataset, DuckDB reads a **bounded copy** instead:
the snapshot's dimensions and measures plus each row's count weight ``c`` (``2**10`` for a unit
within m rows), written once per (snapshot, unit, m, columns) as Parquet under the warehouse
home (:func:`bounded_copy`) and read with ``DpPlan.bounded_sql``, whose integers are those of the
join plan (the copy weighs units by value, the join by a 64-bit hash: they differ only where two
units share a hash, which the join bounds together). Which plan runs (:func:`choose`) depends on
the data only through "some unit exceeds m", which the released distribution does not.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from dp.grid import COUNT_EXPONENT

from ..errors import InternalError
from ..tables.snapshot import Snapshot
from .scan import quote_ident, snapshot_source

_CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False,
           "python_enable_replacements": False}
_CACHE: OrderedDict[tuple[str, int, str, int], pa.Table] = OrderedDict()
_LOCK = threading.Lock()
MAX_CACHED = 32


def heavy_units(snap: Snapshot, unit: str, max_rows: int, directory: Path | None = None) -> pa.Table:
    """The heavy-unit table of a snapshot: cached in this process and, given ``directory`` (the
    bounded copies' folder), stored beside the copies, so another process (a worker, the next
    ``twh`` command) reads it instead of scanning the unit column again."""
    key = (snap.table_path, snap.version, unit, max_rows)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    stored = _heavy_path(snap, unit, max_rows, directory) if directory is not None else None
    table = _read_stored(stored) if stored is not None else None
    if table is None:
        table = _compute(snap, unit, max_rows)
        if stored is not None:
            _store(table, stored)
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > MAX_CACHED:
            _CACHE.popitem(last=False)
    return table


@dataclass(frozen=True)
class DpRun:
    """How DuckDB runs a dp plan: the SQL, and per dataset a bounded copy its view reads instead
    of the snapshot's files (then no heavy-unit table is registered)."""

    sql: str
    #: dataset -> the bounded copy's Parquet file
    copies: dict[str, str] = field(default_factory=dict)
    #: whether ``sql`` joins the heavy-unit tables (they must be registered)
    joins_heavy: bool = True


def engine_sql(plan: Any, snapshots: Mapping[str, Snapshot]) -> str:
    """The SQL to run for ``plan`` without bounded copies (see :func:`choose`)."""
    return choose(plan, snapshots, None).sql


def choose(plan: Any, snapshots: Mapping[str, Snapshot], copies_dir: Path | None) -> DpRun:
    """The plan to run: the light form (no heavy-unit join, weights 1) when no unit of the pinned
    snapshots exceeds its m rows; else, given ``copies_dir``, ``bounded_sql`` over the bounded
    copy; else ``engine_sql`` (the join).

    All three compute identical integers (weight 2**10 for a unit not in the heavy table; the copy
    weighs units by value, so it differs from the join only for two units sharing a hash), so the
    choice changes nothing released; it only skips reading, hashing and probing the unit column
    (the heavy tables are cached per snapshot: the check costs a dictionary lookup)."""
    dpp = plan.dp
    if dpp is None or not dpp.light_sql:
        return DpRun(str(plan.engine_sql))
    if all(heavy_units(snapshots[h.dataset], h.unit, h.max_rows, copies_dir).num_rows == 0 for h in dpp.heavy):
        return DpRun(str(dpp.light_sql), joins_heavy=False)
    if copies_dir is not None and dpp.bounded_sql:
        (h,) = dpp.heavy
        snap = snapshots[h.dataset]
        present = {c.casefold() for c in snap.columns}
        columns = tuple(c for c in dpp.bounded_columns if c.casefold() in present)
        wanted = {c.casefold() for c in plan.columns_of(h.dataset)} - {h.unit.casefold()}
        if wanted <= {c.casefold() for c in columns}:  # else the join plan (and its checks) runs
            path = bounded_copy(snap, h.unit, h.max_rows, columns, copies_dir)
            return DpRun(str(dpp.bounded_sql), {h.dataset: path}, joins_heavy=False)
    return DpRun(str(plan.engine_sql))


#: format of the bounded copies: part of their key, so a change never reads an old file
COPY_FORMAT = 1
#: copies of versions older than a dataset's two newest are deleted once unused this long (a job
#: pins its versions for at most its wall-clock limit; a later query of an old version rebuilds)
STALE_COPY_S = 3600.0
_BUILDING: dict[str, threading.Lock] = {}


def bounded_copy(snap: Snapshot, unit: str, max_rows: int, columns: tuple[str, ...], directory: Path) -> str:
    """The path of the snapshot's bounded copy: ``columns`` of every row plus the row's count weight
    ``__twh_c = floor(m·2**10 / N)`` for a unit of N > m rows, else ``2**10``. Written once (to a temporary file,
    then renamed: a reader never sees half a copy; two processes may both build, the last rename
    wins with the same rows), then reused by every dp query of that snapshot."""
    from .dp_plan import WEIGHT_COLUMN

    body = {"table": snap.table_path, "version": snap.version, "unit": unit, "m": int(max_rows),
            "columns": list(columns), "format": COPY_FORMAT, "duckdb": duckdb.__version__}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    folder = Path(directory) / hashlib.sha256(snap.table_path.encode()).hexdigest()[:16]
    path = folder / f"v{snap.version}-{key}.parquet"
    with _LOCK:
        building = _BUILDING.setdefault(key, threading.Lock())
    with building:
        if path.exists():
            os.utime(path)  # in use: not stale (see _prune)
            return str(path)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        # a large table may spill: into the copies' own folder under the home, never DuckDB's default
        # ./.tmp of whatever directory the service was started in
        con = duckdb.connect(":memory:", config={**_CONFIG, "temp_directory": str(Path(directory) / ".spill")})
        try:
            source, _files = snapshot_source(con, snap, "__twh_src")
            u, m, one = quote_ident(unit), int(max_rows), 2 ** COUNT_EXPONENT
            projected = ", ".join(f"s.{quote_ident(c)}" for c in columns)
            # Weights by the unit's value, not its hash: written once, so exactness is affordable here
            # (two units sharing a 64-bit hash would otherwise be bounded together, and adding one
            # could change the other's weight). NULL units are one unit, as in GROUP BY.
            con.execute(f"COPY (SELECT {projected}{', ' if projected else ''}"
                        f"CAST(COALESCE(h.c, {one}) AS INTEGER) AS {quote_ident(WEIGHT_COLUMN)} "
                        f"FROM {source} AS s LEFT JOIN (SELECT {u} AS u, CAST(FLOOR({m} * {one} / COUNT(*)) AS BIGINT) "
                        f"AS c FROM {source} GROUP BY 1 HAVING COUNT(*) > {m}) AS h ON s.{u} IS NOT DISTINCT FROM h.u) "
                        f"TO '{_quote_path(tmp)}' (FORMAT parquet)")
            os.replace(tmp, path)
        except duckdb.Error as exc:
            raise InternalError(f"the bounded copy of {snap.dataset!r} could not be written "
                                f"({type(exc).__name__})") from None
        finally:
            con.close()
            tmp.unlink(missing_ok=True)
        _prune(folder, keep=path)
    return str(path)


def _heavy_path(snap: Snapshot, unit: str, max_rows: int, directory: Path) -> Path:
    body = {"table": snap.table_path, "version": snap.version, "unit": unit, "m": int(max_rows),
            "format": COPY_FORMAT, "duckdb": duckdb.__version__, "what": "heavy"}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    folder = Path(directory) / hashlib.sha256(snap.table_path.encode()).hexdigest()[:16]
    return folder / f"v{snap.version}-{key}.heavy.parquet"


def _read_stored(path: Path) -> pa.Table | None:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None  # not written yet (or half of a crashed write: never renamed into place)
    return table if table.schema.names == ["k", "w", "c"] else None


def _store(table: pa.Table, path: Path) -> None:
    """Write once, to a temporary file then renamed (a reader never sees half); best effort."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError:
        pass  # the next process computes it again
    finally:
        tmp.unlink(missing_ok=True)


def prepare_version(snap: Snapshot, info: Any, directory: Path) -> str | None:
    """Build, for a version just committed, what its first dp query would otherwise build: the
    heavy-unit table (stored) and, when some unit has more than m rows, the bounded copy — the
    very files :func:`choose` looks up (same columns, same key). For a dataset in dp mode with a
    privacy unit (``info`` is its :class:`~.plan.TableInfo`); returns the copy's path, or None
    when there is nothing to build (no dp, or no heavy unit: the light plan reads the snapshot)."""
    from policies import ColumnRole, PolicyError, column_role

    policy = info.policy
    if policy.release_mode != "dp" or policy.dp is None or policy.privacy_unit is None:
        return None
    unit = [c for c in info.columns if c.casefold() == policy.privacy_unit.casefold()]
    if not unit:
        return None
    m = policy.dp.max_rows_per_unit
    if heavy_units(snap, unit[0], m, directory).num_rows == 0:
        return None

    def role(column: str) -> Any:
        try:
            return column_role(policy, column)
        except PolicyError:  # a column the policy gives no role: not in the copy (as dp_plan._role)
            return None

    present = {c.casefold() for c in snap.columns}
    columns = tuple(c for c in info.columns if role(c) in (ColumnRole.DIMENSION, ColumnRole.MEASURE)
                    and c.casefold() in present)
    return bounded_copy(snap, unit[0], m, columns, directory)


def _quote_path(path: Path) -> str:
    return str(path).replace("'", "''")


def _prune(folder: Path, keep: Path) -> None:
    """Delete copies of all but the two newest versions of this table that nobody used lately."""
    files = [f for f in folder.glob("v*-*.parquet") if f != keep]
    versions = sorted({int(f.name[1:].split("-", 1)[0]) for f in files} | {int(keep.name[1:].split("-", 1)[0])})
    newest = set(versions[-2:])
    now = time.time()
    for f in files:
        try:
            if int(f.name[1:].split("-", 1)[0]) not in newest and now - f.stat().st_mtime > STALE_COPY_S:
                f.unlink()
        except (OSError, ValueError):
            continue  # another process pruned it, or a name we did not write


def _compute(snap: Snapshot, unit: str, max_rows: int) -> pa.Table:
    con = duckdb.connect(":memory:", config={**_CONFIG, "temp_directory": ""})  # one column aggregated: no spill
    try:
        source, _files = snapshot_source(con, snap, "__twh_src")
        m = int(max_rows)
        # c: the count weight in 2**-10 steps, rounded down, so a unit's rows add up to at most
        # m * 2**10; the sums use w = c / 2**10 too (exact), so no float rounding can exceed m.
        return con.sql(f"SELECT hash({quote_ident(unit)}) AS k, CAST({m} AS DOUBLE) / COUNT(*) AS w, "
                       f"CAST(FLOOR({m} * {2 ** COUNT_EXPONENT} / COUNT(*)) AS BIGINT) AS c "
                       f"FROM {source} GROUP BY 1 HAVING COUNT(*) > {m}").to_arrow_table()
    except duckdb.Error as exc:
        raise InternalError(f"contribution bounds of {snap.dataset!r} could not be computed "
                            f"({type(exc).__name__})") from None
    finally:
        con.close()
