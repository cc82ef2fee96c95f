"""Held-out metrics released with DP — the only metrics of the data that leave with a model.

* **histogram** of (predicted probability bin, label): each held-out row falls in exactly one of
  ``2 × BINS`` cells, so L1 sensitivity 1 (add/remove one row); AUC, accuracy, base rate,
  calibration and the held-out row count are computed from the noisy counts only;
* **loss curve**: the held-out loss after up to ``CURVE_POINTS`` epochs (chosen from the epoch
  count alone): per-row loss clipped to ``[0, LOSS_CLIP]``, in fixed point (``LOSS_SCALE`` units),
  summed per epoch; one row moves the whole vector by at most points × LOSS_CLIP × LOSS_SCALE in
  L1. Divided by the histogram's noisy count (post-processing).

Both use discrete Laplace noise from OpenDP (:func:`dp.noise.laplace`); they split
``eval_epsilon`` in half and compose sequentially on the held-out rows. The held-out rows are
disjoint from the training rows (split per row with a CSPRNG, independently of the data), and the
metrics depend on the training rows only through the released model, so the certified ε of the
whole release is max(ε_train, eval_epsilon) (parallel composition). The training loss is never
released: it is a statistic of the training rows that no noise covers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any

import numpy as np

BINS = 20
CURVE_POINTS = 10
LOSS_CLIP = 4.0  # per-row loss bound (BCE of a confidently wrong prediction ≈ 4 at p ≈ 0.98)
LOSS_SCALE = 1000  # fixed point: 1/1000 of a loss unit


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


@dataclass(frozen=True)
class DPLossCurve:
    epsilon: float
    epochs: list[int]  # 1-based epoch after which the held-out loss was taken
    loss: list[float]  # noisy mean clipped loss (noisy sum / noisy held-out count)
    loss_clip: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def curve_epochs(epochs: int, points: int = CURVE_POINTS) -> list[int]:
    """0-based epochs at which the curve is taken: evenly spaced, always the last (data-independent)."""
    if epochs <= points:
        return list(range(epochs))
    return sorted({round(i * (epochs - 1) / (points - 1)) for i in range(points)})


def fixed_point_loss_sum(losses: np.ndarray) -> int:
    """Σ min(max(loss, 0), LOSS_CLIP) in LOSS_SCALE units, each row rounded down (so ≤ the bound)."""
    clipped = np.clip(np.nan_to_num(losses, nan=LOSS_CLIP, posinf=LOSS_CLIP), 0.0, LOSS_CLIP)
    return int(np.floor(clipped * LOSS_SCALE).astype(np.int64).sum())


def dp_loss_curve(epochs: list[int], sums: list[int], epsilon: float, n_noisy: int) -> DPLossCurve:
    from ..noise import laplace

    if not sums:
        return DPLossCurve(epsilon, [], [], LOSS_CLIP)
    sensitivity = len(sums) * int(LOSS_CLIP * LOSS_SCALE)
    noisy = laplace(sums, sensitivity, Fraction(str(epsilon)))
    n = max(n_noisy, 1)
    return DPLossCurve(epsilon, [e + 1 for e in epochs], [round(v / LOSS_SCALE / n, 4) for v in noisy.values],
                       LOSS_CLIP)
