"""The trainer's shortcuts compute exactly what the long way computes: the flat SGD update is
torch's SGD bit for bit, the prebuilt one-hot input gives the same clipped sums, the binomial
Poisson sampler keeps the rate at or below q, and small models train on one thread."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from dp.training import rng  # noqa: E402
from dp.training.accounting import PrivacyPlan  # noqa: E402
from dp.training.bookkeeping import clipped_sum_of_shape, input_matrix, shape_of  # noqa: E402
from dp.training.features import Encoded  # noqa: E402
from dp.training.models import build_model  # noqa: E402
from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig  # noqa: E402
from dp.training.threads import WORK_FOR_TWO, choose_threads  # noqa: E402
from dp.training.trainer import _FlatSGD, train_dp  # noqa: E402


@pytest.mark.parametrize("momentum", [0.0, 0.5, 0.9])
def test_the_flat_sgd_is_torch_sgd_bit_for_bit(momentum: float) -> None:
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(1000))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = _FlatSGD(b, 0.7, momentum), torch.optim.SGD([a], lr=0.7, momentum=momentum)
    for _ in range(30):
        g = torch.randn(1000)
        a.grad, b.grad = g.clone(), g.clone()
        theirs.step()
        ours.step()
        assert torch.equal(a, b)


def _cfg(kind: str = "mlp") -> TrainConfig:
    return TrainConfig(label="y", numeric=(NumericFeature("a", 0, 1), NumericFeature("b", 0, 1)),
                       categorical=(CategoricalFeature("c", ("x", "y", "z")), CategoricalFeature("d", ("p", "q"))),
                       model=ModelSpec(kind=kind, hidden=(8,)), target_delta=1e-6)


def test_the_prebuilt_one_hot_input_gives_the_same_clipped_sums() -> None:
    model = build_model(_cfg())
    shape = shape_of(model)
    gen = torch.Generator().manual_seed(1)
    x_num = torch.rand(64, 2, generator=gen)
    x_cat = torch.stack([torch.randint(0, 3, (64,), generator=gen), torch.randint(0, 2, (64,), generator=gen)], 1)
    y = (torch.rand(64, generator=gen) > 0.5).float()
    plain = clipped_sum_of_shape(shape, x_num, x_cat, y, "bce", 0.05)
    idx = torch.tensor([3, 5, 8, 13, 21, 34])
    inputs = input_matrix(shape, x_num, x_cat)
    assert inputs is not None and inputs.shape == (64, 2 + sum(shape.cardinalities))
    part = clipped_sum_of_shape(shape, x_num[idx], x_cat[idx], y[idx], "bce", 0.05)
    given = clipped_sum_of_shape(shape, x_num, x_cat, y[idx], "bce", 0.05, inputs=inputs[idx])
    assert torch.equal(part.norms, given.norms) and part.loss_sum == given.loss_sum
    for (p1, g1), (p2, g2) in zip(part.grads, given.grads, strict=True):
        assert p1 is p2 and torch.equal(g1, g2)
    assert len(plain.norms) == 64
    assert input_matrix(shape_of(build_model(_cfg("embed_mlp"))), x_num, x_cat) is None  # embeddings: per step


def test_training_with_and_without_the_prebuilt_input_agrees_given_the_same_draws(monkeypatch) -> None:
    from dp.training import trainer

    cfg = _cfg()
    n = 300
    r = np.random.default_rng(0)
    data = Encoded(r.random((n, 2), dtype=np.float32), np.stack([r.integers(0, 3, n), r.integers(0, 2, n)], 1),
                   (r.random(n) > 0.5).astype(np.float32), 0)
    plan = PrivacyPlan(n, 0.1, 20, 1.0, 0.5, 3.0, 1e-6)
    results = []
    for limit in (trainer._INPUTS_MAX, 0):  # prebuilt, then rebuilt every step
        monkeypatch.setattr(trainer, "_INPUTS_MAX", limit)
        seeds = iter(range(1, 10_000))
        monkeypatch.setattr(trainer, "step_generator", lambda: torch.Generator().manual_seed(next(seeds)))
        samplers = iter(range(1, 10_000))
        monkeypatch.setattr(trainer, "step_sampler", lambda: np.random.Generator(np.random.PCG64DXSM(next(samplers))))
        torch.manual_seed(0)
        results.append(train_dp(build_model(cfg), data, cfg, plan).state)
    assert results[0].keys() == results[1].keys()
    for k in results[0]:
        assert torch.equal(results[0][k], results[1][k]), k


def test_the_poisson_rate_is_at_most_q_and_the_batch_a_uniform_subset() -> None:
    for q in (1e-6, 0.01, 0.3, 0.999999):
        assert rng.poisson_rate(q) <= q
    assert rng.poisson_rate(1.0) == 1.0
    sampler = rng.step_sampler()
    idx = rng.poisson_indices(10_000, 0.02, sampler)
    assert idx.dtype == torch.int64 and torch.equal(idx, torch.unique(idx))  # distinct, ascending
    assert torch.equal(rng.poisson_indices(7, 1.0, sampler), torch.arange(7))
    # every position equally likely: first and last tenth of the rows are drawn alike
    counts = np.zeros(10_000)
    for _ in range(300):
        counts[rng.poisson_indices(10_000, 0.02, rng.step_sampler()).numpy()] += 1
    assert abs(counts[:1000].mean() - counts[-1000:].mean()) < 0.6 and abs(counts.mean() - 6.0) < 0.2


def test_one_draw_per_coordinate_with_the_calibrated_spread() -> None:
    gen = rng.step_generator()
    z = rng.gaussian(100_000, 2.0, gen)
    assert z.shape == (100_000,) and abs(float(z.std()) - 2.0) < 0.03
    # one N(0,1) draw per coordinate from the step's generator (the same seed gives the same noise)
    assert torch.equal(rng.gaussian(5, 1.0, torch.Generator().manual_seed(7)),
                       torch.randn(5, generator=torch.Generator().manual_seed(7)))


def test_small_models_train_on_one_thread_and_large_ones_on_more() -> None:
    assert choose_threads(5569, 256, cap=2, cores=2) == 1  # the benchmark MLP
    assert choose_threads(369, 128, cap=8, cores=16) == 1  # the demo's model
    assert choose_threads(WORK_FOR_TWO, 1, cap=2, cores=16) == 2
    assert choose_threads(WORK_FOR_TWO, 1, cap=8, cores=4) == 4
    assert choose_threads(WORK_FOR_TWO, 1, cap=1, cores=16) == 1
