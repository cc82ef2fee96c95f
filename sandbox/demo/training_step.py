"""The demo's training step: submit, review (card + attack report), approve, download, load locally."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_training_step(c: dict[str, Any], job_dir: Path, dest: Path, say: Any) -> dict[str, Any]:
    job = c["bank_steward"].get_job(c["analyst"].submit_job(job_dir)["id"])  # the stewards' view
    say(f"  job {job['id']} → [bold]{job['state']}[/]")
    if job["state"] != "awaiting_approval":
        raise AssertionError(f"training job ended {job['state']}: {job['reason']}")
    export_id = job["export"]["id"]
    # tax_payments is important data (重要数据): its senior steward, tax_chief, decides for it
    for steward in ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"):
        files = {f["name"]: f["data"] for f in c[steward].preview_export(export_id)}
        card = json.loads(files["model_card.json"])
        # the attack report and exact counts are for the stewards (job logs), never in the export
        review = json.loads(c[steward].job_logs(job["id"])["training_review"])
        p, a, h = card["privacy"], review["membership_inference"], card["holdout_metrics_dp"]
        if steward == "tax_steward":
            say(f"  model card: ε = [bold]{p['epsilon']:.3f}[/] (PRV upper bound; RDP cross-check "
                f"{p['cross_check']['epsilon']:.3f}), δ = {p['delta']:.0e}, σ = {p['noise_multiplier']:.3f}, "
                f"q = {p['sample_rate']:.3f}, {p['steps']} steps, clip {p['max_grad_norm']}")
            say(f"  data: {review['data']['training_rows']} training / {review['data']['held_out_rows']} held-out "
                f"enterprises, versions {card['data']['versions']}")
            say(f"  held-out AUC (DP, ε={h['epsilon']:g}) ≈ {h['auc']:.3f}; membership attack: AUC {a['auc']:.3f}, "
                f"advantage {a['advantage']:.3f}, TPR@1%FPR {a['tpr_at_fpr_1pct']:.3f} → "
                + ("[red]FLAGGED[/]" if a["flagged"] else "[green]not flagged[/]"))
        e = c[steward].decide_export(export_id, "approve", f"certified ε={p['epsilon']:.2f}; attack not flagged")
        say(f"  {steward} reviewed {sorted(files)} and approved")
    say(f"  export {export_id} → [bold]{e['state']}[/]")
    paths = c["analyst"].download_export(export_id, dest)
    weights = next(p for p in paths if p.name == "model.safetensors")
    loaded = _load_locally(weights, json.loads(next(p for p in paths if p.name == "model_card.json").read_text()))
    say(f"  the analyst loads {weights.name} locally ({loaded['tensors']} tensors, {loaded['parameters']} "
        f"parameters) and scores a made-up firm: default probability {loaded['probability']:.3f}")
    return {"job": job, "export_id": export_id, **loaded}


def _load_locally(path: Path, card: dict[str, Any]) -> dict[str, Any]:
    """What the bank does with the download: rebuild the declared model, load the weights, predict."""
    import torch
    from safetensors.torch import load_file

    from dp.training.models import build_model
    from dp.training.spec import TrainConfig

    cfg_d = {k: card["model"]["features"][k] for k in ("numeric", "categorical", "label")}
    cfg = TrainConfig.from_dict({**cfg_d, "model": card["model"]["spec"], "loss": card["model"]["loss"],
                                 "target_delta": card["privacy"]["delta"], "target_epsilon": card["privacy"]["target_epsilon"]})
    model = build_model(cfg)
    state = load_file(str(path))  # safetensors: no pickle, nothing runs on load
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        x_num = torch.full((1, len(cfg.numeric)), 0.5)
        x_cat = torch.ones((1, len(cfg.categorical)), dtype=torch.long)
        prob = torch.sigmoid(model(x_num, x_cat))[0].item()
    return {"tensors": len(state), "parameters": sum(v.numel() for v in state.values()), "probability": prob}
