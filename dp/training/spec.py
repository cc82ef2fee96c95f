"""What a training run is: frozen values, validated on construction, JSON in and out.

The application parses the ``train:`` block of ``job.yaml`` (pydantic, at its edge) and hands a
:class:`TrainConfig` to the trainer sandbox as JSON; the trainer re-validates it with
:meth:`TrainConfig.from_dict`, so a tampered config file fails closed there too.

Preprocessing is declared, never learnt from the data: a numeric feature has a declared range
(values are clipped to it, optionally ``log1p``-ed, then scaled to [0, 1]); a categorical feature
lists its categories (anything else maps to an "other" slot). Statistics of the real data would
otherwise leave in the model without noise.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from .errors import SpecInvalid

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

ModelKind = Literal["logreg", "mlp", "embed_mlp", "custom"]
MODEL_KINDS = ("logreg", "mlp", "embed_mlp", "custom")
LOSSES = ("bce", "mse")
OPTIMIZERS = ("sgd", "adam")
ACTIVATIONS = ("relu", "tanh", "gelu")
MAX_HIDDEN = 1024
MAX_LAYERS = 8
MAX_CATEGORIES = 1000


def _name(v: object, what: str) -> str:
    if not isinstance(v, str) or not _NAME.fullmatch(v):
        raise SpecInvalid(f"{what} must be a plain column name (letters, digits, _), got {str(v)[:40]!r}")
    return v


def _num(v: object, what: str, lo: float, hi: float, *, open_lo: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise SpecInvalid(f"{what} must be a finite number")
    if v < lo or v > hi or (open_lo and v == lo):
        raise SpecInvalid(f"{what} must be in {'(' if open_lo else '['}{lo}, {hi}]")
    return float(v)


def _int(v: object, what: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise SpecInvalid(f"{what} must be an integer in [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class NumericFeature:
    name: str
    lo: float
    hi: float
    log: bool = False

    def __post_init__(self) -> None:
        _name(self.name, "a numeric feature")
        _num(self.lo, f"{self.name}: range low", -1e15, 1e15)
        _num(self.hi, f"{self.name}: range high", -1e15, 1e15)
        if not self.lo < self.hi:
            raise SpecInvalid(f"{self.name}: the range must have low < high")
        if self.log and self.lo < 0:
            raise SpecInvalid(f"{self.name}: a log feature needs a range starting at 0 or above")


@dataclass(frozen=True)
class CategoricalFeature:
    name: str
    categories: tuple[str, ...]

    def __post_init__(self) -> None:
        _name(self.name, "a categorical feature")
        if not 1 <= len(self.categories) <= MAX_CATEGORIES or len(set(self.categories)) != len(self.categories):
            raise SpecInvalid(f"{self.name}: list 1 to {MAX_CATEGORIES} distinct categories")
        if not all(isinstance(c, str) and len(c) <= 100 for c in self.categories):
            raise SpecInvalid(f"{self.name}: categories must be short strings")

    @property
    def cardinality(self) -> int:
        return len(self.categories) + 1  # slot 0: anything not listed (or missing)


@dataclass(frozen=True)
class ModelSpec:
    kind: ModelKind = "mlp"
    hidden: tuple[int, ...] = (32,)
    embedding_dim: int = 4
    activation: str = "relu"
    #: custom models only: the user's module file and the function that builds the nn.Module
    module: str | None = None
    builder: str = "build_model"

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise SpecInvalid(f"model.kind must be one of {', '.join(MODEL_KINDS)}")
        if self.activation not in ACTIVATIONS:
            raise SpecInvalid(f"model.activation must be one of {', '.join(ACTIVATIONS)}")
        if len(self.hidden) > MAX_LAYERS or not all(isinstance(h, int) and 1 <= h <= MAX_HIDDEN for h in self.hidden):
            raise SpecInvalid(f"model.hidden: at most {MAX_LAYERS} layers of 1..{MAX_HIDDEN} units")
        if self.kind == "mlp" and not self.hidden:
            raise SpecInvalid("model.hidden: an mlp needs at least one hidden layer (or use logreg)")
        _int(self.embedding_dim, "model.embedding_dim", 1, 64)
        if self.kind == "custom":
            if not isinstance(self.module, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}\.py", self.module):
                raise SpecInvalid("model.module must name a .py file at the top of the job folder")
            _name(self.builder, "model.builder")


@dataclass(frozen=True)
class TrainConfig:
    """Everything the trainer needs besides the feature snapshot. Floats for ε/δ: the
    accountants work in floats; the ledger charges the exact decimal the job declared."""

    label: str
    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    model: ModelSpec = field(default_factory=ModelSpec)
    loss: str = "bce"
    optimizer: str = "sgd"
    learning_rate: float = 0.5
    momentum: float = 0.0
    epochs: int = 5
    batch_size: int = 256
    max_grad_norm: float = 1.0
    target_epsilon: float = 3.0
    target_delta: float = 1e-6
    #: share of the rows kept out of training: the attack's non-members and the held-out metrics
    holdout: float = 0.2
    #: ε of the held-out metrics (noisy histograms); the held-out rows are disjoint from the
    #: training rows, so by parallel composition the certified ε stays max(ε_train, ε_eval)
    eval_epsilon: float = 1.0

    def __post_init__(self) -> None:
        _name(self.label, "label")
        names = [f.name for f in self.numeric] + [f.name for f in self.categorical]
        if not names:
            raise SpecInvalid("declare at least one feature (numeric or categorical)")
        if len(set(names)) != len(names) or self.label in names:
            raise SpecInvalid("a feature is declared twice, or the label is also a feature")
        if self.loss not in LOSSES:
            raise SpecInvalid(f"loss must be one of {', '.join(LOSSES)}")
        if self.optimizer not in OPTIMIZERS:
            raise SpecInvalid(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        _num(self.learning_rate, "learning_rate", 0, 100, open_lo=True)
        _num(self.momentum, "momentum", 0, 0.999)
        _int(self.epochs, "epochs", 1, 1000)
        _int(self.batch_size, "batch_size", 1, 1_000_000)
        _num(self.max_grad_norm, "max_grad_norm", 0, 1e6, open_lo=True)
        _num(self.target_epsilon, "privacy.epsilon", 0, 100, open_lo=True)
        _num(self.target_delta, "privacy.delta", 0, 1e-5, open_lo=True)
        _num(self.holdout, "holdout", 0.05, 0.5)
        _num(self.eval_epsilon, "eval_epsilon", 0, 100, open_lo=True)
        if self.eval_epsilon > self.target_epsilon:
            raise SpecInvalid("eval_epsilon may not exceed the training epsilon")
        if self.model.kind == "embed_mlp" and not self.categorical:
            raise SpecInvalid("embed_mlp needs categorical features (or use mlp)")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.numeric) + tuple(f.name for f in self.categorical)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["numeric"] = [asdict(f) for f in self.numeric]
        d["categorical"] = [{"name": f.name, "categories": list(f.categories)} for f in self.categorical]
        d["model"] = {**asdict(self.model), "hidden": list(self.model.hidden)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        if not isinstance(d, dict):
            raise SpecInvalid("the training config must be a mapping")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecInvalid(f"unknown training settings: {', '.join(unknown)[:200]}")
        try:
            numeric = tuple(NumericFeature(**f) for f in d.get("numeric", ()))
            categorical = tuple(CategoricalFeature(f["name"], tuple(f["categories"])) for f in d.get("categorical", ()))
            m = dict(d.get("model") or {})
            if "hidden" in m:
                m["hidden"] = tuple(m["hidden"])
            model = ModelSpec(**m)
            rest = {k: v for k, v in d.items() if k not in ("numeric", "categorical", "model")}
            return cls(numeric=numeric, categorical=categorical, model=model, **rest)
        except (TypeError, KeyError) as exc:
            raise SpecInvalid(f"the training config is malformed ({type(exc).__name__})") from None
