"""Membership inference before release: can an attacker tell training rows from held-out rows?

Two attacks on the released model's outputs, members = training rows, non-members = held-out
rows (equal numbers, drawn at random):

* **loss threshold, worst case** (Yeom et al. 2018; the per-example-loss score LiRA calibrates):
  the attacker knows each record and its label and thresholds the model's loss on it. We
  report the whole ROC: AUC, membership advantage max(TPR − FPR), TPR at FPR 1% and 0.1%.
* **sacroml's worst-case attack** (a classifier trained on the sorted output probabilities,
  repeated over splits) when ``sacroml`` is available; its AUC and advantage are reported beside.

``flagged`` is set when the attack does clearly better than chance (AUC ≥ 0.6, or advantage ≥
0.2, or TPR at 1% FPR ≥ 10%): the steward sees it next to the certified ε.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

AUC_FLAG = 0.6
ADVANTAGE_FLAG = 0.2
TPR_AT_1PCT_FLAG = 0.10


@dataclass(frozen=True)
class AttackReport:
    attack: str
    members: int
    non_members: int
    auc: float
    advantage: float
    tpr_at_fpr_1pct: float
    tpr_at_fpr_01pct: float
    flagged: bool
    roc: list[tuple[float, float]] = field(default_factory=list)
    sacroml: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def per_example_loss(outputs: np.ndarray, y: np.ndarray, loss: str) -> np.ndarray:
    if loss == "bce":
        # log(1 + e^-z) for y=1, log(1 + e^z) for y=0, stably
        z = np.where(y > 0.5, outputs, -outputs)
        return np.logaddexp(0.0, -z)
    return (outputs - y) ** 2


def roc_metrics(member_scores: np.ndarray, non_member_scores: np.ndarray) -> dict[str, Any]:
    """Higher score = "member". Exact ROC over all thresholds."""
    scores = np.concatenate([member_scores, non_member_scores])
    labels = np.concatenate([np.ones(len(member_scores)), np.zeros(len(non_member_scores))])
    order = np.argsort(-scores, kind="mergesort")
    s, lab = scores[order], labels[order]
    tps, fps = np.cumsum(lab), np.cumsum(1 - lab)
    last = np.r_[np.diff(s) != 0, True]  # ties: one ROC point per distinct score
    tpr = np.r_[0.0, tps[last] / max(len(member_scores), 1)]
    fpr = np.r_[0.0, fps[last] / max(len(non_member_scores), 1)]
    auc = float(np.trapezoid(tpr, fpr))

    def tpr_at(f: float) -> float:
        ok = fpr <= f
        return float(tpr[ok].max()) if ok.any() else 0.0

    idx = np.linspace(0, len(fpr) - 1, num=min(len(fpr), 101)).astype(int)
    return {"auc": auc, "advantage": float(np.max(tpr - fpr)), "tpr_at_fpr_1pct": tpr_at(0.01),
            "tpr_at_fpr_01pct": tpr_at(0.001), "roc": [(round(float(fpr[i]), 4), round(float(tpr[i]), 4)) for i in idx]}


def _sacroml(p_members: np.ndarray, p_non: np.ndarray) -> dict[str, Any] | None:
    try:
        import logging

        from sacroml.attacks.worst_case_attack import WorstCaseAttack
    except Exception:  # not installed where this runs: the loss attack stands alone
        return None
    logging.getLogger("sacroml").setLevel(logging.ERROR)
    two = lambda p: np.stack([1 - p, p], axis=1)  # noqa: E731
    out_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), "twh-sacroml")
    try:
        attack = WorstCaseAttack(output_dir=out_dir, write_report=False, n_reps=3, n_dummy_reps=0,
                                 reproduce_split=[int.from_bytes(os.urandom(3), "little") for _ in range(3)],
                                  attack_model_params={"n_estimators": 50, "max_depth": 4})
        attack.attack_from_preds(two(p_members), two(p_non))
        ms = attack.attack_metrics
    except Exception as exc:  # report that it could not run rather than failing the release
        return {"error": type(exc).__name__}
    mean = lambda k: float(np.mean([m[k] for m in ms if k in m])) if ms else math.nan  # noqa: E731
    return {"attack": "sacroml.WorstCaseAttack", "reps": len(ms), "auc": mean("AUC"), "advantage": mean("Advantage"),
            "tpr_at_fpr_1pct": mean("TPR@0.01")}


def membership_attack(out_members: np.ndarray, y_members: np.ndarray, out_non: np.ndarray, y_non: np.ndarray,
                      loss: str, *, use_sacroml: bool = True) -> AttackReport:
    """``out_*``: model outputs (logits for bce). Members are subsampled to the non-members' count."""
    n = min(len(out_members), len(out_non))
    if n < 10:
        raise ValueError("too few rows for a membership attack")
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    mi = rng.choice(len(out_members), n, replace=False)
    ni = rng.choice(len(out_non), n, replace=False)
    lm = per_example_loss(out_members[mi], y_members[mi], loss)
    ln = per_example_loss(out_non[ni], y_non[ni], loss)
    m = roc_metrics(-lm, -ln)
    sac = None
    if use_sacroml and loss == "bce":
        sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
        sac = _sacroml(sig(out_members[mi]), sig(out_non[ni]))
    flagged = (m["auc"] >= AUC_FLAG or m["advantage"] >= ADVANTAGE_FLAG or m["tpr_at_fpr_1pct"] >= TPR_AT_1PCT_FLAG)
    if sac and isinstance(sac.get("auc"), float) and sac["auc"] >= AUC_FLAG:
        flagged = True
    return AttackReport("loss_threshold_worst_case", n, n, m["auc"], m["advantage"], m["tpr_at_fpr_1pct"],
                        m["tpr_at_fpr_01pct"], bool(flagged), m["roc"], sac)
