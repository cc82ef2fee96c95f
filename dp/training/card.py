"""The model card: what was trained, on what, with which guarantee — JSON and a one-page PNG.

Built by trusted code from the supervisor's own numbers (the certificate it computed, the
versions it pinned, the hashes it took) and the **released** part of the trainer's report: the
held-out metrics and loss curve, both DP (:mod:`.evaluate`). Nothing else about the rows is on
the card: no exact row counts, no training loss, no timings, no membership-attack result (the
stewards see those; the application keeps them out of the export).
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

CARD_FORMAT = "twh-model-card/1"


def model_card(*, job: dict[str, Any], config: dict[str, Any], certificate: dict[str, Any], plan: dict[str, Any],
               data: dict[str, Any], hashes: dict[str, str], released: dict[str, Any],
               weights: dict[str, Any]) -> dict[str, Any]:
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
            "noise_chosen": "from the target before training",
            "rng": "fresh OS-CSPRNG seeds every step (secrets), not user-settable; float Gaussian "
                   "(sum of four, as Opacus secure_mode) — not a discrete Gaussian",
            "metrics": f"held-out only, DP at eval ε={config.get('eval_epsilon')} (disjoint rows: "
                       "the release's ε is max(training, evaluation))",
        },
        "model": {"spec": config.get("model"), "loss": config.get("loss"), "optimizer": config.get("optimizer"),
                  "learning_rate": config.get("learning_rate"), "epochs": config.get("epochs"),
                  "batch_size": config.get("batch_size"), "features": {
                      "numeric": config.get("numeric"), "categorical": config.get("categorical"),
                      "label": config.get("label")}, "weights": weights},
        "data": data,
        "hashes": hashes,
        "holdout_metrics_dp": released.get("holdout"),
        "holdout_loss_curve_dp": released.get("holdout_loss_curve"),
        "holdout_rows_dp": released.get("n_holdout_noisy"),
    }


def card_png(card: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4), dpi=80)
    p = card["privacy"]
    fig.suptitle(f"DP model card — ε={p['epsilon']:.3g} (RDP {p['cross_check']['epsilon']:.3g}), δ={p['delta']:.2g}, "
                 f"σ={p['noise_multiplier']:.3g}, q={p['sample_rate']:.3g}, {p['steps']} steps", fontsize=10)
    curve = card.get("holdout_loss_curve_dp") or {}
    axes[0].plot(curve.get("epochs") or [], curve.get("loss") or [], marker="o")
    axes[0].set(title=f"held-out loss (DP, ε={curve.get('epsilon', 0):.2g})", xlabel="epoch", ylabel="loss")
    h = card.get("holdout_metrics_dp")
    if h:
        pos, neg = h["noisy_positives"], h["noisy_negatives"]
        centers = [(i + 0.5) / len(pos) for i in range(len(pos))]
        rate = [max(a, 0) / max(max(a, 0) + max(b, 0), 1) for a, b in zip(pos, neg, strict=True)]
        axes[1].plot([0, 1], [0, 1], ls="--", c="grey")
        axes[1].scatter(centers, rate, s=[4 + max(a, 0) + max(b, 0) for a, b in zip(pos, neg, strict=True)])
        axes[1].set(title=f"held-out calibration (DP, ε={h['epsilon']:.2g}); AUC≈{h['auc']:.3f}",
                    xlabel="predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1))
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
