"""What leaves with a model: DP held-out metrics and the card; never the attack, exact counts or
the training loss (those are for the stewards)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dp.training.evaluate import LOSS_CLIP, LOSS_SCALE, curve_epochs, dp_loss_curve, fixed_point_loss_sum

FORBIDDEN = ("membership_inference", "attack", "epoch_losses", "epoch_losses_train", "training_rows",
             "privacy_unit_rows", "held_out_rows", "n_train", "n_holdout", "samples", "samples_per_second",
             "seconds", "peak_rss_mb", "dropped_duplicate_unit_rows")


def _keys(obj: object) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | {k for v in obj.values() for k in _keys(v)}
    if isinstance(obj, list):
        return {k for v in obj for k in _keys(v)}
    return set()


def test_curve_epochs_depend_on_the_epoch_count_only() -> None:
    assert curve_epochs(3) == [0, 1, 2]
    picked = curve_epochs(95)
    assert len(picked) == 10 and picked[0] == 0 and picked[-1] == 94


def test_loss_sums_are_clipped_fixed_point() -> None:
    assert fixed_point_loss_sum(np.array([0.5, 100.0, -1.0, np.nan])) == int(0.5 * LOSS_SCALE) + 2 * int(
        LOSS_CLIP * LOSS_SCALE)


def test_the_loss_curve_is_noised_at_the_sensitivity_of_all_its_points() -> None:
    sums = [700_000] * 10  # a mean loss of 0.7 on 1000 rows
    curves = [dp_loss_curve(list(range(10)), sums, 0.5, 1000) for _ in range(3)]
    assert curves[0].epochs == list(range(1, 11))
    values = np.array([c.loss for c in curves])
    assert len({tuple(v) for v in values}) == 3  # noised, differently each time
    # scale = 10 points × 4 × 1000 / 0.5 = 80 000 units = 0.08 of a mean loss on 1000 rows
    assert 0.005 < np.abs(values - 0.7).mean() < 0.5


def test_the_trainer_report_separates_released_from_steward_only(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dp.training.accounting import plan_privacy
    from dp.training.entry import train_main
    from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig

    rng = np.random.default_rng(0)
    n = 600
    a, c = rng.uniform(0, 10, n), rng.choice(list("ABC"), n)
    y = (a + 3 * (c == "A") + rng.normal(0, 2, n) > 6).astype(int)
    table = pa.table({"a": a, "c": c, "y": y})
    pq.write_table(table.slice(0, 450), tmp_path / "train.parquet")
    pq.write_table(table.slice(450), tmp_path / "holdout.parquet")
    cfg = TrainConfig(label="y", numeric=(NumericFeature("a", 0, 10),),
                      categorical=(CategoricalFeature("c", ("A", "B", "C")),),
                      model=ModelSpec(kind="embed_mlp", hidden=(8,)), epochs=3, batch_size=64, target_epsilon=2.0,
                      target_delta=1e-4 / 45, eval_epsilon=1.0)
    plan = plan_privacy(450, 64, 3, 2.0, cfg.target_delta, 1.0)
    (tmp_path / "train_config.json").write_text(json.dumps({"train": cfg.to_dict(), "plan": plan.to_dict()}))
    out = tmp_path / "out"
    out.mkdir()
    assert train_main(str(tmp_path), str(out)) == 0
    assert not (out / "error.json").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["steps"] == plan.steps
    assert set(report["released"]) == {"holdout", "holdout_loss_curve", "n_holdout_noisy"}
    assert not _keys(report["released"]) & set(FORBIDDEN)
    assert report["released"]["holdout"]["epsilon"] == report["released"]["holdout_loss_curve"]["epsilon"] == 0.5
    assert report["released"]["holdout_loss_curve"]["epochs"] == [1, 2, 3]
    assert report["steward_only"]["n_train"] == 450 and "auc" in report["steward_only"]["attack"]

    from dp.training.accounting import certify
    from dp.training.card import card_json, card_png, model_card

    cert = certify(plan.noise_multiplier, plan.sample_rate, plan.steps, plan.target_delta)
    card = model_card(job={"id": "j"}, config=cfg.to_dict(), certificate=cert.to_dict(), plan=plan.to_dict(),
                      data={"datasets": ["d"]}, hashes={}, released=report["released"], weights={})
    assert not _keys(json.loads(card_json(card))) & set(FORBIDDEN)
    assert card_png(card).startswith(b"\x89PNG")
