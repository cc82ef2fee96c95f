"""The declarative models' forward pass in NumPy: what inference runs, without torch.

:func:`forward` computes exactly what :func:`.models.build_model`'s module computes (float32, the
same layer order and names), from weights read with :mod:`.weights`; :func:`expected_shapes`
names every tensor the model has, so weights are checked before anything runs. A categorical
feature's one-hot block is never built: its rows of the first layer are gathered instead.
Custom graphs are not handled here (they run in the trainer's sandbox, interpreted by torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from .spec import TrainConfig


def _widths(cfg: TrainConfig) -> tuple[int, list[int]]:
    """The first layer's input width and the widths of the layers after it (ending in 1)."""
    n_num = len(cfg.numeric)
    if cfg.model.kind == "embed_mlp":
        width = n_num + cfg.model.embedding_dim * len(cfg.categorical)
    else:
        width = n_num + sum(f.cardinality for f in cfg.categorical)
    hidden = [] if cfg.model.kind == "logreg" else list(cfg.model.hidden)
    return width, [*hidden, 1]


def expected_shapes(cfg: TrainConfig) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) of every tensor of the declarative model (as ``named_parameters``)."""
    if cfg.model.kind not in ("logreg", "mlp", "embed_mlp"):
        raise ValueError(f"{cfg.model.kind} is not a declarative model")
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    if cfg.model.kind == "embed_mlp":
        for i, f in enumerate(cfg.categorical):
            out[f"embeddings.{i}.weight"] = ((f.cardinality, cfg.model.embedding_dim), "float32")
    width, layers = _widths(cfg)
    for k, h in enumerate(layers):
        out[f"net.{2 * k}.weight"] = ((h, width), "float32")
        out[f"net.{2 * k}.bias"] = ((h,), "float32")
        width = h
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    try:
        from scipy.special import erf
    except ImportError:  # pragma: no cover - scipy comes with the train extra
        return np.vectorize(math.erf, otypes=[np.float32])(x)
    return erf(x).astype(np.float32)


def _activate(x: np.ndarray, name: str) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, 0, out=x)
    if name == "tanh":
        return np.tanh(x)
    if name == "gelu":  # torch's default GELU: the exact erf form
        return (0.5 * x * (1.0 + _erf(x / np.float32(math.sqrt(2.0))))).astype(np.float32)
    raise ValueError(f"unknown activation {name}")


def forward(cfg: TrainConfig, weights: Mapping[str, np.ndarray], x_num: np.ndarray, x_cat: np.ndarray) -> np.ndarray:
    """One logit (or value) per row, float32, as the torch module would compute it."""
    x_num = np.asarray(x_num, dtype=np.float32)
    x_cat = np.asarray(x_cat, dtype=np.int64)
    n_num = len(cfg.numeric)
    _, layers = _widths(cfg)
    w0, b0 = weights["net.0.weight"], weights["net.0.bias"]
    h = x_num @ w0[:, :n_num].T + b0 if n_num else np.broadcast_to(b0, (len(x_cat), len(b0))).copy()
    offset = n_num
    for i, f in enumerate(cfg.categorical):
        idx = np.clip(x_cat[:, i], 0, f.cardinality - 1)
        if cfg.model.kind == "embed_mlp":
            dim = cfg.model.embedding_dim
            h += weights[f"embeddings.{i}.weight"][idx] @ w0[:, offset:offset + dim].T
            offset += dim
        else:  # the one-hot block's product is the column of the block at the category
            h += w0[:, offset:offset + f.cardinality].T[idx]
            offset += f.cardinality
    h = h.astype(np.float32, copy=False)
    for k in range(1, len(layers)):
        h = _activate(h, cfg.model.activation)
        h = (h @ weights[f"net.{2 * k}.weight"].T + weights[f"net.{2 * k}.bias"]).astype(np.float32, copy=False)
    return h[:, 0]


__all__ = ["expected_shapes", "forward"]
