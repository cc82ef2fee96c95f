"""Models built by trusted code from a declarative :class:`~.spec.ModelSpec` (a registry).

Every model takes ``(x_num, x_cat)`` — float features scaled to [0, 1] and category indices —
and returns one logit (or value) per row. Only ``nn.Linear``, ``nn.Embedding`` and parameter-free
functions are used, so Opacus' ghost clipping covers every layer and there are no buffers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .features import input_width
from .spec import CategoricalFeature, TrainConfig

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def _stack(width: int, hidden: tuple[int, ...], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), _ACTIVATIONS[activation]()]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


class FlatModel(nn.Module):
    """Logistic regression (no hidden layer) or an MLP over numeric + one-hot features."""

    def __init__(self, n_numeric: int, categorical: tuple[CategoricalFeature, ...], hidden: tuple[int, ...],
                 activation: str) -> None:
        super().__init__()
        self.cardinalities = [f.cardinality for f in categorical]
        width = n_numeric + sum(self.cardinalities)
        self.net = _stack(width, hidden, activation)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [x_num] + [F.one_hot(x_cat[:, i], c).to(x_num.dtype) for i, c in enumerate(self.cardinalities)]
        return self.net(torch.cat(parts, dim=1)).squeeze(-1)


class EmbedModel(nn.Module):
    """One embedding per categorical feature, concatenated with the numeric ones, then an MLP."""

    def __init__(self, n_numeric: int, categorical: tuple[CategoricalFeature, ...], hidden: tuple[int, ...],
                 activation: str, dim: int) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(f.cardinality, dim) for f in categorical)
        self.net = _stack(n_numeric + dim * len(categorical), hidden, activation)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        parts = [x_num] + [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)]
        return self.net(torch.cat(parts, dim=1)).squeeze(-1)


def _logreg(cfg: TrainConfig) -> nn.Module:
    return FlatModel(len(cfg.numeric), cfg.categorical, (), cfg.model.activation)


def _mlp(cfg: TrainConfig) -> nn.Module:
    return FlatModel(len(cfg.numeric), cfg.categorical, cfg.model.hidden, cfg.model.activation)


def _embed_mlp(cfg: TrainConfig) -> nn.Module:
    return EmbedModel(len(cfg.numeric), cfg.categorical, cfg.model.hidden, cfg.model.activation,
                      cfg.model.embedding_dim)


#: model kind -> builder (``custom`` models come from :mod:`.graph`, never from here)
BUILDERS: dict[str, Callable[[TrainConfig], nn.Module]] = {"logreg": _logreg, "mlp": _mlp, "embed_mlp": _embed_mlp}


def build_model(cfg: TrainConfig) -> nn.Module:
    return BUILDERS[cfg.model.kind](cfg)


__all__ = ["BUILDERS", "EmbedModel", "FlatModel", "build_model", "input_width"]
