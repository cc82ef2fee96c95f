"""Book-keeping clipping equals the naive per-example loop; its batches are Poisson; nothing but
the DP-updated parameters leaves."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dp.training.accounting import PrivacyPlan  # noqa: E402
from dp.training.bookkeeping import clipped_grad_sum, supports  # noqa: E402
from dp.training.models import build_model  # noqa: E402
from dp.training.rng import poisson_indices, poisson_threshold, step_sampler  # noqa: E402
from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig  # noqa: E402
from dp.training.trainer import LOSSES, choose_path, train_dp  # noqa: E402

CATS = (CategoricalFeature("c", ("A", "B", "C")), CategoricalFeature("d", tuple("PQRSTU")))


def _cfg(kind: str, activation: str = "relu", loss: str = "bce", hidden: tuple[int, ...] = (7, 5)) -> TrainConfig:
    return TrainConfig(label="y", numeric=(NumericFeature("a", 0, 1), NumericFeature("b", 0, 1)), categorical=CATS,
                       model=ModelSpec(kind=kind, hidden=() if kind == "logreg" else hidden, activation=activation,
                                       embedding_dim=3), loss=loss, target_delta=1e-6)


def _batch(n: int, loss: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    x_num = torch.rand(n, 2, generator=g, dtype=torch.float64)
    x_cat = torch.stack([torch.randint(0, 4, (n,), generator=g), torch.randint(0, 7, (n,), generator=g)], 1)
    if loss == "bce":
        y = (torch.rand(n, generator=g) < 0.5).double()
    else:
        y = torch.randn(n, generator=g, dtype=torch.float64) * 3
    return x_num, x_cat, y


def _naive(model: torch.nn.Module, x_num, x_cat, y, loss: str, clip: float) -> dict[str, torch.Tensor]:
    """Clip each example's full gradient (autograd, one example at a time) and sum."""
    crit = LOSSES[loss](reduction="sum")
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for i in range(len(y)):
        model.zero_grad(set_to_none=True)
        crit(model(x_num[i:i + 1], x_cat[i:i + 1]), y[i:i + 1]).backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
        norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
        factor = min(1.0, clip / (norm + 1e-6))
        for n, g in grads.items():
            total[n] += factor * g
    return total


@pytest.mark.parametrize(("kind", "activation", "loss"), [
    ("logreg", "relu", "bce"), ("mlp", "relu", "bce"), ("mlp", "tanh", "mse"), ("mlp", "gelu", "bce"),
    ("embed_mlp", "relu", "bce"), ("embed_mlp", "gelu", "mse"), ("embed_mlp", "tanh", "bce")])
@pytest.mark.parametrize("clip", [0.05, 1e6])  # most examples clipped / none clipped
def test_clipped_sum_equals_the_naive_per_example_loop(kind: str, activation: str, loss: str, clip: float) -> None:
    torch.manual_seed(0)
    model = build_model(_cfg(kind, activation, loss)).double()
    assert supports(model) and choose_path(model) == "bk"
    x_num, x_cat, y = _batch(33, loss)
    fast = clipped_grad_sum(model, x_num, x_cat, y, loss, clip)
    naive = _naive(model, x_num, x_cat, y, loss, clip)
    names = {id(p): n for n, p in model.named_parameters()}
    assert {names[id(p)] for p, _ in fast.grads} == set(naive)
    for p, g in fast.grads:
        torch.testing.assert_close(g, naive[names[id(p)]], rtol=1e-10, atol=1e-12)
    if clip < 1:
        assert (fast.norms > clip).float().mean() > 0.5  # the small clip really clips


def test_models_outside_the_declarative_shapes_take_the_opacus_path() -> None:
    from tests.training.models_zoo import Good

    assert not supports(Good()) and choose_path(Good()) == "opacus"
    model = build_model(_cfg("mlp"))
    model.net[1] = torch.nn.GELU(approximate="tanh")  # not the exact GELU the hand-written backward knows
    assert not supports(model)
    model = build_model(_cfg("mlp"))
    model.extra = torch.nn.Linear(2, 2)  # a parameter the book-keeping would not cover
    assert not supports(model)


def test_poisson_batches_vary_in_size_with_the_right_mean_and_variance() -> None:
    n, q, rounds = 2000, 0.05, 400
    sizes = np.array([len(poisson_indices(n, q, step_sampler())) for _ in range(rounds)])
    # Binomial(n, q): mean 100, sd ≈ 9.75; the sample mean's sd ≈ 0.49, the variance's ≈ 6.7
    assert abs(sizes.mean() - n * q) < 3 and 60 < sizes.var() < 130 and len(set(sizes)) > 15
    # every row is included at rate q, independently of its position
    counts = torch.zeros(n)
    for _ in range(rounds):
        counts[poisson_indices(n, q, step_sampler())] += 1
    assert abs(float(counts[: n // 2].mean()) - float(counts[n // 2:].mean())) < 1.5
    assert poisson_threshold(q) / 2**32 <= q and poisson_threshold(1.0) == 2**32


def test_the_trainer_draws_poisson_batches_for_each_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from dp.training import trainer

    sizes: list[int] = []
    real = trainer.poisson_indices
    monkeypatch.setattr(trainer, "poisson_indices", lambda n, q, g: sizes.append(len(out := real(n, q, g))) or out)
    cfg = _cfg("mlp")
    n = 600
    data = _data(cfg, n)
    plan = PrivacyPlan(n, 0.1, 30, 1.0, 1.0, 3.0, 1e-6)
    result = train_dp(build_model(cfg), data, cfg, plan)
    assert result.path == "bk" and result.steps == 30 and len(sizes) == 30
    assert len(set(sizes)) > 5 and abs(np.mean(sizes) - 60) < 10 and result.samples == sum(sizes)


def _data(cfg: TrainConfig, n: int):
    from dp.training.features import encode

    rng = np.random.default_rng(0)
    cols = {"a": rng.random(n).tolist(), "b": rng.random(n).tolist(), "c": rng.choice(list("ABCX"), n).tolist(),
            "d": rng.choice(list("PQRSTUV"), n).tolist(), "y": (rng.random(n) < 0.4).astype(int).tolist()}
    return encode(cols, cfg)


@pytest.mark.parametrize("kind", ["logreg", "mlp", "embed_mlp"])
def test_no_buffers_and_only_updated_parameters_are_exported(kind: str) -> None:
    cfg = _cfg(kind)
    model = build_model(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    result = train_dp(model, _data(cfg, 300), cfg, PrivacyPlan(300, 0.2, 5, 1.0, 1.0, 3.0, 1e-6))
    assert result.path == "bk" and not list(model.buffers())
    assert set(result.state) == set(before) == {n for n, _ in model.named_parameters()}
    assert all(not torch.equal(result.state[n], before[n]) for n in before)  # every tensor got noise


def test_an_empty_batch_still_takes_a_noise_only_step() -> None:
    cfg = _cfg("mlp")
    model = build_model(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    # q tiny: almost surely no row is sampled, yet each step moves the weights (noise)
    result = train_dp(model, _data(cfg, 300), cfg, PrivacyPlan(300, 1e-9, 1, 1.0, 1.0, 3.0, 1e-6))
    assert result.steps == 1 and result.samples == 0
    assert all(not torch.equal(result.state[n], before[n]) for n in before)
