"""Entrypoints that run inside sandboxes (stdlib + torch; they import only this package).

* :func:`train_main` — the **trainer sandbox**: its folder holds ``train_config.json``,
  ``train.parquet``, ``holdout.parquet`` and, for a custom model, ``graph.json`` +
  ``init.safetensors`` (already checked by the supervisor; checked again here). Writes
  ``/out/model.safetensors`` and ``/out/report.json``. It has no broker and no network.
  ``report.json`` has two parts: ``released`` (DP on the held-out rows: :mod:`.evaluate`) and
  ``steward_only`` (exact row counts, training losses, timings, the membership attack), which
  the supervisor keeps out of the export.
* :func:`infer_main` — a **catalog model's inference** for a custom graph: its folder holds
  ``graph.json``, ``model.safetensors`` and ``inputs.safetensors`` (encoded features, no subject
  ids); the graph is checked again and interpreted (never user Python); writes
  ``/out/scores.safetensors`` (one logit per row).
* :func:`export_main` — the **user's sandbox**, second pass: imports the user's module, builds
  the model, traces it on mock inputs, writes ``/out/graph.json`` + ``/out/init.safetensors``.

A refusal is written to ``/out/error.json`` (code + reason) and the process exits 0, so that the
supervisor can tell a refusal (with its reason) from a crash.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

OUT = Path("/out")


def _refuse(out: Path, code: str, reason: str) -> None:
    (out / "error.json").write_text(json.dumps({"code": code, "reason": reason[:500]}))


def _train(job: Path, out: Path) -> None:
    from fractions import Fraction

    import numpy as np
    import pyarrow.parquet as pq
    import torch

    from ..noise import laplace
    from .accounting import PrivacyPlan
    from .evaluate import curve_epochs, dp_holdout_metrics, dp_loss_curve, fixed_point_loss_sum
    from .features import encode
    from .graph import check_no_batch_mixing, load_graph
    from .mia import membership_attack, per_example_loss
    from .models import build_model
    from .spec import TrainConfig
    from .threads import choose_threads
    from .trainer import predict, train_dp
    from .weights import read_safetensors, write_safetensors

    conf = json.loads((job / "train_config.json").read_text())
    cfg = TrainConfig.from_dict(conf["train"])
    plan = PrivacyPlan(**conf["plan"])
    train = encode(pq.read_table(job / "train.parquet").to_pydict(), cfg)
    hold = encode(pq.read_table(job / "holdout.parquet").to_pydict(), cfg)
    names: dict[str, str] = {}
    if cfg.model.kind == "custom":
        graph = json.loads((job / "graph.json").read_text())
        init = {k: torch.from_numpy(v.copy()) for k, v in read_safetensors((job / "init.safetensors").read_bytes()).items()}
        model = load_graph(graph, init, len(cfg.numeric))
        check_no_batch_mixing(model, torch.from_numpy(train.x_num[:32]), torch.from_numpy(train.x_cat[:32]))
        names = {v: k for k, v in model.parameter_names().items()}
    else:
        model = build_model(cfg)
    # "threads" is the most the trainer may use: small models train fastest on one (.threads)
    torch.set_num_threads(choose_threads(sum(p.numel() for p in model.parameters()),
                                         plan.n_train * plan.sample_rate, cap=int(conf.get("threads", 1))))
    at = set(curve_epochs(math.ceil(plan.steps / round(1 / plan.sample_rate))))
    curve_at: list[int] = []
    curve_sums: list[int] = []

    def held_out_loss(m: torch.nn.Module, epoch: int) -> None:
        if epoch in at:
            curve_at.append(epoch)
            curve_sums.append(fixed_point_loss_sum(per_example_loss(predict(m, hold), hold.y, cfg.loss)))

    result = train_dp(model, train, cfg, plan, after_epoch=held_out_loss)
    arrays = {names.get(k, k): v.numpy().astype(np.float32) for k, v in result.state.items()}
    (out / "model.safetensors").write_bytes(write_safetensors(arrays))
    out_train, out_hold = predict(model, train), predict(model, hold)
    # Released with the model (DP on the held-out rows, eval_epsilon split in two halves):
    half = cfg.eval_epsilon / 2
    released: dict[str, Any] = {}
    if cfg.loss == "bce":
        prob = 1 / (1 + np.exp(-out_hold))
        released["holdout"] = dp_holdout_metrics(prob, hold.y, half).to_dict()
        n_noisy = int(released["holdout"]["n_noisy"])
    else:
        n_noisy = max(0, int(laplace([len(hold)], 1, Fraction(str(half))).values[0]))
    released["n_holdout_noisy"] = n_noisy
    released["holdout_loss_curve"] = dp_loss_curve(curve_at, curve_sums, half, n_noisy).to_dict()
    # For the stewards only (exact statistics of the rows, timings, the attack): never exported.
    steward_only: dict[str, Any] = {
        "epoch_losses_train": result.epoch_losses, "samples": result.samples, "path": result.path,
        "seconds": round(result.seconds, 3), "samples_per_second": round(result.samples_per_second, 1),
        "peak_rss_mb": round(result.peak_rss_mb, 1), "n_train": len(train), "n_holdout": len(hold),
        "attack": membership_attack(out_train, train.y, out_hold, hold.y, cfg.loss).to_dict(),
    }
    report = {"steps": result.steps, "released": released, "steward_only": steward_only}
    (out / "report.json").write_text(json.dumps(report, allow_nan=True))


def train_main(job: str = ".", out: str = str(OUT)) -> int:
    from .errors import TrainingError

    try:
        _train(Path(job), Path(out))
    except TrainingError as exc:
        _refuse(Path(out), exc.code, exc.message)
    return 0


def infer_main(job: str = ".", out: str = str(OUT)) -> int:
    import numpy as np
    import torch

    from .errors import TrainingError
    from .graph import load_graph
    from .weights import read_safetensors, write_safetensors

    try:
        graph = json.loads(Path(job, "graph.json").read_text())
        weights = {k: torch.from_numpy(v.copy()) for k, v in
                   read_safetensors(Path(job, "model.safetensors").read_bytes()).items()}
        inputs = read_safetensors(Path(job, "inputs.safetensors").read_bytes())
        x_num = torch.from_numpy(inputs["x_num"].astype(np.float32))
        x_cat = torch.from_numpy(inputs["x_cat"].astype(np.int64))
        model = load_graph(graph, weights, x_num.shape[1])
        with torch.no_grad():
            logits = model(x_num, x_cat).numpy().astype(np.float32).reshape(-1)
    except TrainingError as exc:
        _refuse(Path(out), exc.code, exc.message)
        return 0
    Path(out, "scores.safetensors").write_bytes(write_safetensors({"logits": logits}))
    return 0


def export_main(job: str = ".", out: str = str(OUT)) -> int:
    import importlib.util

    import torch

    from .errors import TrainingError
    from .graph import export_graph, graph_bytes
    from .weights import write_safetensors

    conf = json.loads(Path(job, "twh_mock.json").read_text())
    try:
        spec = importlib.util.spec_from_file_location("twh_user_model", Path(job, conf["module"]))
        if spec is None or spec.loader is None:
            raise TrainingError("the model module cannot be loaded", code="model_refused")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        builder = getattr(mod, conf["builder"], None)
        if not callable(builder):
            raise TrainingError(f"{conf['module']} has no function {conf['builder']}", code="model_refused")
        module = builder(int(conf["n_numeric"]), list(conf["cardinalities"]))
        if not isinstance(module, torch.nn.Module):
            raise TrainingError(f"{conf['builder']} did not return a torch.nn.Module", code="model_refused")
        n = 16
        x_num = torch.rand(n, int(conf["n_numeric"]))
        cards = list(conf["cardinalities"]) or [1]
        x_cat = torch.stack([torch.randint(0, c, (n,)) for c in cards], 1)[:, : len(conf["cardinalities"])]
        graph, state = export_graph(module, x_num, x_cat)
    except TrainingError as exc:
        _refuse(Path(out), exc.code, exc.message)
        return 0
    except Exception as exc:  # the user's code failed: its type only (the message could be anything)
        _refuse(Path(out), "model_refused", f"building or exporting the model failed ({type(exc).__name__})")
        return 0
    Path(out, "graph.json").write_bytes(graph_bytes(graph))
    Path(out, "init.safetensors").write_bytes(write_safetensors({k: v.numpy() for k, v in state.items()}))
    return 0


if __name__ == "__main__":  # pragma: no cover - used as `python -m dp.training.entry train|export`
    sys.exit({"train": train_main, "export": export_main, "infer": infer_main}[sys.argv[1]]())
    os._exit(0)
