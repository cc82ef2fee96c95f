"""The ``train:`` block of ``job.yaml`` (pydantic, at the YAML edge) → :class:`dp.training.TrainConfig`.

::

    train:
      features: |                      # the feature query (see sandbox.training.features)
        SELECT r.industry, AVG(t.vat_paid) AS vat, MAX(l.defaulted) AS defaulted
        FROM bank_loans l JOIN enterprise_registry r ON l.uscc = r.uscc
                          JOIN tax_payments t ON t.uscc = l.uscc
        GROUP BY l.uscc, r.industry
      label: defaulted
      numeric: {vat: {range: [0, 200000], log: true}}
      categorical: {industry: [C, E, F, G, H, I, M]}
      model: {kind: embed_mlp, hidden: [32], embedding_dim: 4}   # or {kind: custom, module: model.py}
      loss: bce
      optimizer: {kind: sgd, lr: 0.5, momentum: 0}
      epochs: 5
      batch_size: 256                  # expected Poisson batch: sampling rate = batch_size / N
      max_grad_norm: 1.0
      privacy: {epsilon: 3, delta: 1e-6}

The privacy unit is the datasets' policy ``privacy_unit`` (one row per unit is kept).

Features may come from the feature library by name instead (``sandbox.products.features``),
optionally alongside a query of the job's own (e.g. the label); the model's inputs are then the
same definitions inference computes (no training/serving skew)::

    train:
      features: [avg_vat@1, avg_headcount@1, industry@1]
      sql: |                           # optional: more columns, joined on the privacy unit
        SELECT MAX(l.defaulted) AS defaulted FROM bank_loans l GROUP BY l.uscc
      label: defaulted
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dp.training import CategoricalFeature, ModelSpec, NumericFeature, SpecInvalid, TrainConfig

from ..errors import JobSpecInvalid

#: a library feature by name and version
FEATURE_REF = re.compile(r"^[a-z][a-z0-9_]{0,62}@[1-9][0-9]{0,5}$")


class _Numeric(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    range: tuple[float, float]
    log: bool = False


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["logreg", "mlp", "embed_mlp", "custom"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [32], max_length=8)
    embedding_dim: int = 4
    activation: Literal["relu", "tanh", "gelu"] = "relu"
    module: str | None = None
    builder: str = "build_model"


class _Optimizer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.5
    momentum: float = 0.0


class _Privacy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # floats (the job's spec is stored as JSON); the ledger charges Budget.of(float), which reads
    # a float through its shortest decimal repr, i.e. exactly what the job wrote
    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(gt=0, le=1e-5)
    eval_epsilon: float | None = Field(default=None, gt=0)


class TrainBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: the feature query, or library features by ``name@version``
    features: str | list[str] = Field(min_length=1, max_length=20_000)
    #: with library features: an optional query of the job's own, joined on the privacy unit
    sql: str | None = Field(default=None, min_length=1, max_length=20_000)
    label: str
    numeric: dict[str, _Numeric] = Field(default_factory=dict)
    categorical: dict[str, list[str]] = Field(default_factory=dict)
    model: _Model = Field(default_factory=_Model)
    loss: Literal["bce", "mse"] = "bce"
    optimizer: _Optimizer = Field(default_factory=_Optimizer)
    epochs: int = Field(default=5, ge=1, le=1000)
    batch_size: int = Field(default=256, ge=16, le=1_000_000)
    max_grad_norm: float = Field(default=1.0, gt=0)
    holdout: float = Field(default=0.2, ge=0.05, le=0.5)
    privacy: _Privacy

    @field_validator("features")
    @classmethod
    def _features(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list):
            if len(v) > 64:
                raise ValueError("at most 64 library features")
            bad = [r for r in v if not FEATURE_REF.match(r)]
            if bad:
                raise ValueError(f"{bad[0][:80]!r} is not a library feature reference (name@version, e.g. avg_vat@1)")
            if len({r.split("@")[0] for r in v}) != len(v):
                raise ValueError("a library feature is named twice")
        return v

    @model_validator(mode="after")
    def _sql_with_refs(self) -> TrainBlock:
        if self.sql is not None and not isinstance(self.features, list):
            raise ValueError("sql: goes with library features (features: [name@version, ...]); put the whole "
                             "query under features: otherwise")
        return self

    @property
    def feature_refs(self) -> tuple[str, ...]:
        """The library features by name (empty when ``features`` is a query)."""
        return tuple(self.features) if isinstance(self.features, list) else ()

    def to_config(self) -> TrainConfig:
        eps = float(self.privacy.epsilon)
        try:
            return TrainConfig(
                label=self.label,
                numeric=tuple(NumericFeature(n, f.range[0], f.range[1], f.log) for n, f in self.numeric.items()),
                categorical=tuple(CategoricalFeature(n, tuple(str(c) for c in cs)) for n, cs in self.categorical.items()),
                model=ModelSpec(kind=self.model.kind, hidden=tuple(self.model.hidden),
                                embedding_dim=self.model.embedding_dim, activation=self.model.activation,
                                module=self.model.module, builder=self.model.builder),
                loss=self.loss, optimizer=self.optimizer.kind, learning_rate=self.optimizer.lr,
                momentum=self.optimizer.momentum, epochs=self.epochs, batch_size=self.batch_size,
                max_grad_norm=self.max_grad_norm, target_epsilon=eps, target_delta=float(self.privacy.delta),
                holdout=self.holdout,
                eval_epsilon=float(self.privacy.eval_epsilon) if self.privacy.eval_epsilon else min(1.0, eps))
        except SpecInvalid as exc:
            raise JobSpecInvalid(f"job.yaml: train: {exc.message}", details={"field": "train"}) from exc
