"""Lineage: what each Delta version of a dataset is made of.

One entry per Delta version, oldest first, joining the Delta log (operation, time, our commit
metadata: load id, mode, connector, content hash, watermark) with the catalog's lineage record
(source, file name or masked URL and query, rows in / out / quarantined, validation result).
A version the catalog never recorded (a crash between commit and catalog update, before the
retry repaired it) is shown with ``recorded: false``: queries never pin it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..auth import Principal
from ..catalog.db import DatasetVersion
from ..context import Context, get_dataset
from ..tables import storage


def history(ctx: Context, principal: Principal, name: str) -> dict[str, Any]:
    """Every version of ``name`` with its lineage (any signed-in user: it holds no data values)."""
    with ctx.db.read() as s:
        ds = get_dataset(s, name)
        recorded = {v.version: v for v in s.execute(
            select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id)).scalars()}
        current = ds.current_version
        table = ctx.table(ds.table_path)
        catalog = {v: {"load_id": r.load_id, "rows": r.rows, "lineage": r.lineage,
                       "recorded_at": r.created_at.isoformat()} for v, r in recorded.items()}
    out = []
    for commit in storage.history(table):
        v = commit["version"]
        meta = commit["metadata"]
        entry: dict[str, Any] = {"version": v, "timestamp": commit["timestamp"], "operation": commit["operation"],
                                 "load_id": meta.get("twh.load_id"), "mode": meta.get("twh.mode"),
                                 "connector": meta.get("twh.connector"), "recorded": v in catalog or v == 0,
                                 "current": v == current, "delta_metrics": commit.get("metrics", {})}
        lineage = (catalog.get(v) or {}).get("lineage") or {}
        if lineage:
            entry.update({
                "source": lineage.get("source") or {"file_name": lineage.get("file_name")},
                "connector": lineage.get("connector", entry["connector"]),
                "source_sha256": lineage.get("source_sha256") or lineage.get("content_sha256"),
                "query": lineage.get("query"),
                "rows_in": lineage.get("rows_in", lineage.get("rows")),
                "rows_out": lineage.get("rows_out", lineage.get("rows")),
                "rows_quarantined": lineage.get("rows_quarantined", 0),
                "validation": lineage.get("validation"),
            })
            for k in ("watermark", "merge", "migration", "recovered"):
                if k in lineage:
                    entry[k] = lineage[k]
        elif v == 0:
            entry["source"] = {"operation": "register"}
        out.append(entry)
    return {"dataset": name, "current_version": current, "versions": out}
