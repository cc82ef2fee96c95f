"""DP-SGD (book-keeping clipping, Poisson) ÷ plain torch training, at one thread; threads; utility.

``training`` (in ``make bench``), for two models — the benchmark MLP (20 → 64 → 64 → 1, 20 000
rows, expected batch 256) and the demo's model (``sandbox/demo/jobs/train_default``: its features
on the demo's generated credit data, its MLP, optimiser, batch and epochs) — both trained with
the demo's privacy: σ from ``plan_privacy`` at its ε = 3, δ = 1e-7 and clipping norm C = 1.0
(the share of per-sample gradients actually clipped is reported):

1. **speed at one thread** — rounds of ``STEPS`` steps, DP-SGD then plain torch (the same model,
   data, batch size, optimiser and vectorised batching), ``--repeat`` rounds (default 5); the figure
   is the median of the per-round ratios of time per step (wall clock; CPU time beside it).
2. **threads** — DP-SGD at two threads ÷ one thread, interleaved per round, and what
   :func:`dp.training.threads.choose_threads` picks for the model.

``utility`` (asked for by name): held-out AUC of DP models at ε ∈ {1, 3, 8} next to a non-private
model on the demo's credit data and on scikit-learn's bundled breast-cancer data, and peak memory
per trainer.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np
from timing import figure

ROOT = Path(__file__).resolve().parents[1]
STEPS = 200
BATCH = 256


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _hwm_mb() -> float:
    """This process's peak RSS (VmHWM: per address space, so a spawned child starts afresh —
    ``ru_maxrss`` would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return _rss_mb()


def _auc(scores: np.ndarray, y: np.ndarray) -> float:
    from dp.training.mia import roc_metrics

    return round(roc_metrics(scores[y > 0.5], scores[y <= 0.5])["auc"], 4)


def _demo_train() -> object:
    """The demo job's TrainConfig, read from its job.yaml as the warehouse reads it."""
    from sandbox.jobs.spec import load_job_files

    spec, _ = load_job_files(ROOT / "sandbox" / "demo" / "jobs" / "train_default")
    assert spec.train is not None
    return spec.train.to_config()


def _mlp_case(n: int = 20_000, f: int = 20):
    from dp.training.features import Encoded
    from dp.training.spec import ModelSpec, NumericFeature, TrainConfig

    demo = _demo_train()
    rng = np.random.default_rng(0)
    x = rng.random((n, f), dtype=np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.float32)
    data = Encoded(x, np.zeros((n, 0), np.int64), y, 0)
    cfg = TrainConfig(label="y", numeric=tuple(NumericFeature(f"f{i}", 0, 1) for i in range(f)), categorical=(),
                      model=ModelSpec(kind="mlp", hidden=(64, 64)), batch_size=BATCH, epochs=demo.epochs,
                      max_grad_norm=demo.max_grad_norm, target_epsilon=demo.target_epsilon,
                      target_delta=demo.target_delta, learning_rate=demo.learning_rate, momentum=demo.momentum)
    return data, cfg


def _demo_case(tmp: Path):
    from dp.training.features import encode

    cfg = _demo_train()
    cols = _credit_columns(tmp, 2000)
    data = encode(cols, cfg)
    n_train = int(len(data) * (1 - cfg.holdout))
    return data.take(np.arange(n_train)), cfg


def _plan(data, cfg):  # noqa: ANN001, ANN202
    from dp.training.accounting import plan_privacy

    return plan_privacy(len(data), cfg.batch_size, cfg.epochs, cfg.target_epsilon, cfg.target_delta,
                        cfg.max_grad_norm)


def _clipped_share(data, cfg) -> float:  # noqa: ANN001
    """The share of per-sample gradients whose norm exceeds C, at initialisation (so clipping is real)."""
    import torch

    from dp.training.bookkeeping import clipped_grad_sum
    from dp.training.models import build_model

    idx = torch.arange(min(len(data), 2048))
    x_num, x_cat, y = (torch.from_numpy(a)[idx] for a in (data.x_num, data.x_cat, data.y))
    norms = clipped_grad_sum(build_model(cfg), x_num, x_cat, y, cfg.loss, cfg.max_grad_norm).norms
    return round(float((norms > cfg.max_grad_norm).float().mean()), 3)


def _speed(name: str, data, cfg, repeat: int, steps: int) -> tuple[list[dict], dict]:  # noqa: ANN001
    """DP-SGD ÷ plain at one thread, and DP at two threads ÷ one, interleaved per round."""
    import dataclasses

    import torch

    from dp.training.models import build_model
    from dp.training.threads import choose_threads
    from dp.training.trainer import train_dp, train_plain

    # σ, q and C as the demo plans them; enough steps for a steady rate (the cost of a step does not
    # depend on how many follow it)
    plan = _plan(data, cfg)
    plan = dataclasses.replace(plan, steps=max(plan.steps, steps))
    expected = plan.n_train * plan.sample_rate
    torch.set_num_threads(1)
    train_dp(build_model(cfg), data, cfg, plan, max_steps=5)  # warm-up (imports, first-call costs)
    train_plain(build_model(cfg), data, cfg, batch_size=cfg.batch_size, steps=5)
    wall: dict[str, list[float]] = {"dp": [], "plain": [], "dp2": []}
    cpu: dict[str, list[float]] = {"dp": [], "plain": []}
    for _ in range(repeat):
        for arm in ("dp", "plain", "dp2"):
            torch.set_num_threads(2 if arm == "dp2" else 1)
            if arm == "plain":
                r = train_plain(build_model(cfg), data, cfg, batch_size=cfg.batch_size, steps=steps)
            else:
                r = train_dp(build_model(cfg), data, cfg, plan, path="bk", max_steps=steps)
            wall[arm].append(r.seconds / r.steps)
            if arm in cpu:
                cpu[arm].append(r.cpu_seconds / r.steps)
    torch.set_num_threads(1)
    n_params = sum(p.numel() for p in build_model(cfg).parameters())
    chosen = choose_threads(n_params, expected, cap=2, cores=os.cpu_count())
    us = {k: round(statistics.median(v) * 1e6, 1) for k, v in wall.items()}
    what = {"mlp": "the benchmark MLP (20→64→64→1, 20 000 rows, batch 256)",
            "demo": "the demo's model (train_default: its features, MLP [16], batch 128)"}[name]
    figures = [
        figure(f"training.{name}_dp_over_plain", f"DP-SGD ÷ plain torch, time per step at 1 thread: {what}, σ "
               f"{plan.noise_multiplier:.3g} and C {cfg.max_grad_norm:g} as the demo plans them",
               [a / b for a, b in zip(wall["dp"], wall["plain"], strict=True)], unit="×", goal="<= 1.2",
               baseline=f"plain torch {us['plain']} µs/step (DP {us['dp']} µs/step)"),
        figure(f"training.{name}_two_threads_over_one", f"DP-SGD at 2 threads ÷ 1 thread, time per step: {what}; "
               f"the trainer picks {chosen}", [a / b for a, b in zip(wall["dp2"], wall["dp"], strict=True)], unit="×",
               baseline=f"1 thread {us['dp']} µs/step"),
    ]
    detail = {"rows": len(data), "params": n_params, "expected_batch": round(expected, 1), "steps_per_round": steps,
              "rounds": repeat, "sigma": round(plan.noise_multiplier, 4), "max_grad_norm": cfg.max_grad_norm,
              "clipped_share_at_init": _clipped_share(data, cfg), "us_per_step": us,
              "cpu_ratio_dp_over_plain": round(statistics.median(cpu["dp"]) / statistics.median(cpu["plain"]), 3),
              "threads_chosen": chosen}
    return figures, detail


def bench_training(args: argparse.Namespace, tmp: Path) -> dict:
    repeat = args.repeat or 5
    started = time.perf_counter()
    figures: list[dict] = []
    detail: dict = {}
    mlp_figs, detail["mlp"] = _speed("mlp", *_mlp_case(), repeat, STEPS)
    demo_figs, detail["demo"] = _speed("demo", *_demo_case(tmp), repeat, 2 * STEPS)
    figures = [mlp_figs[0], demo_figs[0], mlp_figs[1], demo_figs[1]]
    notes = [f"{k}: σ {d['sigma']}, C {d['max_grad_norm']}, {d['clipped_share_at_init']:.0%} of per-sample gradients "
             f"clipped at initialisation, {d['params']} parameters, expected batch {d['expected_batch']}, CPU-time "
             f"ratio {d['cpu_ratio_dp_over_plain']}, threads chosen {d['threads_chosen']}" for k, d in detail.items()]
    return {"figures": figures, "detail": detail, "notes": notes, "seconds": round(time.perf_counter() - started, 1)}


def _utility(cols: dict, cfg_kwargs: dict, epochs: int, lr_dp: float, lr_plain: float) -> dict:
    import torch

    from dp.training.accounting import certify, plan_privacy
    from dp.training.features import encode
    from dp.training.models import build_model
    from dp.training.spec import ModelSpec, TrainConfig
    from dp.training.trainer import predict, train_dp, train_plain

    rng = np.random.default_rng(1)
    base = TrainConfig(model=ModelSpec(kind="mlp", hidden=(16,)), epochs=epochs, target_delta=1e-6, **cfg_kwargs)
    data = encode(cols, base)
    idx = rng.permutation(len(data))
    cut = int(0.8 * len(data))
    tr, te = data.take(idx[:cut]), data.take(idx[cut:])
    out: dict = {"train_rows": len(tr), "test_rows": len(te), "epochs": epochs, "batch": base.batch_size}
    torch.manual_seed(0)
    plain_cfg = TrainConfig(**{**base.__dict__, "learning_rate": lr_plain})
    m = build_model(plain_cfg)
    steps = epochs * max(1, round(len(tr) / base.batch_size))
    train_plain(m, tr, plain_cfg, batch_size=base.batch_size, steps=steps)
    out["auc_nonprivate"] = _auc(predict(m, te), te.y)
    for eps in (1.0, 3.0, 8.0):
        cfg = TrainConfig(**{**base.__dict__, "learning_rate": lr_dp, "target_epsilon": eps})
        plan = plan_privacy(len(tr), cfg.batch_size, cfg.epochs, eps, 1e-6, cfg.max_grad_norm)
        aucs = []
        for _ in range(3):  # DP training is noisy: median of three runs
            m = build_model(cfg)
            train_dp(m, tr, cfg, plan)
            aucs.append(_auc(predict(m, te), te.y))
        cert = certify(plan.noise_multiplier, plan.sample_rate, plan.steps, 1e-6)
        out[f"auc_eps_{eps:g}"] = statistics.median(aucs)
        out[f"sigma_eps_{eps:g}"] = round(plan.noise_multiplier, 3)
        out[f"certified_eps_{eps:g}"] = round(cert.epsilon, 3)
    out["gap_eps_3"] = round(out["auc_nonprivate"] - out["auc_eps_3"], 4)
    out["gap_eps_1"] = round(out["auc_nonprivate"] - out["auc_eps_1"], 4)
    return out


def _credit_columns(tmp: Path, n_enterprises: int) -> dict:
    import pandas as pd

    from sandbox.demo.generate import generate

    files = generate(tmp / "credit", n_enterprises=n_enterprises, seed=11)
    reg = pd.read_csv(files["enterprise_registry"], dtype={"district": str})
    tax = pd.read_csv(files["tax_payments"])
    soc = pd.read_csv(files["social_insurance"])
    loans = pd.read_csv(files["bank_loans"])
    t = tax.assign(zero=(tax.vat_paid == 0).astype(float)).groupby("uscc").agg(avg_vat=("vat_paid", "mean"),
                                                                                zero_tax_share=("zero", "mean"))
    s = soc.groupby("uscc").agg(avg_headcount=("headcount", "mean"))
    lo = loans.groupby("uscc").agg(avg_loan=("amount", "mean"), defaulted=("defaulted", "max"))
    df = lo.join(reg.set_index("uscc")).join(t).join(s).dropna()
    return {c: df[c].tolist() for c in ("industry", "district", "registered_capital", "avg_vat", "zero_tax_share",
                                         "avg_headcount", "avg_loan", "defaulted")}


def _one_run(kind: str) -> dict:
    """One trainer in a fresh process (one thread): the process's peak RSS before and after training."""
    import torch

    from dp.training.models import build_model
    from dp.training.trainer import train_dp, train_plain, validate_model

    torch.set_num_threads(1)
    data, cfg = _mlp_case()
    plan = _plan(data, cfg)
    model = build_model(cfg)
    validate_model(model)  # imports Opacus in every child, so that only training shows in the difference
    before = _hwm_mb()
    if kind == "nonprivate":
        train_plain(model, data, cfg, batch_size=BATCH, steps=STEPS)
    else:
        train_dp(model, data, cfg, plan, path=kind, max_steps=STEPS // 4 if kind == "opacus" else STEPS)
    return {"peak_mb": _hwm_mb(), "before_mb": before}


def bench_utility(args: argparse.Namespace, tmp: Path) -> dict:
    """Held-out AUC at ε ∈ {1, 3, 8} vs non-private (demo credit data, breast cancer); peak memory."""
    import multiprocessing as mp

    import torch

    from dp.training.spec import CategoricalFeature, NumericFeature

    torch.set_num_threads(1)
    started = time.perf_counter()
    result: dict = {}
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        mem = {k: pool.apply(_one_run, (k,)) for k in ("nonprivate", "bk", "opacus")}
    result["peak_rss_mb"] = {k: v["peak_mb"] for k, v in mem.items()}
    result["peak_rss_mb_training"] = {k: round(v["peak_mb"] - v["before_mb"], 1) for k, v in mem.items()}
    credit = _credit_columns(tmp, 8000)
    result["credit"] = _utility(credit, {
        "label": "defaulted",
        "numeric": (NumericFeature("registered_capital", 0, 100000, True), NumericFeature("avg_vat", 0, 1e6, True),
                    NumericFeature("zero_tax_share", 0, 1), NumericFeature("avg_headcount", 0, 10000, True),
                    NumericFeature("avg_loan", 0, 3000, True)),
        "categorical": (CategoricalFeature("industry", tuple("CEFGHIM")),
                        CategoricalFeature("district", ("500103", "500105", "500106", "500107", "500108", "500109",
                                                        "500112"))),
        "batch_size": 256}, epochs=20, lr_dp=2.0, lr_plain=0.5)
    from sklearn.datasets import load_breast_cancer

    bc = load_breast_cancer()
    lo, hi = bc.data.min(0), bc.data.max(0)  # public, documented ranges of the bundled data set
    cols = {f"f{i}": bc.data[:, i].tolist() for i in range(bc.data.shape[1])} | {"y": bc.target.tolist()}
    result["breast_cancer"] = _utility(cols, {
        "label": "y", "numeric": tuple(NumericFeature(f"f{i}", float(lo[i]), float(hi[i]) + 1e-9)
                                       for i in range(bc.data.shape[1])),
        "categorical": (), "batch_size": 64}, epochs=30, lr_dp=2.0, lr_plain=0.5)
    result["seconds"] = round(time.perf_counter() - started, 1)
    rows = [[name, r["auc_nonprivate"], r["auc_eps_1"], r["auc_eps_3"], r["auc_eps_8"]]
            for name, r in (("demo credit", result["credit"]), ("breast cancer", result["breast_cancer"]))]
    result["table"] = {"title": "held-out AUC, DP at ε = 1, 3, 8 vs non-private (median of three DP runs)",
                       "columns": ["data", "non-private", "ε = 1", "ε = 3", "ε = 8"], "rows": rows}
    result["figures"] = []
    return result
