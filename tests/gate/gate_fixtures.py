"""Tiny Delta tables, their policies and pinned snapshots, shared by the gate's tests.

Two datasets modelled on the flagship scenario: an enterprise registry (one row per enterprise,
privacy unit ``uscc``) and a bank's loans (several loans per enterprise, threshold 20).
Groups are skewed on purpose so that some are below the thresholds.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from policies import Policy, load_policy
from sandbox.errors import NotFound
from sandbox.gate import TableInfo
from sandbox.tables.record_keys import RECORD_KEY, fresh_keys
from sandbox.tables.snapshot import Snapshot

INDUSTRIES = ["C"] * 40 + ["F"] * 25 + ["G"] * 20 + ["K"] * 12 + ["Z"] * 3  # Z: a small group
DISTRICTS = ["yubei"] * 5 + ["jiangbei"] * 3 + ["banan"] * 1


def registry_frame(n: int = 300, seed: int = 7) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "uscc": f"91500000{i:010d}",
                "name": f"Firm {i}",
                "industry": rng.choice(INDUSTRIES),
                "district": rng.choice(DISTRICTS),
                "reg_date": dt.date(2010, 1, 1) + dt.timedelta(days=rng.randrange(0, 5000)),
                "capital": round(rng.uniform(1e4, 1e7), 2),
                "employees": rng.choice([None, rng.randrange(1, 500)]) if i % 7 == 0 else rng.randrange(1, 500),
                "active": rng.random() < 0.8,
            }
        )
    return pd.DataFrame(rows)


def loans_frame(registry: pd.DataFrame, n: int = 900, seed: int = 11) -> pd.DataFrame:
    rng = random.Random(seed)
    ids = list(registry["uscc"])
    rows = []
    for i in range(n):
        rows.append(
            {
                "loan_id": f"L{i:06d}",
                "uscc": rng.choice(ids),
                "term": rng.choice([12, 24, 36, 36, 60]),
                "defaulted": 1 if rng.random() < 0.1 else 0,
                # most amounts known; a few only for term 60 so that a SUM can rest on few firms
                "amount": round(rng.uniform(1e4, 5e6), 2) if rng.random() < 0.9 else None,
            }
        )
    return pd.DataFrame(rows)


REGISTRY_TYPES = pa.schema(
    [
        ("uscc", pa.string()), ("name", pa.string()), ("industry", pa.string()), ("district", pa.string()),
        ("reg_date", pa.date32()), ("capital", pa.float64()), ("employees", pa.int64()), ("active", pa.bool_()),
    ]
)
LOANS_TYPES = pa.schema(
    [("loan_id", pa.string()), ("uscc", pa.string()), ("term", pa.int64()), ("defaulted", pa.int64()),
     ("amount", pa.float64())]
)

REGISTRY_POLICY: dict[str, Any] = {
    "tenants": ["bank_a"],
    "purposes": ["credit_risk"],
    "columns": {
        "uscc": "join_key", "name": "identifier", "industry": "dimension", "district": "dimension",
        "reg_date": "dimension", "capital": "measure", "employees": "measure", "active": "dimension",
    },
    "privacy_unit": "uscc",
    # these fixtures check the exact SDC rules against ACRO and pandas (all digits kept); the
    # cell-key perturbation and the rounding have tests of their own (test_gate_cellkey.py)
    "output": {"min_group_size": 10, "significant_digits": 17},
    # measures are group keys only through WIDTH_BUCKET on public edges the steward declares
    "sdc": {"perturbation": "none", "bucket_edges": {
        "capital": [0, 1e6, 2e6, 2.5e6, 3e6, 4e6, 5e6, 6e6, 7e6, 7.5e6, 8e6, 9e6, 1e7],
        "employees": [0, 100, 200, 300, 400, 500]}},
}
LOANS_POLICY: dict[str, Any] = {
    "tenants": ["bank_a"],
    "purposes": ["credit_risk"],
    "columns": {"loan_id": "identifier", "uscc": "join_key", "term": "dimension", "defaulted": "measure",
                "amount": "measure"},
    "privacy_unit": "uscc",
    "output": {"min_group_size": 20, "significant_digits": 17},
    "sdc": {"perturbation": "none"},
}


def write_table(path: Path, df: pd.DataFrame, schema: pa.Schema, *, record_keys: Any = None, **kwargs: Any) -> None:
    """Write ``df`` as a warehouse table: the declared columns and a record key per row (fresh
    ones from the CSPRNG, or ``record_keys`` when a test needs to know them)."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    keys = fresh_keys(table.num_rows) if record_keys is None else pa.array(
        [k - 2 ** 32 if k >= 2 ** 31 else k for k in record_keys], type=pa.int32())  # as stored: signed 32-bit
    write_deltalake(str(path), table.append_column(pa.field(RECORD_KEY, pa.int32(), nullable=False), keys), **kwargs)


def snapshot_of(path: Path, name: str, version: int | None = None, *, needs_delta_reader: bool = False) -> Snapshot:
    table = DeltaTable(str(path), version=version)
    files = tuple(str(Path(f).resolve()) for f in table.file_uris())
    return Snapshot(
        dataset=name,
        table_path=str(path),
        version=table.version(),
        files=files,
        needs_delta_reader=needs_delta_reader,
        columns=tuple(f.name for f in table.schema().fields),
    )


@dataclass
class Tables:
    infos: dict[str, TableInfo]
    snapshots: dict[str, Snapshot]
    frames: dict[str, pd.DataFrame]
    root: Path

    def lookup(self, name: str) -> TableInfo:
        try:
            return self.infos[name]
        except KeyError:
            raise NotFound(f"dataset {name!r} does not exist", details={"dataset": name}) from None


def table_info(name: str, policy: Policy | dict[str, Any], schema: pa.Schema) -> TableInfo:
    p = policy if isinstance(policy, Policy) else load_policy(policy)
    return TableInfo(name=name, policy=p, columns=tuple(schema.names))


@pytest.fixture(scope="session")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Tables:
    root = tmp_path_factory.mktemp("warehouse")
    reg = registry_frame()
    loans = loans_frame(reg)
    write_table(root / "registry", reg, REGISTRY_TYPES)
    write_table(root / "loans", loans, LOANS_TYPES)
    infos = {
        "registry": table_info("registry", REGISTRY_POLICY, REGISTRY_TYPES),
        "loans": table_info("loans", LOANS_POLICY, LOANS_TYPES),
    }
    snaps = {"registry": snapshot_of(root / "registry", "registry"), "loans": snapshot_of(root / "loans", "loans")}
    return Tables(infos, snaps, {"registry": reg, "loans": loans}, root)


@pytest.fixture(scope="session")
def lookup(tables: Tables) -> Callable[[str], TableInfo]:
    return tables.lookup
