"""DP-SGD (book-keeping clipping, Poisson) ÷ non-private training, and utility at ε ∈ {1, 3, 8}.

1. **speed** — the same MLP (20 → 64 → 64 → 1), data, expected batch (256) and threads; the
   trainers alternate (``--repeat`` rounds of ``STEPS`` steps each: DP-SGD by book-keeping, the
   non-private baseline with the same vectorised batching, and Opacus' ghost clipping for
   reference) and the medians of samples/s (wall clock, and per CPU second — robust when others
   load the machine) are compared. Memory: the peak RSS (VmHWM) of one fresh process per
   trainer, and its growth during training.
2. **credit** — the demo's synthetic credit data (``sandbox.demo.generate``): one row per
   borrowing enterprise with the demo job's features, held-out AUC (exact, this is a benchmark)
   of the DP model at ε = 1, 3, 8 (δ = 1e-6) next to a non-private model of the same shape.
3. **breast_cancer** — scikit-learn's bundled Wisconsin breast-cancer data (569 rows, 30
   features; no download), same protocol.

The same MLP and epochs are used for the DP and the non-private models; the DP learning rate is
higher (noisy clipped gradients are smaller), as is usual.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

import numpy as np

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


def _speed_setup(n: int = 20_000, f: int = 20):
    from dp.training.accounting import PrivacyPlan
    from dp.training.features import Encoded
    from dp.training.spec import ModelSpec, NumericFeature, TrainConfig

    rng = np.random.default_rng(0)
    x = rng.random((n, f), dtype=np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=n) > 0.5).astype(np.float32)
    data = Encoded(x, np.zeros((n, 0), np.int64), y, 0)
    cfg = TrainConfig(label="y", numeric=tuple(NumericFeature(f"f{i}", 0, 1) for i in range(f)), categorical=(),
                      model=ModelSpec(kind="mlp", hidden=(64, 64)), batch_size=BATCH, target_delta=1e-6)
    plan = PrivacyPlan(n, 1 / round(n / BATCH), STEPS, 1.0, 1.0, 3.0, 1e-6)  # Poisson at the expected batch
    return data, cfg, plan


def _one_run(kind: str, threads: int) -> dict:
    """One trainer in a fresh process: its samples/s and the process's peak RSS (memory)."""
    import torch

    from dp.training.models import build_model
    from dp.training.trainer import train_dp, train_plain

    torch.set_num_threads(threads)
    data, cfg, plan = _speed_setup()
    from dp.training.trainer import validate_model

    model = build_model(cfg)
    validate_model(model)  # imports Opacus in every child, so that only training shows in the difference
    before = _hwm_mb()
    if kind == "nonprivate":
        train_plain(model, data, cfg, batch_size=BATCH, steps=STEPS)
    else:
        train_dp(model, data, cfg, plan, path=kind, max_steps=STEPS // 4 if kind == "opacus" else None)
    return {"peak_mb": _hwm_mb(), "before_mb": before}


def _speed(repeat: int, threads: int) -> dict:
    """DP-SGD (book-keeping path; Opacus' ghost clipping for reference) ÷ non-private, interleaved
    in this process, wall-clock and CPU time; memory from one fresh process per trainer."""
    import multiprocessing as mp

    import torch

    from dp.training.models import build_model
    from dp.training.trainer import train_dp, train_plain

    data, cfg, plan = _speed_setup()
    wall: dict[str, list[float]] = {"bk": [], "opacus": [], "nonprivate": []}
    cpu: dict[str, list[float]] = {"bk": [], "opacus": [], "nonprivate": []}
    train_dp(build_model(cfg), data, cfg, plan, max_steps=5)  # warm-up (imports, first-call costs)
    train_plain(build_model(cfg), data, cfg, batch_size=BATCH, steps=5)
    for _ in range(repeat):
        runs = {"bk": lambda: train_dp(build_model(cfg), data, cfg, plan, path="bk"),
                "nonprivate": lambda: train_plain(build_model(cfg), data, cfg, batch_size=BATCH, steps=STEPS),
                # Opacus is much slower: fewer steps (a rate is compared, not a total)
                "opacus": lambda: train_dp(build_model(cfg), data, cfg, plan, path="opacus", max_steps=STEPS // 4)}
        for name, run in runs.items():
            r = run()
            wall[name].append(r.samples_per_second)
            cpu[name].append(r.samples_per_cpu_second)
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    with mp.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
        mem = {k: pool.apply(_one_run, (k, threads)) for k in ("nonprivate", "bk", "opacus")}
    return {"threads": torch.get_num_threads(), "rows": len(data), "batch": BATCH, "steps_per_round": STEPS,
            "rounds": repeat, "dp_samples_per_s": round(w["bk"], 1),
            "nonprivate_samples_per_s": round(w["nonprivate"], 1),
            "opacus_ghost_samples_per_s": round(w["opacus"], 1),
            "slowdown": round(w["nonprivate"] / w["bk"], 3), "goal": "<= 1.5",
            "slowdown_cpu_time": round(c["nonprivate"] / c["bk"], 3),
            "slowdown_opacus_ghost": round(w["nonprivate"] / w["opacus"], 3),
            "peak_rss_mb": {k: v["peak_mb"] for k, v in mem.items()},
            "peak_rss_mb_training": {k: round(v["peak_mb"] - v["before_mb"], 1) for k, v in mem.items()},
            "clipping": "book-keeping (ghost norms, one matmul per layer); Opacus ghost clipping for reference"}


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


def bench_training(args: argparse.Namespace, tmp: Path) -> dict:
    import torch

    from dp.training.spec import CategoricalFeature, NumericFeature

    torch.set_num_threads(min(os.cpu_count() or 1, 16))
    started = time.perf_counter()
    threads = torch.get_num_threads()
    result: dict = {"speed": _speed(max(3, min(args.repeat, 5)), threads)}
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
    result["device"] = "cpu"
    result["ratio"] = result["speed"]["slowdown"]
    return result
