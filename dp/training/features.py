"""Declared, data-independent encoding of the feature snapshot into tensors (numpy here).

Numeric: clip to the declared range, ``log1p`` if declared, scale to [0, 1]; missing → 0.
Categorical: index in the declared list + 1; anything else or missing → 0 ("other").
Label (``bce``): 1 if the value is > 0.5 else 0; rows whose label is missing are dropped (the
count of dropped rows is reported, never which).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import SpecInvalid
from .spec import TrainConfig


@dataclass(frozen=True)
class Encoded:
    x_num: np.ndarray  # float32 [N, n_numeric]
    x_cat: np.ndarray  # int64 [N, n_categorical]
    y: np.ndarray  # float32 [N]
    dropped_missing_label: int

    def __len__(self) -> int:
        return len(self.y)

    def take(self, idx: np.ndarray) -> Encoded:
        return Encoded(self.x_num[idx], self.x_cat[idx], self.y[idx], 0)


def _float_column(values: Sequence[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float(v) if v is not None else np.nan
        except (TypeError, ValueError):
            out[i] = np.nan
    return out


def encode(columns: Mapping[str, Sequence[object]], cfg: TrainConfig) -> Encoded:
    """``columns``: name -> values (e.g. ``pyarrow.Table.to_pydict()``)."""
    missing = [c for c in (*cfg.feature_columns, cfg.label) if c not in columns]
    if missing:
        raise SpecInvalid(f"the feature query does not return the declared column(s) {', '.join(missing)}")
    y_raw = _float_column(columns[cfg.label])
    keep = ~np.isnan(y_raw)
    n = int(keep.sum())
    nums = []
    for f in cfg.numeric:
        v = _float_column(columns[f.name])[keep]
        lo, hi = f.lo, f.hi
        v = np.clip(np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo), lo, hi)
        if f.log:
            v, lo, hi = np.log1p(v), np.log1p(lo), np.log1p(hi)
        nums.append((v - lo) / (hi - lo))
    cats = []
    for f in cfg.categorical:
        index = {c: i + 1 for i, c in enumerate(f.categories)}
        raw = [v for v, k in zip(columns[f.name], keep, strict=True) if k]
        cats.append(np.array([index.get(str(v), 0) if v is not None else 0 for v in raw], dtype=np.int64))
    x_num = np.stack(nums, axis=1).astype(np.float32) if nums else np.zeros((n, 0), np.float32)
    x_cat = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
    y = y_raw[keep]
    if cfg.loss == "bce":
        y = (y > 0.5).astype(np.float32)
    return Encoded(x_num, x_cat, y.astype(np.float32), int((~keep).sum()))


def input_width(cfg: TrainConfig) -> int:
    """Width of the flat input of logreg/mlp: numeric features plus one-hot categories."""
    return len(cfg.numeric) + sum(f.cardinality for f in cfg.categorical)
