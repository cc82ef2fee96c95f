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
        "columns": [{"name": c["name"], "type": c["type"], "role": c["role"]} for c in manifest["schema"]],
    }


def list_readonly(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every dataset of the catalog, ordered by name (as the facade orders them)."""
    stewards: dict[int, list[str]] = {}
    for dataset_id, user_name in conn.execute("SELECT dataset_id, user_name FROM dataset_stewards"):
        stewards.setdefault(dataset_id, []).append(user_name)
    rows = conn.execute("SELECT id, name, provider_kind, manifest, current_version FROM datasets ORDER BY name")
    return [summary(name, kind, json.loads(manifest), stewards.get(i, []), version)
            for i, name, kind, manifest, version in rows]
