"""Heavy privacy units of a pinned snapshot: ``hash(unit) → m / N`` (and ``c = floor(m·2**10 / N)``)
for units with N > m rows.

Computed once per (snapshot, unit column, m) by trusted code and cached in this process; the
dp rewrite LEFT JOINs it so that each such unit's rows weigh m/N (at most m in all). Never
shown to anyone: it is an input of the engine only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import duckdb
import pyarrow as pa

from dp.grid import COUNT_EXPONENT

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


def engine_sql(plan: Any, snapshots: Mapping[str, Snapshot]) -> str:
    """The SQL to run for ``plan``: its light form (no heavy-unit join, weights 1) when the dp
    plan has one and no unit of the pinned snapshots exceeds its m rows, else ``engine_sql``.

    Both compute identical integers (weight 1 for a unit not in the heavy table), so the choice
    changes nothing released; it only skips reading and hashing the unit column (the tables are
    cached per snapshot: the check costs a dictionary lookup)."""
    dpp = plan.dp
    if dpp is None or not dpp.light_sql:
        return str(plan.engine_sql)
    if all(heavy_units(snapshots[h.dataset], h.unit, h.max_rows).num_rows == 0 for h in dpp.heavy):
        return str(dpp.light_sql)
    return str(plan.engine_sql)


def _compute(snap: Snapshot, unit: str, max_rows: int) -> pa.Table:
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False,
                                             "python_enable_replacements": False})
    try:
        source, _files = snapshot_source(con, snap, "__twh_src")
        m = int(max_rows)
        # c: the count weight in 2**-10 steps, rounded down, so a unit's rows add up to at most
        # m * 2**10; the sums use w = c / 2**10 too (exact), so no float rounding can exceed m.
        return con.sql(f"SELECT hash({_quote_ident(unit)}) AS k, CAST({m} AS DOUBLE) / COUNT(*) AS w, "
                       f"CAST(FLOOR({m} * {2 ** COUNT_EXPONENT} / COUNT(*)) AS BIGINT) AS c "
                       f"FROM {source} GROUP BY 1 HAVING COUNT(*) > {m}").to_arrow_table()
    except duckdb.Error as exc:
        raise InternalError(f"contribution bounds of {snap.dataset!r} could not be computed "
                            f"({type(exc).__name__})") from None
    finally:
        con.close()
