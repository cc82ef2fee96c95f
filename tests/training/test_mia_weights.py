"""The membership attack flags a non-private model; weights cross only as checked safetensors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dp.training.errors import WeightsRefused
from dp.training.mia import membership_attack, roc_metrics
from dp.training.weights import read_safetensors, reserialise, write_safetensors

EXPECTED = {"net.0.weight": ((1, 3), "float32"), "net.0.bias": ((1,), "float32")}


def _weights(**extra: np.ndarray) -> dict[str, np.ndarray]:
    return {"net.0.weight": np.ones((1, 3), np.float32), "net.0.bias": np.zeros(1, np.float32), **extra}


def test_roc_metrics_separate_chance_from_certainty() -> None:
    rng = np.random.default_rng(0)
    assert roc_metrics(np.ones(100), np.zeros(100))["auc"] == pytest.approx(1.0)
    chance = roc_metrics(rng.random(2000), rng.random(2000))
    assert abs(chance["auc"] - 0.5) < 0.05 and chance["tpr_at_fpr_1pct"] < 0.05


def test_a_non_private_model_is_flagged() -> None:
    torch = pytest.importorskip("torch")
    from dp.training.features import encode
    from dp.training.models import build_model
    from dp.training.spec import ModelSpec, NumericFeature, TrainConfig
    from dp.training.trainer import predict, train_plain

    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(120, 20)), rng.integers(0, 2, 120)  # labels are pure noise: only memorising fits
    cols = {f"f{i}": x[:, i].tolist() for i in range(20)} | {"y": y.tolist()}
    cfg = TrainConfig(label="y", numeric=tuple(NumericFeature(f"f{i}", -4, 4) for i in range(20)), categorical=(),
                      model=ModelSpec(kind="mlp", hidden=(128,)), optimizer="adam", learning_rate=0.01,
                      target_delta=1e-5)
    data = encode(cols, cfg)
    members, non = data.take(np.arange(60)), data.take(np.arange(60, 120))
    torch.manual_seed(0)
    model = build_model(cfg)
    train_plain(model, members, cfg, batch_size=60, steps=300)  # noise 0, no clipping
    report = membership_attack(predict(model, members), members.y, predict(model, non), non.y, "bce",
                               use_sacroml=False)
    assert report.flagged and report.auc > 0.8 and report.advantage > 0.3


def test_weights_are_reserialised_and_checked() -> None:
    good = write_safetensors(_weights())
    out = reserialise(good, EXPECTED, {"epsilon": "3"})
    assert set(read_safetensors(out)) == set(EXPECTED)
    with pytest.raises(WeightsRefused):
        reserialise(pickle.dumps(_weights()), EXPECTED)  # a pickle is never parsed as weights
    with pytest.raises(WeightsRefused, match="unexpected tensors"):
        reserialise(write_safetensors(_weights(running_mean=np.zeros(3, np.float32))), EXPECTED)
    with pytest.raises(WeightsRefused, match="expected float32"):
        reserialise(write_safetensors({**_weights(), "net.0.bias": np.zeros(2, np.float32)}), EXPECTED)
    with pytest.raises(WeightsRefused, match="non-finite"):
        reserialise(write_safetensors({**_weights(), "net.0.bias": np.array([np.nan], np.float32)}), EXPECTED)
    with pytest.raises(WeightsRefused, match="header"):
        reserialise((10**12).to_bytes(8, "little") + b"{}", EXPECTED)  # header-size bomb
