"""A training export without training: the platform's trainer replaced by a stand-in, for the UI tests.

Real DP-SGD costs a while here (torch, Opacus and a sandbox per run; see tests/training for the
real thing). The pages only need what the trainer leaves behind, so the stand-in builds it with
the platform's own trusted code — ``gate_weights`` re-serialises the safetensors,
``dp.training.evaluate`` noises the held-out histogram and loss curve, ``dp.training.card``
writes the card JSON and PNG (DP numbers only), ``dp.training.mia.membership_attack`` attacks
synthetic logits (members clearly better fitted, so the report is *flagged*) — with the
certificate of a real run on the demo data (``CERTIFICATE``). Like :class:`sandbox.training.service.Training`
it returns the export's files (weights, card JSON, card PNG) and writes the stewards' review
(attack, exact counts, training losses, timings) to ``training_review.json`` in the job's folder.
No ε is reserved: nothing was trained.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sandbox.demo.scenario import JOBS
from sandbox.release.outputs import GatedFile, gate_weights

#: sandbox.training.service's certificate for train_default (1 epoch, batch 64, ε 1, δ 1e-8) on 300 demo firms
CERTIFICATE = {"epsilon": 0.9942402987487229, "epsilon_estimate": 0.984197337189116, "epsilon_lower": 0.974154373783734,
               "eps_error": 0.01, "epsilon_rdp": 1.0599492089520686, "delta": 1e-08,
               "noise_multiplier": 4.3858642578125, "sample_rate": 0.5, "steps": 2}
SHAPES = {"net.0.weight": (16, 21), "net.0.bias": (16,), "net.2.weight": (1, 16), "net.2.bias": (1,)}


def training_job(root: Path) -> Path:
    """The demo's train_default job at the smallest settings."""
    job = root / "train_job"
    shutil.copytree(JOBS / "train_default", job)
    spec = yaml.safe_load((job / "job.yaml").read_text())
    spec["train"].update(epochs=1, batch_size=64, privacy={"epsilon": 1, "delta": 1e-8})
    (job / "job.yaml").write_text(yaml.safe_dump(spec))
    return job


class StandInTraining:
    """Has :class:`sandbox.training.service.Training`'s ``run``; returns the files the real one would and
    writes its ``training_review.json`` into ``job_dir(job_id)`` (nowhere when ``job_dir`` is None)."""

    def __init__(self, job_dir: Callable[[str], Path] | None = None) -> None:
        self._job_dir = job_dir

    def run(self, principal: Any, job_id: str, spec: Any, snapshots: dict[str, Any]) -> list[GatedFile]:
        from dp.training.card import card_json, card_png, model_card
        from dp.training.evaluate import curve_epochs, dp_holdout_metrics, dp_loss_curve, fixed_point_loss_sum
        from dp.training.mia import membership_attack
        from dp.training.weights import write_safetensors
        from sandbox.training.service import RELEASED_METRICS, REVIEW_FILE, STEWARD_ONLY

        rng = np.random.default_rng()
        cfg = spec.train.to_config()
        expected = {k: (s, "float32") for k, s in SHAPES.items()}
        raw = write_safetensors({k: rng.normal(size=s).astype(np.float32) for k, s in SHAPES.items()})
        weights = gate_weights("model.safetensors", raw, expected, {"job_id": job_id, "format": "twh-dp-weights/1"})
        y_m, y_n = rng.integers(0, 2, 160), rng.integers(0, 2, 44)
        logits_m = np.where(y_m == 1, 3.0, -3.0) + rng.normal(0, 1, 160)  # memorised: low loss on members
        logits_n = rng.normal(0, 1.5, 44)
        attack = membership_attack(logits_m, y_m, logits_n, y_n, "bce", use_sacroml=False).to_dict()
        # released, as dp.training.entry does: eval ε split between the histogram and the loss curve
        half = cfg.eval_epsilon / 2
        prob = 1 / (1 + np.exp(-logits_n))
        holdout = dp_holdout_metrics(prob, y_n.astype(float), half).to_dict()
        at = curve_epochs(cfg.epochs)
        bce = np.logaddexp(0, logits_n) - y_n * logits_n
        curve = dp_loss_curve(at, [fixed_point_loss_sum(bce) for _ in at], half, holdout["n_noisy"]).to_dict()
        released = {"holdout": holdout, "holdout_loss_curve": curve, "n_holdout_noisy": holdout["n_noisy"]}
        plan = {"target_epsilon": 1.0, "target_delta": 1e-8, "max_grad_norm": cfg.max_grad_norm}
        card = model_card(
            job={"id": job_id, "name": spec.name, "purpose": spec.purpose, "tenant": principal.tenant},
            config=cfg.to_dict(), certificate=CERTIFICATE, plan=plan,
            data={"datasets": list(snapshots), "versions": {n: s.version for n, s in snapshots.items()},
                  "feature_sql": spec.train.features},
            hashes={"weights_sha256": weights.sha256, "graph_sha256": None,
                    "job_code_sha256": hashlib.sha256(b"stand-in: no code was hashed").hexdigest()},
            released={k: released.get(k) for k in RELEASED_METRICS},
            weights={k: {"shape": list(s), "dtype": "float32"} for k, s in SHAPES.items()})
        steward_only = {"epoch_losses_train": [0.69, 0.61], "samples": 320, "seconds": 0.3,
                        "samples_per_second": 530.0, "peak_rss_mb": 850.0, "n_train": 160, "n_holdout": 44,
                        "path": "stand-in"}
        review = {"job_id": job_id, "certified_epsilon": CERTIFICATE["epsilon"], "membership_inference": attack,
                  "training": {k: steward_only.get(k) for k in STEWARD_ONLY},
                  "data": {"privacy_unit_rows": 204, "dropped_duplicate_unit_rows": 0, "training_rows": 160,
                           "held_out_rows": 44}}
        if self._job_dir is not None:
            (self._job_dir(job_id) / REVIEW_FILE).write_bytes(card_json(review))
        # the export: weights and the card only, as sandbox.training.service returns them
        return [weights, GatedFile("model_card.json", card_json(card)), GatedFile("model_card.png", card_png(card))]


def submit_training_job(wh: Any, analyst: Any, root: Path, *, real: bool = False) -> dict[str, Any]:
    """Submit train_default (smallest settings) as ``analyst``; the stand-in trains unless ``real``."""
    if not real:
        wh.jobs._training = lambda: StandInTraining(wh.jobs._dir)  # the jobs service builds its Training per run
    try:
        return analyst.submit_job(training_job(root))
    finally:
        if not real:
            del wh.jobs._training
