"""Per-sample clipping for the declarative models without per-sample gradients ("book-keeping").

The declarative models (:mod:`.models`) are an input layer (numeric features plus one-hot
categories, or embeddings) followed by ``Linear`` layers with elementwise activations. For such a
network one forward pass and one written-out backward pass give, for every layer *k*, the
layer's inputs ``A_k`` (B × in) and the loss gradients w.r.t. its outputs ``G_k`` (B × out).
Then, for sample *i* (Bu et al. 2022, "book-keeping"; Goodfellow 2015 for the norm identity):

* the per-sample gradient of ``W_k`` is ``g_i a_iᵀ``, so its squared norm is ``‖g_i‖²·‖a_i‖²``
  (the bias adds ``‖g_i‖²``) — no per-sample gradient is ever materialised;
* an embedding row is used once per sample, so its per-sample gradient norm is the norm of the
  gradient w.r.t. that sample's embedding vector;
* with clip factors ``c_i = min(1, C / (‖∇_i‖ + 1e-6))`` (Opacus' formula), the clipped sum is
  one matmul per layer, ``(c ⊙ G_k)ᵀ A_k``, and one ``index_add`` per embedding.

The result equals clipping each sample's full gradient to norm C and summing (the tests compare it
with a naive per-example loop in float64). The backward pass calls the aten kernels autograd
itself runs for ReLU, tanh and exact GELU, with the loss gradients of BCE-with-logits and squared
error written out; no autograd graph or hook is involved. Any model that is not exactly one of
these shapes is not "supported" and takes the Opacus path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .models import EmbedModel, FlatModel

#: activation module type -> (forward, backward(grad wrt output, pre-activation z, output h)); the
#: backward is the aten kernel autograd itself runs for that activation
_ACTIVATIONS: dict[type, tuple[Callable[[torch.Tensor], torch.Tensor],
                               Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    nn.ReLU: (torch.relu, lambda g, z, h: torch.ops.aten.threshold_backward(g, h, 0)),
    nn.Tanh: (torch.tanh, lambda g, z, h: torch.ops.aten.tanh_backward(g, h)),
    nn.GELU: (F.gelu, lambda g, z, h: torch.ops.aten.gelu_backward(g, z, approximate="none")),
}


@dataclass(frozen=True)
class _Shape:
    linears: tuple[nn.Linear, ...]
    activations: tuple[type, ...]  # one per hidden layer
    embeddings: tuple[nn.Embedding, ...]  # EmbedModel only
    cardinalities: tuple[int, ...]  # FlatModel only (one-hot widths)


def _shape(model: nn.Module) -> _Shape | None:
    if type(model) not in (FlatModel, EmbedModel) or list(model.buffers()):
        return None
    mods = list(model.net)
    linears, acts = tuple(mods[0::2]), tuple(type(m) for m in mods[1::2])
    if not all(type(m) is nn.Linear and m.bias is not None for m in linears) or len(linears) != len(acts) + 1:
        return None
    for m in mods[1::2]:
        if type(m) not in _ACTIVATIONS or (type(m) is nn.GELU and m.approximate != "none"):
            return None
    if type(model) is EmbedModel:
        embs = tuple(model.embeddings)
        if not all(type(e) is nn.Embedding and e.padding_idx is None and e.max_norm is None for e in embs):
            return None
        return _Shape(linears, acts, embs, ())
    return _Shape(linears, acts, (), tuple(model.cardinalities))


def supports(model: nn.Module) -> bool:
    """Whether :func:`clipped_grad_sum` covers every parameter of ``model``."""
    shape = _shape(model)
    if shape is None:
        return False
    covered = {id(p) for m in (*shape.linears, *shape.embeddings) for p in m.parameters()}
    return covered == {id(p) for p in model.parameters()}


@dataclass
class ClippedSum:
    grads: list[tuple[nn.Parameter, torch.Tensor]]  # Σ_i c_i ∇_i, per parameter
    norms: torch.Tensor  # ‖∇_i‖ before clipping, per sample
    loss_sum: float


def clipped_grad_sum(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, loss: str,
                     max_grad_norm: float, out: dict[int, torch.Tensor] | None = None) -> ClippedSum:
    """Σ_i clip_C(∇_θ loss(model(x_i), y_i)) for a batch, from one forward and one backward pass.

    ``out`` (parameter id -> tensor of its shape) receives the sums in place; the trainer passes
    views of one flat gradient buffer."""
    shape = _shape(model)
    if shape is None:
        raise TypeError("not a declarative model: use the Opacus path")
    return clipped_sum_of_shape(shape, x_num, x_cat, y, loss, max_grad_norm, out)


def shape_of(model: nn.Module) -> _Shape:
    shape = _shape(model)
    if shape is None or not supports(model):
        raise TypeError("not a declarative model: use the Opacus path")
    return shape


def clipped_sum_of_shape(shape: _Shape, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, loss: str,
                         max_grad_norm: float, out: dict[int, torch.Tensor] | None = None,
                         inputs: torch.Tensor | None = None) -> ClippedSum:
    """As :func:`clipped_grad_sum`; ``inputs``: the batch's rows of :func:`input_matrix` (then
    ``x_num`` is unused), so a one-hot model's first-layer input is not rebuilt every step."""
    with torch.no_grad():
        return _clipped_grad_sum(shape, x_num, x_cat, y, loss, max_grad_norm, out, inputs)


def input_matrix(shape: _Shape, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor | None:
    """The first layer's input for these rows — numeric features then one-hot categories, in the
    weights' dtype — for a one-hot model (``None`` for embeddings, whose rows are parameters)."""
    if shape.embeddings:
        return None
    with torch.no_grad():
        return _flat_input(shape, x_num, x_cat)


def _flat_input(shape: _Shape, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
    dtype = shape.linears[0].weight.dtype
    x_num = x_num.to(dtype)
    parts = [x_num] + [F.one_hot(x_cat[:, j], c).to(dtype) for j, c in enumerate(shape.cardinalities)]
    return torch.cat(parts, dim=1) if len(parts) > 1 else x_num


def _clipped_grad_sum(shape: _Shape, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor, loss: str,
                      max_grad_norm: float, out: dict[int, torch.Tensor] | None,
                      given: torch.Tensor | None = None) -> ClippedSum:
    dtype = shape.linears[0].weight.dtype
    if given is not None and not shape.embeddings:
        a = given
    elif shape.embeddings:
        x_num = x_num.to(dtype)
        parts = [x_num] + [e.weight[x_cat[:, j]] for j, e in enumerate(shape.embeddings)]
        a = torch.cat(parts, dim=1) if len(parts) > 1 else x_num
    else:
        a = _flat_input(shape, x_num, x_cat)
    inputs, pre = [a], []
    for k, lin in enumerate(shape.linears):
        z = torch.addmm(lin.bias, a, lin.weight.t())
        pre.append(z)
        if k < len(shape.activations):
            a = _ACTIVATIONS[shape.activations[k]][0](z)
            inputs.append(a)
    logit, y = pre[-1].squeeze(-1), y.to(dtype)
    if loss == "bce":
        g = torch.sigmoid(logit) - y
        loss_sum = float(F.binary_cross_entropy_with_logits(logit, y, reduction="sum"))
    elif loss == "mse":
        diff = logit - y
        g = 2.0 * diff
        loss_sum = float(torch.linalg.vecdot(diff, diff))
    else:
        raise ValueError(f"unknown loss {loss!r}")
    g = g.unsqueeze(1)
    sq = torch.zeros(len(y), dtype=dtype)
    out_grads: list[torch.Tensor] = [g] * len(shape.linears)
    for k in range(len(shape.linears) - 1, -1, -1):
        out_grads[k] = g
        a = inputs[k]
        sq.addcmul_(torch.linalg.vecdot(g, g), torch.linalg.vecdot(a, a).add_(1.0))  # weight (ghost norm) + bias
        if k > 0:
            g = _ACTIVATIONS[shape.activations[k - 1]][1](g @ shape.linears[k].weight, pre[k - 1], a)
    emb_grads: list[torch.Tensor] = []
    if shape.embeddings:
        g_in = g @ shape.linears[0].weight  # gradient w.r.t. the first layer's input
        off = x_num.shape[1]
        for e in shape.embeddings:
            ge = g_in[:, off:off + e.embedding_dim]
            sq += torch.linalg.vecdot(ge, ge)
            emb_grads.append(ge)
            off += e.embedding_dim
    norms = sq.sqrt()
    c = (max_grad_norm / (norms + 1e-6)).clamp_(max=1.0).unsqueeze(1)  # Opacus' clip factor
    grads: list[tuple[nn.Parameter, torch.Tensor]] = []
    for j, e in enumerate(shape.embeddings):
        gw = out[id(e.weight)].zero_() if out is not None else torch.zeros_like(e.weight)
        grads.append((e.weight, gw.index_add_(0, x_cat[:, j], emb_grads[j] * c)))
    for k, lin in enumerate(shape.linears):
        cg = out_grads[k] * c
        if out is not None:
            grads.append((lin.weight, torch.mm(cg.t(), inputs[k], out=out[id(lin.weight)])))
            grads.append((lin.bias, torch.sum(cg, 0, out=out[id(lin.bias)])))
        else:
            grads.append((lin.weight, cg.t() @ inputs[k]))
            grads.append((lin.bias, cg.sum(0)))
    return ClippedSum(grads, norms, loss_sum)
