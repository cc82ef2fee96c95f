"""Shared helpers for the ingest tests: a small market dataset and a way to register variants of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox.datasets.manifest import parse_manifest

PRICES = {
    "name": "prices",
    "provider_kind": "market",
    "title": "Daily prices",
    "stewards": ["bank_steward"],
    "schema": [
        {"name": "code", "type": "string", "role": "join_key", "nullable": False},
        {"name": "day", "type": "date", "role": "dimension", "nullable": False},
        {"name": "price", "type": "float64", "role": "measure", "min": 0, "max": 1000},
    ],
    "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "price", "min_value": 0}}],
    "policy": {"tenants": ["bank_a"], "purposes": ["credit_risk"], "output": {"min_group_size": 3}},
}


def manifest(**changes: Any) -> dict[str, Any]:
    m = {k: (list(v) if isinstance(v, list) else v) for k, v in PRICES.items()}
    m.update(changes)
    return m


def register(wh: Any, people: dict, **changes: Any) -> str:
    m = parse_manifest(manifest(**changes))
    wh.datasets.register(people["bank_steward"], m)
    return m.name


def write_csv(path: Path, rows: list[tuple], header: str = "code,day,price") -> Path:
    path.write_text(header + "\n" + "".join(",".join(str(x) for x in r) + "\n" for r in rows), encoding="utf-8")
    return path


def table_rows(wh: Any, name: str) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    with wh.db.read() as s:
        from sandbox.context import get_dataset

        ds = get_dataset(s, name)
        path, version = ds.table_path, ds.current_version
    from sandbox.tables.record_keys import RECORD_KEY

    table = DeltaTable(path, version=version).to_pyarrow_table()
    # every landed row carries a secret record key (sandbox.tables.record_keys); the rows are the rest
    assert RECORD_KEY in table.column_names and table.column(RECORD_KEY).null_count == 0
    return sorted(table.drop_columns([RECORD_KEY]).to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))
