"""Custom models: the exported graph runs without user code; every unsafe model is refused with a reason."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from dp.training.errors import ModelRefused  # noqa: E402
from dp.training.graph import check_graph, check_no_batch_mixing, export_graph, graph_bytes, load_graph  # noqa: E402

from .models_zoo import CopiesIntoBuffer, CopiesIntoParameter, Good, MixesBatch, UsesBatchNorm  # noqa: E402


def _inputs(n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 4), torch.randint(0, 5, (n, 1))


def _load(module: torch.nn.Module):
    x_num, x_cat = _inputs()
    graph, state = export_graph(module, x_num, x_cat)
    graph = json.loads(graph_bytes(graph))  # what crosses the wall is JSON
    model = load_graph(graph, state, 4)
    check_no_batch_mixing(model, *_inputs(16))
    return model


def test_good_model_runs_as_a_pure_graph_with_the_same_outputs() -> None:
    module = Good()
    model = _load(module)
    x_num, x_cat = _inputs(32)  # another batch size than the export's: the batch dim is dynamic
    with torch.no_grad():
        assert torch.allclose(model(x_num, x_cat), module(x_num, x_cat), atol=1e-5)
    assert not list(model.buffers())
    assert sorted(model.parameter_names()) == sorted(n for n, _ in module.named_parameters())


@pytest.mark.parametrize(("module", "reason"), [
    (CopiesIntoBuffer(), "buffers"),
    (CopiesIntoParameter(), "in place"),
    (MixesBatch(), "mixes samples across the batch"),
    (UsesBatchNorm(), "BatchNorm"),
])
def test_unsafe_models_are_refused_with_a_reason(module: torch.nn.Module, reason: str) -> None:
    with pytest.raises(ModelRefused, match=reason):
        _load(module)


def test_tampered_graph_files_are_refused() -> None:
    graph, state = export_graph(Good(), *_inputs())
    evil = json.loads(graph_bytes(graph))
    evil["nodes"][0]["target"] = "aten.copy_.default"
    with pytest.raises(ModelRefused, match="in place"):
        check_graph(evil)
    evil["nodes"][0]["target"] = "builtins.eval"
    with pytest.raises(ModelRefused, match="allow-list"):
        check_graph(evil)
    extra = dict(state, smuggled=torch.zeros(3))
    with pytest.raises(ModelRefused, match="do not match"):
        load_graph(json.loads(graph_bytes(graph)), extra, 4)


def test_the_graph_trains_under_dp_sgd_with_per_sample_gradients() -> None:
    import numpy as np

    from dp.training.accounting import PrivacyPlan
    from dp.training.features import Encoded
    from dp.training.spec import CategoricalFeature, NumericFeature, TrainConfig
    from dp.training.trainer import train_dp

    model = _load(Good())
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    rng = np.random.default_rng(0)
    data = Encoded(rng.random((200, 4), dtype=np.float32), rng.integers(0, 5, (200, 1)),
                   rng.integers(0, 2, 200).astype(np.float32), 0)
    cfg = TrainConfig(label="y", numeric=tuple(NumericFeature(f"f{i}", 0, 1) for i in range(4)),
                      categorical=(CategoricalFeature("c", ("a", "b", "c", "d")),), target_delta=1e-5)
    result = train_dp(model, data, cfg, PrivacyPlan(200, 0.25, 3, 1.0, 1.0, 3.0, 1e-5))
    assert result.steps == 3 and set(result.state) == set(before)
    assert any(not torch.equal(before[k], result.state[k]) for k in before)
