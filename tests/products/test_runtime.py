"""The inference runtime: a custom graph runs in the trainer's sandbox and gives the interpreter's
logits; the vectorised encoding is the trainer's; reason codes name the inputs that raised a score."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from dp.training.features import encode as train_encode
from dp.training.graph import export_graph, load_graph
from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig
from sandbox.products.models import LoadedModel
from sandbox.products.runtime import Runtime, encode


class Small(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(4, 3)
        self.lin = torch.nn.Linear(2 + 3, 1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.cat([x_num, self.emb(x_cat[:, 0])], dim=1)).squeeze(-1)


CFG = TrainConfig(label="y", numeric=(NumericFeature("a", 0, 10), NumericFeature("b", 0, 1000, True)),
                  categorical=(CategoricalFeature("c", ("x", "y", "z")),),
                  model=ModelSpec(kind="custom", module="m.py"))


def _model(graph, weights, reason_codes=0):
    return LoadedModel(id=1, ref="g@1", cfg=CFG, weights=weights, graph=graph, features=(), tenant_inputs=(),
                       datasets=(), allowed_tenants=(), allowed_purposes=(), reason_codes=reason_codes,
                       score_digits=3, max_distinct_inputs=1, owner_tenant="t")


@pytest.mark.slow
def test_a_custom_graph_runs_in_the_sandbox_with_the_interpreters_logits(settings):
    torch.manual_seed(0)
    graph, state = export_graph(Small(), torch.rand(4, 2), torch.randint(0, 4, (4, 1)))
    weights = {k: v.numpy() for k, v in state.items()}
    rng = np.random.default_rng(0)
    x_num, x_cat = rng.random((30, 2)).astype(np.float32), rng.integers(0, 4, (30, 1))
    settings.home.mkdir(parents=True, exist_ok=True)
    got = Runtime(type("Ctx", (), {"settings": settings})()).logits(_model(graph, weights), x_num, x_cat)
    with torch.no_grad():
        expected = load_graph(graph, state, 2)(torch.from_numpy(x_num), torch.from_numpy(x_cat)).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_the_vectorised_encoding_is_the_trainers():
    cols = {"a": [1.0, None, 50.0, -3.0, 2.5], "b": [0.0, 999.0, None, 10.0, 1e9], "c": ["x", "z", None, "q", "y"],
            "y": [0, 0, 0, 0, 0]}
    x_num, x_cat = encode({k: pa.array(v) for k, v in cols.items() if k != "y"}, CFG)
    ref = train_encode(cols, CFG)
    assert np.allclose(x_num, ref.x_num) and (x_cat == ref.x_cat).all()


def test_reason_codes_name_the_inputs_that_raised_the_score(tmp_path):
    from dp.training.spec import TrainConfig as T

    cfg = T(label="y", numeric=(NumericFeature("risky", 0, 1), NumericFeature("safe", 0, 1)), categorical=(),
            model=ModelSpec(kind="logreg"))
    weights = {"net.0.weight": np.array([[4.0, -4.0]], np.float32), "net.0.bias": np.array([0.0], np.float32)}
    m = LoadedModel(id=2, ref="l@1", cfg=cfg, weights=weights, graph=None, features=(), tenant_inputs=(), datasets=(),
                    allowed_tenants=(), allowed_purposes=(), reason_codes=2, score_digits=2, max_distinct_inputs=1,
                    owner_tenant="t")
    scores, reasons = Runtime(None).score(m, np.array([[1.0, 0.0], [0.0, 1.0]], np.float32), np.zeros((2, 0), np.int64))
    assert scores.tolist() == [0.98, 0.02]
    assert reasons == [["risky"], []]  # the safe input lowers the score: never a reason
