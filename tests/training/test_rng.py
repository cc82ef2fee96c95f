"""The trainer's randomness: fresh CSPRNG seeds every step, nothing a job can seed."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dp.training import rng  # noqa: E402


def test_user_seeds_do_not_fix_the_step_generators() -> None:
    draws = []
    for _ in range(2):
        torch.manual_seed(0)
        np.random.seed(0)
        draws.append((torch.randn(8, generator=rng.step_generator()),
                      rng.poisson_indices(5000, 0.1, rng.step_sampler())))
    assert not torch.equal(draws[0][0], draws[1][0])
    assert not torch.equal(draws[0][1], draws[1][1])


def test_every_step_draws_fresh_seeds_from_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    from dp.training.accounting import PrivacyPlan
    from dp.training.features import Encoded
    from dp.training.models import build_model
    from dp.training.spec import ModelSpec, NumericFeature, TrainConfig
    from dp.training.trainer import train_dp

    calls: list[int] = []
    real = rng.secrets.randbits
    monkeypatch.setattr(rng.secrets, "randbits", lambda k: calls.append(k) or real(k))
    cfg = TrainConfig(label="y", numeric=(NumericFeature("a", 0, 1),), categorical=(),
                      model=ModelSpec(kind="logreg", hidden=()), target_delta=1e-6)
    n = 200
    data = Encoded(np.random.default_rng(0).random((n, 1), dtype=np.float32), np.zeros((n, 0), np.int64),
                   np.zeros(n, np.float32), 0)
    train_dp(build_model(cfg), data, cfg, PrivacyPlan(n, 0.1, 7, 1.0, 1.0, 3.0, 1e-6))
    assert sorted(calls) == [64] * 7 + [256] * 7  # a noise seed and a sampling state per step


def test_noise_has_the_calibrated_standard_deviation() -> None:
    z = rng.gaussian(200_000, 2.5, rng.step_generator())
    assert z.dtype == torch.float32
    assert abs(float(z.mean())) < 0.03 and abs(float(z.std()) - 2.5) < 0.02
    assert torch.equal(rng.gaussian(3, 0.0, rng.step_generator()), torch.zeros(3))
