"""Custom models without trusting their code: an exported, allow-listed, pure graph.

Two halves, on two sides of a sandbox wall:

* :func:`export_graph` runs **inside the user's sandbox**, against mock inputs only: it traces
  the user's ``nn.Module`` with ``torch.export`` (batch dimension dynamic) and writes the graph
  as plain JSON (operator names, argument references, literals) and the initial parameters as
  safetensors. No pickle anywhere.
* :func:`load_graph` runs in **trusted code** (the trainer): it parses that JSON, refuses
  anything outside the operator allow-list, any buffer, any mutation, BatchNorm and
  higher-order operators, checks the weights against the declared names/shapes/dtypes, and
  returns a :class:`GraphModel` that *interprets* the graph — the user's Python never runs
  there. :func:`check_no_batch_mixing` then compares a batched forward with per-row forwards.

:class:`GraphModel` also evaluates every row on its own (``torch.func.vmap`` over single-row
batches), so even a graph that slipped a batch reduction past the checks could not make one
row's output (and hence its gradient) depend on another row.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import ModelRefused

GRAPH_FORMAT = "twh-graph/1"
MAX_NODES = 2000
MAX_PARAMS = 64
MAX_PARAM_ELEMENTS = 20_000_000

#: the operators a custom graph may use: pure, per-element or per-row tensor functions
ALLOWED_OPS: frozenset[str] = frozenset({
    "aten.linear.default", "aten.matmul.default", "aten.mm.default", "aten.addmm.default", "aten.t.default",
    "aten.embedding.default", "aten.layer_norm.default",
    "aten.relu.default", "aten.sigmoid.default", "aten.tanh.default", "aten.gelu.default", "aten.silu.default",
    "aten.leaky_relu.default", "aten.softplus.default", "aten.elu.default", "aten.hardtanh.default",
    "aten.add.Tensor", "aten.sub.Tensor", "aten.mul.Tensor", "aten.div.Tensor", "aten.rsub.Scalar",
    "aten.add.Scalar", "aten.mul.Scalar", "aten.neg.default", "aten.exp.default", "aten.log.default",
    "aten.abs.default", "aten.pow.Tensor_Scalar", "aten.clamp.default", "aten.sqrt.default",
    "aten.cat.default", "aten.flatten.using_ints", "aten.view.default", "aten.reshape.default",
    "aten.squeeze.dim", "aten.squeeze.dims", "aten.unsqueeze.default", "aten.transpose.int",
    "aten.permute.default", "aten.select.int", "aten.slice.Tensor", "aten.expand.default",
    "aten.sum.dim_IntList", "aten.mean.dim", "aten.softmax.int", "aten._softmax.default",
    "aten.log_softmax.int", "aten.one_hot.default", "aten._to_copy.default", "aten.to.dtype",
    "aten.dropout.default", "aten.sym_size.int", "aten.contiguous.default", "aten.clone.default",
})
_DTYPES = {"torch.float32": torch.float32, "torch.float64": torch.float64, "torch.int64": torch.int64,
           "torch.bool": torch.bool}
_OPS: dict[str, Any] = {}


def _op(name: str) -> Any:
    """Resolve an allow-listed ``aten.op.overload`` name; only names in ALLOWED_OPS ever get here."""
    if name not in _OPS:
        _, op, overload = name.split(".")
        _OPS[name] = getattr(getattr(torch.ops.aten, op), overload)
    return _OPS[name]


# -- the user's side (inside their sandbox, mock data only) ----------------------------------

def _encode_arg(a: Any) -> Any:
    import torch.fx as fx

    if isinstance(a, fx.Node):
        return {"node": a.name}
    if isinstance(a, list | tuple):
        return [_encode_arg(x) for x in a]
    if a is None or isinstance(a, bool | int | float | str):
        return a
    if isinstance(a, torch.dtype):
        return {"dtype": str(a)}
    if isinstance(a, torch.device):
        return {"device": str(a)}
    if isinstance(a, torch.layout | torch.memory_format):
        return {"other": str(a)}
    return {"unsupported": type(a).__name__}


def _target_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    return str(getattr(target, "__name__", type(target).__name__))[:80]


def export_graph(module: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor) -> tuple[dict[str, Any],
                                                                                        dict[str, torch.Tensor]]:
    """Trace ``module`` on mock inputs; return (graph JSON object, initial state by name).

    Everything is recorded as found (buffers, mutations, odd operators included): judging it
    is the trusted side's job, so a tampered file gets exactly the same checks.
    """
    from torch.export import Dim, export

    batch = Dim("batch", min=2, max=1 << 24)
    ep = export(module.eval(), (x_num, x_cat), dynamic_shapes=({0: batch}, {0: batch}), strict=False)
    sig = ep.graph_signature
    inputs = [{"kind": s.kind.name, "target": s.target, "name": getattr(s.arg, "name", None)}
              for s in sig.input_specs]
    outputs = [{"kind": s.kind.name, "target": s.target} for s in sig.output_specs]
    nodes = []
    for n in ep.graph.nodes:
        if n.op == "placeholder":
            continue
        node = {"name": n.name, "op": n.op, "target": _target_name(n.target), "args": _encode_arg(list(n.args)),
                "kwargs": {k: _encode_arg(v) for k, v in n.kwargs.items()}}
        if n.op == "get_attr":  # a nested graph (higher-order operator): say what it contains
            sub = getattr(ep.graph_module, str(n.target), None)
            if isinstance(sub, torch.fx.GraphModule):
                node["contains"] = [_target_name(m.target) for m in sub.graph.nodes if m.op == "call_function"]
        nodes.append(node)
    state = {**{k: v.detach().clone() for k, v in ep.state_dict.items()},
             **{k: v.detach().clone() for k, v in ep.constants.items() if isinstance(v, torch.Tensor)}}
    params = {s.target: {"shape": list(state[s.target].shape), "dtype": str(state[s.target].dtype)}
              for s in sig.input_specs if s.target in state}
    graph = {"format": GRAPH_FORMAT, "inputs": inputs, "outputs": outputs, "nodes": nodes, "tensors": params}
    return graph, state


def graph_bytes(graph: Mapping[str, Any]) -> bytes:
    return (json.dumps(graph, sort_keys=True, separators=(",", ":")) + "\n").encode()


def graph_sha256(graph: Mapping[str, Any]) -> str:
    return hashlib.sha256(graph_bytes(graph)).hexdigest()


# -- the trusted side -----------------------------------------------------------------------

@dataclass(frozen=True)
class CheckedGraph:
    nodes: tuple[dict[str, Any], ...]
    #: placeholder name -> parameter name, in input order
    params: tuple[tuple[str, str], ...]
    user_inputs: tuple[str, str]
    output: Any
    shapes: dict[str, tuple[tuple[int, ...], str]]
    sha256: str


def _refuse(reason: str) -> ModelRefused:
    return ModelRefused(f"custom model refused: {reason}")


def _walk_refs(a: Any, known: set[str]) -> None:
    if isinstance(a, dict):
        if set(a) == {"node"}:
            if a["node"] not in known:
                raise _refuse("an operator argument refers to an unknown value")
            return
        if set(a) == {"dtype"}:
            if a["dtype"] not in _DTYPES:
                raise _refuse(f"dtype {str(a['dtype'])[:30]} is not allowed")
            return
        if set(a) == {"device"} and a["device"] == "cpu":
            return
        raise _refuse("an operator argument is not a tensor, number, list or dtype")
    if isinstance(a, list):
        for x in a:
            _walk_refs(x, known)
        return
    if not (a is None or isinstance(a, bool | int | float)):
        raise _refuse("an operator argument is not a tensor, number, list or dtype")


def check_graph(graph: Any) -> CheckedGraph:
    """Refuse, with a reason, any graph the trainer must not run (see the module docstring)."""
    if not isinstance(graph, dict) or graph.get("format") != GRAPH_FORMAT:
        raise _refuse(f"not a {GRAPH_FORMAT} graph")
    inputs, outputs, nodes = graph.get("inputs"), graph.get("outputs"), graph.get("nodes")
    tensors = graph.get("tensors")
    if not (isinstance(inputs, list) and isinstance(outputs, list) and isinstance(nodes, list)
            and isinstance(tensors, dict)):
        raise _refuse("the graph file is malformed")
    if len(nodes) > MAX_NODES or len(tensors) > MAX_PARAMS:
        raise _refuse(f"more than {MAX_NODES} operators or {MAX_PARAMS} parameter tensors")
    targets = [str(n.get("target", "")) if isinstance(n, dict) else "" for n in nodes]
    targets += [str(t) for n in nodes if isinstance(n, dict) and isinstance(n.get("contains"), list)
                for t in n["contains"]]
    # The specific reasons first: they tell the author what to change.
    if any("batch_norm" in t for t in targets):
        raise _refuse("BatchNorm normalises over the batch (one row's output depends on the others) and keeps "
                      "running statistics in buffers DP-SGD never noises; use LayerNorm")
    kinds = [i.get("kind") if isinstance(i, dict) else None for i in inputs]
    if "BUFFER" in kinds or "CONSTANT_TENSOR" in kinds:
        names = [str(i.get("target"))[:40] for i in inputs if i.get("kind") in ("BUFFER", "CONSTANT_TENSOR")]
        raise _refuse(f"the model has buffers/constant tensors ({', '.join(names[:5])}), which DP-SGD never "
                      "noises and which could carry training rows out; only parameters are trained and released")
    if any(not isinstance(o, dict) or o.get("kind") != "USER_OUTPUT" for o in outputs) or len(outputs) != 1:
        raise _refuse("the model writes into its parameters, buffers or inputs (a mutation output), or does not "
                      "return exactly one tensor")
    for t in targets:
        if t.split(".")[1:2] and (t.split(".")[1].endswith("_") and not t.split(".")[1].startswith("_")):
            raise _refuse(f"operator {t[:60]} writes into a tensor in place: a model may not copy inputs into "
                          "its parameters or buffers")
    params: list[tuple[str, str]] = []
    user: list[str] = []
    for i in inputs:
        if i["kind"] == "PARAMETER" and isinstance(i.get("target"), str) and isinstance(i.get("name"), str):
            params.append((i["name"], i["target"]))
        elif i["kind"] == "USER_INPUT" and isinstance(i.get("name"), str):
            user.append(i["name"])
        else:
            raise _refuse(f"input kind {str(i.get('kind'))[:30]} is not allowed")
    if len(user) != 2:
        raise _refuse("the model must take exactly two inputs: (x_num, x_cat)")
    shapes: dict[str, tuple[tuple[int, ...], str]] = {}
    for _, target in params:
        t = tensors.get(target)
        if not isinstance(t, dict) or t.get("dtype") != "torch.float32" or not isinstance(t.get("shape"), list):
            raise _refuse(f"parameter {target[:40]} must be declared as float32 with a shape")
        shape = tuple(int(s) for s in t["shape"])
        if any(s < 0 for s in shape):
            raise _refuse("a parameter has a negative dimension")
        shapes[target] = (shape, "float32")
    if sum(_numel(s) for s, _ in shapes.values()) > MAX_PARAM_ELEMENTS:
        raise _refuse(f"more than {MAX_PARAM_ELEMENTS} parameters")
    known = {p for p, _ in params} | set(user)
    out_arg = None
    for n in nodes:
        if not isinstance(n, dict) or not isinstance(n.get("name"), str):
            raise _refuse("the graph file is malformed")
        if n.get("op") == "output":
            out_arg = n.get("args")
            _walk_refs(out_arg, known)
            continue
        if n.get("op") != "call_function":
            raise _refuse(f"graph node kind {str(n.get('op'))[:30]} (submodules, attributes) is not allowed")
        if n.get("target") not in ALLOWED_OPS:
            raise _refuse(f"operator {str(n.get('target'))[:60]} is not on the allow-list")
        if not isinstance(n.get("kwargs", {}), dict):
            raise _refuse("the graph file is malformed")
        _walk_refs(n.get("args", []), known)
        for v in n.get("kwargs", {}).values():
            _walk_refs(v, known)
        known.add(n["name"])
    if out_arg is None:
        raise _refuse("the graph has no output")
    return CheckedGraph(tuple(n for n in nodes if n.get("op") == "call_function"), tuple(params),
                        (user[0], user[1]), out_arg, shapes, graph_sha256(graph))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _resolve(a: Any, env: Mapping[str, Any]) -> Any:
    if isinstance(a, dict):
        if "node" in a:
            return env[a["node"]]
        if "dtype" in a:
            return _DTYPES[a["dtype"]]
        if "device" in a:
            return torch.device("cpu")
    if isinstance(a, list):
        return [_resolve(x, env) for x in a]
    return a


class _Core(nn.Module):
    """Owns the parameters and takes ONE tensor (numeric features, then category indices as
    floats): Opacus computes per-sample gradients of a layer it has no rule for by running the
    layer on one row at a time (functorch), which needs a single-input layer."""

    def __init__(self, graph: CheckedGraph, weights: Mapping[str, torch.Tensor], n_numeric: int) -> None:
        super().__init__()
        self.graph = graph
        self.n_numeric = n_numeric
        self.keys: dict[str, str] = {}
        for i, (_, target) in enumerate(graph.params):
            key = f"p{i}"
            self.keys[target] = key
            self.register_parameter(key, nn.Parameter(weights[target].detach().clone().float()))

    def run(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        env: dict[str, Any] = {ph: getattr(self, self.keys[t]) for ph, t in self.graph.params}
        env[self.graph.user_inputs[0]], env[self.graph.user_inputs[1]] = x_num, x_cat
        for n in self.graph.nodes:
            args = _resolve(n.get("args", []), env)
            kwargs = {k: _resolve(v, env) for k, v in n.get("kwargs", {}).items()}
            env[n["name"]] = _op(n["target"])(*args, **kwargs)
        out = _resolve(self.graph.output, env)
        while isinstance(out, list | tuple):
            if len(out) != 1:
                raise ModelRefused("custom model refused: it must return exactly one tensor")
            out = out[0]
        if not isinstance(out, torch.Tensor):
            raise ModelRefused("custom model refused: it must return a tensor")
        return out.reshape(out.shape[0], -1)[:, 0] if out.dim() > 1 else out

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., : self.n_numeric], x[..., self.n_numeric:].round().long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # every row on its own: no graph can make one row's output depend on another row
        def one(row: torch.Tensor) -> torch.Tensor:
            xn, xc = self.split(row.unsqueeze(0))
            return self.run(xn, xc)[0]

        return torch.func.vmap(one, randomness="different")(x)


class GraphModel(nn.Module):
    """Interprets a :class:`CheckedGraph`; parameters are ordinary ``nn.Parameter``s (no buffers)."""

    def __init__(self, graph: CheckedGraph, weights: Mapping[str, torch.Tensor], n_numeric: int) -> None:
        super().__init__()
        self.core = _Core(graph, weights, n_numeric)

    def parameter_names(self) -> dict[str, str]:
        """Exported name -> the module's own parameter name."""
        return {target: f"core.{key}" for target, key in self.core.keys.items()}

    def forward_batched(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """The graph over the whole batch at once (only used to detect batch mixing)."""
        return self.core.run(x_num, x_cat)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        return self.core(torch.cat([x_num, x_cat.to(x_num.dtype)], dim=1))


def load_graph(graph: Any, weights: Mapping[str, torch.Tensor], n_numeric: int) -> GraphModel:
    """Check the graph and its initial weights; return the interpreter module."""
    checked = check_graph(graph)
    expected = {t for _, t in checked.params}
    if set(weights) != expected:
        raise ModelRefused("custom model refused: the initial weights do not match the graph's parameters")
    for target, (shape, _) in checked.shapes.items():
        w = weights[target]
        if tuple(w.shape) != shape or w.dtype != torch.float32 or not torch.isfinite(w).all():
            raise ModelRefused(f"custom model refused: initial weight {target[:40]} has the wrong shape/dtype "
                               "or non-finite values")
    return GraphModel(checked, weights, n_numeric)


def check_no_batch_mixing(model: GraphModel, x_num: torch.Tensor, x_cat: torch.Tensor) -> None:
    """Refuse a graph whose batched output differs from its row-by-row output."""
    with torch.no_grad():
        try:
            batched = model.forward_batched(x_num, x_cat)
            single = model(x_num, x_cat)
        except ModelRefused:
            raise
        except Exception as exc:  # the graph does not run on these inputs
            raise ModelRefused(f"custom model refused: the graph does not run on inputs of the declared "
                               f"features ({type(exc).__name__})") from None
    if batched.shape != single.shape or not torch.allclose(batched, single, rtol=1e-4, atol=1e-5):
        raise ModelRefused("custom model refused: it mixes samples across the batch (a row's output depends "
                           "on other rows), so its per-sample gradients would not be per-sample")
