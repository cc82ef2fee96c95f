"""Held-out metrics released with DP: one noisy histogram of (predicted probability bin, label).

Each held-out row falls in exactly one of ``2 × BINS`` cells, so the histogram has L1
sensitivity 1 (add/remove one row); discrete Laplace noise from OpenDP (:func:`dp.noise.laplace`)
at ``eval_epsilon``. The held-out rows are disjoint from the training rows (the split is drawn
per row with a CSPRNG, independently of the data), so by parallel composition the model's
certified ε covers both. Everything below (AUC, accuracy, base rate, calibration) is computed
from the noisy counts only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

BINS = 20


@dataclass(frozen=True)
class DPMetrics:
    epsilon: float
    bins: int
    noisy_positives: list[int]  # per probability bin
    noisy_negatives: list[int]
    auc: float
    accuracy: float
    base_rate: float
    n_noisy: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def histogram(prob: np.ndarray, y: np.ndarray, bins: int = BINS) -> tuple[np.ndarray, np.ndarray]:
    idx = np.clip((prob * bins).astype(int), 0, bins - 1)
    pos = np.bincount(idx[y > 0.5], minlength=bins)
    neg = np.bincount(idx[y <= 0.5], minlength=bins)
    return pos, neg


def metrics_from_hist(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float, float]:
    """AUC (ties within a bin count half), accuracy at 0.5, base rate — from (noisy) counts."""
    pos, neg = np.maximum(pos, 0).astype(float), np.maximum(neg, 0).astype(float)
    p_tot, n_tot = pos.sum(), neg.sum()
    if p_tot == 0 or n_tot == 0:
        return float("nan"), float("nan"), float(p_tot / max(p_tot + n_tot, 1))
    below = np.cumsum(neg) - neg  # negatives in lower bins
    auc = float((pos * (below + 0.5 * neg)).sum() / (p_tot * n_tot))
    half = len(pos) // 2
    acc = float((pos[half:].sum() + neg[:half].sum()) / (p_tot + n_tot))
    return auc, acc, float(p_tot / (p_tot + n_tot))


def dp_holdout_metrics(prob: np.ndarray, y: np.ndarray, epsilon: float, bins: int = BINS) -> DPMetrics:
    from ..noise import laplace

    pos, neg = histogram(prob, y, bins)
    noisy = laplace([int(v) for v in np.concatenate([pos, neg])], 1, Fraction(str(epsilon)))
    values = np.array(list(noisy.values), dtype=np.int64)
    npos, nneg = values[:bins], values[bins:]
    auc, acc, base = metrics_from_hist(npos, nneg)
    return DPMetrics(epsilon, bins, npos.tolist(), nneg.tolist(), auc, acc, base, int(np.maximum(values, 0).sum()))
