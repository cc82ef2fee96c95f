"""What ``dataset list`` shows of a dataset, computed in one place for the facade and the quick path.

    summary(name, provider_kind, manifest, stewards, current_version)   # a JSON-ready dict
    list_readonly(conn)                                                 # every dataset, by name

:func:`list_readonly` reads a read-only SQLite catalog (:mod:`sandbox.catalog.readonly`) with the
standard library: ``twh dataset list`` in local mode without importing SQLAlchemy. It must list
exactly what :meth:`sandbox.datasets.service.Datasets.list` lists
(``tests/interfaces/cli/test_quick_list.py`` compares them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any

__all__ = ["list_readonly", "summary"]


def summary(name: str, provider_kind: str, manifest: dict[str, Any], stewards: Iterable[str],
            current_version: int) -> dict[str, Any]:
    return {
        "name": name,
        "provider_kind": provider_kind,
        "title": manifest.get("title", ""),
        "stewards": sorted(stewards),
        "current_version": current_version,
        "columns": [{"name": c["name"], "type": c["type"], "role": c["role"], "grade": c.get("grade"),
                     "pi": c.get("pi") or "none"} for c in manifest["schema"]],
        "classification": labels(manifest, name),
    }


def labels(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    """The classification labels (GB/T 43697) of a stored, validated manifest: what
    :meth:`~sandbox.datasets.manifest.DatasetManifest.labels` gives, read off the dict without
    pydantic (the quick path; ``tests/interfaces/cli/test_quick_list.py`` holds the two equal)."""
    c = manifest.get("classification") or None
    pi = {col.get("pi") or "none" for col in manifest["schema"]}
    return {"grade": c["grade"] if c else "unclassified", "category": c.get("category") if c else None,
            "basis": (c.get("basis") or "") if c else "",
            "personal_information": bool(pi & {"personal", "sensitive"}),
            "sensitive_personal_information": "sensitive" in pi,
            "senior_stewards": list(manifest.get("senior_stewards") or [])}


def list_readonly(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every dataset of the catalog, ordered by name (as the facade orders them)."""
    stewards: dict[int, list[str]] = {}
    for dataset_id, user_name in conn.execute("SELECT dataset_id, user_name FROM dataset_stewards"):
        stewards.setdefault(dataset_id, []).append(user_name)
    rows = conn.execute("SELECT id, name, provider_kind, manifest, current_version FROM datasets ORDER BY name")
    return [summary(name, kind, json.loads(manifest), stewards.get(i, []), version)
            for i, name, kind, manifest, version in rows]
