"""A small Delta table with a privacy unit, and dp policies over it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from policies import Policy, load_policy
from sandbox import storage
from sandbox.gate import TableInfo
from sandbox.snapshot import Snapshot

COLUMNS = ("unit", "industry", "amount", "flag")
ROLES = {"unit": "join_key", "industry": "dimension", "amount": "measure", "flag": "measure"}


def dp_policy(**dp: Any) -> Policy:
    rules = {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]},
             "budget": {"epsilon": 1, "delta": 1e-6}, "epsilon_per_query": 0.5, "delta_per_query": 1e-7,
             "public_keys": {"industry": ["C", "F", "G", "K"]}, **dp}
    return load_policy({"tenants": ["*"], "purposes": ["x"], "columns": ROLES, "privacy_unit": "unit",
                        "release_mode": "dp", "dp": rules})


def write_table(path: Path, n: int = 20_000, units: int = 2_000, extra: dict[str, Any] | None = None) -> Snapshot:
    rng = np.random.default_rng(0)
    data = {"unit": [f"U{i}" for i in rng.integers(0, units, n)],
            "industry": list(np.array(list("CFG"))[rng.integers(0, 3, n)]),
            "amount": rng.lognormal(4, 1, n), "flag": rng.integers(0, 2, n)}
    if extra:
        for k, v in extra.items():
            data[k] = list(data[k]) + list(v)
    write_deltalake(str(path), pa.table(data))
    return storage.pin_snapshot(path, "loans")


def info(policy: Policy) -> TableInfo:
    return TableInfo("loans", policy, COLUMNS)
