"""The model card: what was trained, on what, with which guarantee — JSON and a one-page PNG.

Built by trusted code from the supervisor's own numbers (the certificate it computed, the
versions it pinned, the hashes it took) and the trainer's report (losses, held-out DP metrics,
the attack report). No data values, only counts and aggregates.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

CARD_FORMAT = "twh-model-card/1"


def model_card(*, job: dict[str, Any], config: dict[str, Any], certificate: dict[str, Any], plan: dict[str, Any],
               data: dict[str, Any], hashes: dict[str, str], training: dict[str, Any], holdout: dict[str, Any] | None,
               attack: dict[str, Any] | None, weights: dict[str, Any]) -> dict[str, Any]:
    eps = certificate["epsilon"]
    return {
        "format": CARD_FORMAT,
        "job": job,
        "privacy": {
            "guarantee": f"({eps:.4g}, {certificate['delta']:.3g})-DP for each privacy unit "
                         f"(add/remove one unit; one row per unit)",
            "epsilon": eps, "epsilon_estimate": certificate["epsilon_estimate"],
            "epsilon_lower": certificate["epsilon_lower"], "eps_error": certificate["eps_error"],
            "delta": certificate["delta"], "accountant": "PRV (Gopi et al. 2021), upper bound",
            "cross_check": {"accountant": "RDP (Mironov 2017)", "epsilon": certificate["epsilon_rdp"]},
            "target_epsilon": plan["target_epsilon"], "target_delta": plan["target_delta"],
            "noise_multiplier": certificate["noise_multiplier"], "sampling": "Poisson",
            "sample_rate": certificate["sample_rate"], "steps": certificate["steps"],
            "max_grad_norm": plan["max_grad_norm"], "clipping": "per-sample, flat",
            "noise_chosen": "from the target before training", "rng": "os.urandom-seeded, not user-settable",
        },
        "model": {"spec": config.get("model"), "loss": config.get("loss"), "optimizer": config.get("optimizer"),
                  "learning_rate": config.get("learning_rate"), "epochs": config.get("epochs"),
                  "batch_size": config.get("batch_size"), "features": {
                      "numeric": config.get("numeric"), "categorical": config.get("categorical"),
                      "label": config.get("label")}, "weights": weights},
        "data": data,
        "hashes": hashes,
        "training": training,
        "holdout_metrics_dp": holdout,
        "membership_inference": attack,
    }


def card_png(card: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=80)
    p = card["privacy"]
    fig.suptitle(f"DP model card — ε={p['epsilon']:.3g} (RDP {p['cross_check']['epsilon']:.3g}), δ={p['delta']:.2g}, "
                 f"σ={p['noise_multiplier']:.3g}, q={p['sample_rate']:.3g}, {p['steps']} steps", fontsize=10)
    losses = card["training"].get("epoch_losses") or []
    axes[0].plot(range(1, len(losses) + 1), losses, marker="o")
    axes[0].set(title="training loss (per epoch)", xlabel="epoch", ylabel="loss")
    h = card.get("holdout_metrics_dp")
    if h:
        pos, neg = h["noisy_positives"], h["noisy_negatives"]
        centers = [(i + 0.5) / len(pos) for i in range(len(pos))]
        rate = [max(a, 0) / max(max(a, 0) + max(b, 0), 1) for a, b in zip(pos, neg, strict=True)]
        axes[1].plot([0, 1], [0, 1], ls="--", c="grey")
        axes[1].scatter(centers, rate, s=[4 + max(a, 0) + max(b, 0) for a, b in zip(pos, neg, strict=True)])
        axes[1].set(title=f"held-out calibration (DP, ε={h['epsilon']:.2g}); AUC≈{h['auc']:.3f}",
                    xlabel="predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1))
    a = card.get("membership_inference")
    if a:
        fpr, tpr = zip(*a["roc"], strict=True) if a["roc"] else ((0, 1), (0, 1))
        axes[2].plot(fpr, tpr, label=f"attack AUC {a['auc']:.3f}")
        axes[2].plot([0, 1], [0, 1], ls="--", c="grey", label="chance")
        axes[2].set(title="membership inference " + ("— FLAGGED" if a["flagged"] else "(not flagged)"),
                    xlabel="false positive rate", ylabel="true positive rate")
        axes[2].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _finite(obj: Any) -> Any:
    """JSON has no NaN/inf: a metric that cannot be computed is null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def card_json(card: dict[str, Any]) -> bytes:
    return (json.dumps(_finite(card), indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n").encode()
