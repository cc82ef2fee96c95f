"""The NumPy forward pass the catalog runs equals the torch module the trainer trains; library features
by name in ``train:`` are resolved, checked and composed at submit (before anything is charged)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dp.training.forward import expected_shapes, forward
from dp.training.models import build_model
from dp.training.spec import CategoricalFeature, ModelSpec, NumericFeature, TrainConfig
from sandbox.errors import JobSpecInvalid, TrainingRefused
from sandbox.jobs.spec import parse_job_spec
from sandbox.training.features import FeatureInfo
from sandbox.training.library import NamedFeature
from sandbox.training.service import feature_plan


@pytest.mark.parametrize("kind,activation", [("logreg", "relu"), ("mlp", "relu"), ("mlp", "gelu"), ("mlp", "tanh"),
                                             ("embed_mlp", "relu")])
def test_the_numpy_forward_pass_is_the_torch_modules(kind, activation):
    cfg = TrainConfig(label="y", numeric=(NumericFeature("a", 0, 1), NumericFeature("b", 0, 10, True)),
                      categorical=(CategoricalFeature("c", ("x", "y", "z")), CategoricalFeature("d", ("p",))),
                      model=ModelSpec(kind=kind, hidden=(8, 4), activation=activation))
    torch.manual_seed(0)
    module = build_model(cfg)
    assert {n: (tuple(p.shape), "float32") for n, p in module.named_parameters()} == expected_shapes(cfg)
    weights = {n: p.detach().numpy() for n, p in module.named_parameters()}
    rng = np.random.default_rng(0)
    x_num = rng.random((200, 2)).astype(np.float32)
    x_cat = np.stack([rng.integers(0, 4, 200), rng.integers(0, 2, 200)], 1)
    with torch.no_grad():
        expected = module(torch.from_numpy(x_num), torch.from_numpy(x_cat)).numpy()
    assert np.abs(forward(cfg, weights, x_num, x_cat) - expected).max() < 1e-5


LIB = {
    "vat@1": NamedFeature("vat@1", "vat", 1, "numeric", "SELECT AVG(t.vat) AS vat FROM tax t GROUP BY t.uscc", "a" * 64,
                          ("tax",)),
    "sector@1": NamedFeature("sector@1", "sector", 1, "categorical",
                             "SELECT MAX(r.sector) AS sector FROM reg r GROUP BY r.uscc", "b" * 64, ("reg",)),
}
TABLES = {"tax": FeatureInfo("tax", {"uscc": "join_key", "vat": "measure"}, "uscc"),
          "reg": FeatureInfo("reg", {"uscc": "join_key", "sector": "dimension"}, "uscc"),
          "loans": FeatureInfo("loans", {"uscc": "join_key", "bad": "measure"}, "uscc")}


class _Manifest:
    def __init__(self, info):
        self.info = info
        self.columns = [type("C", (), {"name": c})() for c in info.roles]

    def build_policy(self):
        return self.info.table_info().policy


def _spec(features, numeric=None, categorical=None, sql="SELECT MAX(l.bad) AS bad FROM loans l GROUP BY l.uscc",
          datasets=("tax", "reg", "loans")):
    import yaml

    train = {"features": features, "label": "bad", "numeric": numeric or {"vat": {"range": [0, 100]}},
             "categorical": categorical if categorical is not None else {"sector": ["A", "B"]},
             "privacy": {"epsilon": 1, "delta": 1e-7}}
    if sql:
        train["sql"] = sql
    return parse_job_spec(yaml.safe_dump({"name": "t", "purpose": "p", "datasets": list(datasets), "train": train}))


def _plan(spec):
    return feature_plan(spec, lambda n: _Manifest(TABLES[n]), lambda ref: LIB[ref])


def test_library_features_compose_with_the_jobs_own_query_on_the_privacy_unit():
    _, plan = _plan(_spec(["vat@1", "sector@1"]))
    assert set(plan.output_columns) == {"vat", "sector", "bad"} and set(plan.tables) == {"tax", "reg", "loans"}
    # the job's rows (units with a label) are the base; each definition joins it on the privacy unit
    assert 'LEFT JOIN (SELECT AVG("tax"."vat")' in plan.engine_sql and '"f0"."__twh_unit" = "b"."__twh_unit"' in \
        plan.engine_sql


def test_library_features_are_refused_like_any_feature_query():
    with pytest.raises(TrainingRefused, match="not among this job's datasets"):
        _plan(_spec(["vat@1", "sector@1"], datasets=("tax", "loans")))
    with pytest.raises(TrainingRefused, match="categorical feature"):
        _plan(_spec(["vat@1", "sector@1"], numeric={"vat": {"range": [0, 1]}, "sector": {"range": [0, 1]}},
                    categorical={}))
    with pytest.raises(TrainingRefused, match="feature library"):
        feature_plan(_spec(["vat@1"], categorical={}), lambda n: _Manifest(TABLES[n]), None)
    for bad in (["vat"], ["vat@1", "vat@2"], ["Vat@1"]):
        with pytest.raises(JobSpecInvalid):
            _spec(bad)
    with pytest.raises(JobSpecInvalid):  # sql: goes with library features only
        import yaml

        parse_job_spec(yaml.safe_dump({"name": "t", "purpose": "p", "datasets": ["tax"], "train": {
            "features": "SELECT AVG(t.vat) AS vat FROM tax t GROUP BY t.uscc", "sql": "SELECT 1", "label": "vat",
            "numeric": {}, "privacy": {"epsilon": 1, "delta": 1e-7}}}))
