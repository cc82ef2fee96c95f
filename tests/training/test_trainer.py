"""DP-SGD: σ before training, Poisson + secure RNG, only optimizer-owned parameters, ε certified twice."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dp.training.accounting import PrivacyPlan, certify, plan_privacy  # noqa: E402
from dp.training.errors import ModelRefused, SpecInvalid, TrainingError  # noqa: E402
from dp.training.features import encode  # noqa: E402
from dp.training.models import build_model  # noqa: E402
from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig  # noqa: E402
from dp.training.trainer import train_dp, validate_model  # noqa: E402


def _data(n: int = 400, kind: str = "embed_mlp") -> tuple[TrainConfig, object]:
    rng = np.random.default_rng(1)
    a, c = rng.uniform(0, 10, n), rng.choice(list("ABC"), n)
    y = (a + 3 * (c == "A") + rng.normal(0, 2, n) > 6).astype(int)
    cfg = TrainConfig(label="y", numeric=(NumericFeature("a", 0, 10),), categorical=(CategoricalFeature("c", ("A", "B", "C")),),
                      model=ModelSpec(kind=kind, hidden=(8,)), epochs=1, batch_size=100, target_epsilon=2.0,
                      target_delta=1e-5)
    return cfg, encode({"a": a.tolist(), "c": c.tolist(), "y": y.tolist()}, cfg)


# a fixed plan keeps the tests fast (the σ search is exercised once, below)
PLAN = PrivacyPlan(n_train=400, sample_rate=0.25, steps=4, noise_multiplier=1.0, max_grad_norm=1.0,
                   target_epsilon=2.0, target_delta=1e-5)


def test_two_runs_with_identical_inputs_give_different_weights() -> None:
    cfg, data = _data()
    states = []
    for _ in range(2):
        torch.manual_seed(0)  # a user-chosen seed must not fix the noise or the batches
        model = build_model(cfg)
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
        states.append(train_dp(model, data, cfg, PLAN).state)
    assert states[0].keys() == states[1].keys()
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])


@pytest.mark.parametrize("kind", ["logreg", "mlp", "embed_mlp"])
def test_only_optimizer_owned_parameters_are_exported(kind: str) -> None:
    cfg, data = _data(kind=kind)
    model = build_model(cfg)
    result = train_dp(model, data, cfg, PLAN)
    assert result.steps == PLAN.steps
    assert set(result.state) == {n for n, _ in build_model(cfg).named_parameters()}
    assert all(v.dtype == torch.float32 for v in result.state.values())


def test_batchnorm_and_buffers_are_refused() -> None:
    with pytest.raises(ModelRefused, match="BatchNorm"):
        validate_model(torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3)))
    m = torch.nn.Linear(3, 1)
    m.register_buffer("hidden", torch.zeros(3))
    with pytest.raises(ModelRefused, match="buffers"):
        validate_model(m)


def test_noise_is_chosen_before_training_and_certified_by_two_accountants() -> None:
    plan = plan_privacy(2000, 100, 2, 2.0, 1e-6, 1.0)
    assert plan.sample_rate == pytest.approx(0.05) and plan.steps == 40
    cert = certify(plan.noise_multiplier, plan.sample_rate, plan.steps, plan.target_delta)
    assert cert.epsilon_lower <= cert.epsilon_estimate <= cert.epsilon <= 2.0
    assert cert.epsilon <= cert.epsilon_rdp  # PRV (tight) under RDP (loose)
    # less noise than planned would overspend: the certificate says so
    assert certify(plan.noise_multiplier * 0.8, plan.sample_rate, plan.steps, 1e-6).epsilon > 2.0


def test_delta_must_be_far_below_one_over_n() -> None:
    with pytest.raises(SpecInvalid, match="far below 1/N"):
        plan_privacy(20_000, 100, 1, 1.0, 1e-5, 1.0)


def test_a_plan_for_other_rows_is_refused() -> None:
    cfg, data = _data(300)
    with pytest.raises(TrainingError, match="privacy plan"):
        train_dp(build_model(cfg), data, cfg, PLAN)
