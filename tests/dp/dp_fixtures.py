"""A small Delta table with a privacy unit, and dp policies over it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

from policies import Policy, load_policy
from sandbox.gate import TableInfo
from sandbox.tables import storage
from sandbox.tables.snapshot import Snapshot

COLUMNS = ("unit", "industry", "amount", "flag")
ROLES = {"unit": "join_key", "industry": "dimension", "amount": "measure", "flag": "measure"}


def dp_policy(*, output: dict[str, Any] | None = None, **dp: Any) -> Policy:
    rules = {"max_rows_per_unit": 5, "bounds": {"amount": [0, 500]},
             "budget": {"epsilon": 1, "delta": 1e-6}, "epsilon_per_query": 0.5, "delta_per_query": 1e-7,
             "public_keys": {"industry": ["C", "F", "G", "K"]}, **dp}
    return load_policy({"tenants": ["*"], "purposes": ["x"], "columns": ROLES, "privacy_unit": "unit",
                        "release_mode": "dp", "dp": rules, **({"output": output} if output else {})})


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


def empirical_epsilon(a: np.ndarray, b: np.ndarray, z: float = 4.0, width: float = 1.0) -> float:
    """A conservative lower bound on ε from samples of M(D) and M(D') (histogram ratio).

    For each outcome bucket with enough mass, a lower confidence bound on p/q (Clopper-Pearson
    style normal bounds with z standard errors on both sides); the largest log-ratio is an
    estimate of ε that is, with high probability, not above the true ε. ``width``: outcomes are
    bucketed by ``floor(x / width)`` first (any event obeys the bound), so widely spread noise
    still has mass per bucket.
    """
    a, b = np.floor(np.asarray(a) / width), np.floor(np.asarray(b) / width)
    best = 0.0
    values = np.union1d(a, b)
    for v in values:
        ka, kb = int((a == v).sum()), int((b == v).sum())
        if min(ka, kb) < 200:
            continue
        pa, pb = ka / len(a), kb / len(b)
        sa, sb = math.sqrt(pa * (1 - pa) / len(a)), math.sqrt(pb * (1 - pb) / len(b))
        lo = (pa - z * sa) / (pb + z * sb)
        hi = (pb - z * sb) / (pa + z * sa)
        best = max(best, math.log(lo) if lo > 0 else 0.0, math.log(hi) if hi > 0 else 0.0)
    return best
