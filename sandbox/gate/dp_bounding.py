"""Heavy privacy units of a pinned snapshot: ``hash(unit) → m / N`` for units with N > m rows.

Computed once per (snapshot, unit column, m) by trusted code and cached in this process; the
dp rewrite LEFT JOINs it so that each such unit's rows weigh m/N (at most m in all). Never
shown to anyone: it is an input of the engine only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import duckdb
import pyarrow as pa

from ..errors import InternalError
from ..snapshot import Snapshot
from .engine import snapshot_source

_CACHE: OrderedDict[tuple[str, int, str, int], pa.Table] = OrderedDict()
_LOCK = threading.Lock()
MAX_CACHED = 32


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def heavy_units(snap: Snapshot, unit: str, max_rows: int) -> pa.Table:
    key = (snap.table_path, snap.version, unit, max_rows)
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    table = _compute(snap, unit, max_rows)
    with _LOCK:
        _CACHE[key] = table
        while len(_CACHE) > MAX_CACHED:
            _CACHE.popitem(last=False)
    return table


def _compute(snap: Snapshot, unit: str, max_rows: int) -> pa.Table:
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "python_enable_replacements": False})
    try:
        source, _files = snapshot_source(con, snap, "__twh_src")
        m = int(max_rows)
        return con.sql(f"SELECT hash({_quote_ident(unit)}) AS k, CAST({m} AS DOUBLE) / COUNT(*) AS w "
                       f"FROM {source} GROUP BY 1 HAVING COUNT(*) > {m}").to_arrow_table()
    except duckdb.Error as exc:
        raise InternalError(f"contribution bounds of {snap.dataset!r} could not be computed "
                            f"({type(exc).__name__})") from None
    finally:
        con.close()
