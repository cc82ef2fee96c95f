"""A warehouse with the products in place, for the products' tests and the inference benchmark.

The demo's datasets (``sandbox.demo``), the stewards' feature library (``sandbox/demo/features``),
the bank's ``default_model`` job trained by a **stand-in** for the platform's trainer (weights of
the declared model's exact shapes and the platform's own card, with the feature refs the real
trainer writes; ``tests/interfaces/web/trained.py`` explains why), its export approved, published as
``default_risk@1`` (tenant input ``avg_loan``, two reason codes), and the ``vat_2023_at_least``
verification product. The real trainer's path to the catalog is the demo's (tests/e2e/test_demo.py).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sandbox.demo.products_step import FEATURES, PRODUCTS, PURPOSE
from sandbox.demo.scenario import JOBS, build_warehouse
from sandbox.release.outputs import GatedFile, gate_weights

CERTIFICATE = {"epsilon": 0.9942402987487229, "epsilon_estimate": 0.984197337189116, "epsilon_lower": 0.974154373783734,
               "eps_error": 0.01, "epsilon_rdp": 1.0599492089520686, "delta": 1e-08,
               "noise_multiplier": 4.3858642578125, "sample_rate": 0.5, "steps": 2}


class StandInTraining:
    """Has :class:`sandbox.training.service.Training`'s ``run``: the export files of a declared model
    (seeded random weights of the expected shapes), without DP-SGD. No ε is reserved."""

    def __init__(self, job_dir: Callable[[str], Path], seed: int = 0) -> None:
        self._job_dir = job_dir
        self._seed = seed

    def run(self, principal: Any, job_id: str, spec: Any, snapshots: dict[str, Any]) -> list[GatedFile]:
        from dp.training.card import card_json, model_card
        from dp.training.forward import expected_shapes
        from dp.training.weights import write_safetensors

        rng = np.random.default_rng(self._seed)
        cfg = spec.train.to_config()
        expected = expected_shapes(cfg)
        raw = write_safetensors({k: rng.normal(0, 0.5, size=s).astype(np.float32) for k, (s, _) in expected.items()})
        weights = gate_weights("model.safetensors", raw, expected, {"job_id": job_id, "format": "twh-dp-weights/1"})
        card = model_card(
            job={"id": job_id, "name": spec.name, "purpose": spec.purpose, "tenant": principal.tenant},
            config=cfg.to_dict(), certificate=CERTIFICATE,
            plan={"target_epsilon": 1.0, "target_delta": 1e-8, "max_grad_norm": cfg.max_grad_norm},
            data={"datasets": list(snapshots), "versions": {n: s.version for n, s in snapshots.items()},
                  "feature_sql": "stand-in", **({"features": list(spec.train.feature_refs)}
                                                if spec.train.feature_refs else {})},
            hashes={"weights_sha256": weights.sha256, "graph_sha256": None,
                    "job_code_sha256": hashlib.sha256(b"stand-in").hexdigest()},
            released={}, weights={k: {"shape": list(s), "dtype": "float32"} for k, (s, _) in expected.items()})
        return [weights, GatedFile("model_card.json", card_json(card))]


def train_standin(wh: Any, analyst: Any, job_dir: Path, seed: int = 0) -> dict[str, Any]:
    """Submit ``job_dir`` as ``analyst`` (a client) with the stand-in trainer; the stewards' view of the job."""
    wh.jobs._training = lambda: StandInTraining(wh.jobs._dir, seed)
    try:
        job = analyst.submit_job(job_dir)
    finally:
        del wh.jobs._training
    return wh.jobs.get(wh.users.principal("admin"), job["id"])


def approve_all(c: dict[str, Any], export_id: str, stewards: tuple[str, ...]) -> None:
    for steward in stewards:
        c[steward].decide_export(export_id, "approve", "reviewed")


def publish_features(c: dict[str, Any]) -> list[str]:
    refs = []
    for steward in ("tax_steward", "hrss_steward"):
        for d in yaml.safe_load((FEATURES / f"{steward}.yaml").read_text("utf-8")):
            refs.append(c[steward].publish_feature(d)["ref"])
    return refs


def registry_codes(wh: Any) -> list[str]:
    """Every unit of the registry's current version, sorted (trusted test code reads the snapshot)."""
    import duckdb

    snap = wh.products.engine.snapshots(["enterprise_registry"])["enterprise_registry"]
    files = ", ".join(f"'{f}'" for f in snap.files)
    return [r[0] for r in duckdb.sql(f"SELECT uscc FROM read_parquet([{files}]) ORDER BY uscc").fetchall()]


def build_site(root: Path, *, n_enterprises: int = 300) -> dict[str, Any]:
    wh, c = build_warehouse(root / "wh", n_enterprises=n_enterprises, say=lambda *a, **k: None)
    return {**add_products(wh, c, root), "codes": registry_codes(wh), "root": root}


def add_products(wh: Any, c: dict[str, Any], root: Path) -> dict[str, Any]:
    """The products on a demo warehouse (``build_warehouse``): the library, ``default_risk@1`` published, the
    ``vat_2023_at_least`` product (also behind the browser tests' demo server, tests/interfaces/web/harness.py)."""
    publish_features(c)
    job_dir = root / "default_model"
    shutil.copytree(JOBS / "default_model", job_dir)
    job = train_standin(wh, c["analyst"], job_dir)
    assert job["state"] == "awaiting_approval", job["reason"]
    # tax_payments is important data: its senior steward, tax_chief, decides for it
    approve_all(c, job["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    m = c["analyst"].propose_model(job["export"]["id"], name="default_risk", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"], reason_codes=2)
    for steward in ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"):
        m = c[steward].approve_model(m["ref"], m["terms_sha256"])
    assert m["state"] == "published"
    product = c["tax_steward"].define_verification(yaml.safe_load((PRODUCTS / "vat_2023_at_least.yaml").read_text()))
    people = {n: wh.users.principal(n) for n in ("admin", "tax_steward", "hrss_steward", "bank_steward", "analyst",
                                                  "auditor")}
    return {"wh": wh, "c": c, "people": people, "model": m, "product": product, "export_id": job["export"]["id"],
            "job_id": job["id"]}


def consent(subject: str) -> str:
    return hashlib.sha256(f"consent of {subject}".encode()).hexdigest()


def authorise(site: dict[str, Any], subjects: list[str], *, tenant: str = "bank_a", purpose: str = PURPOSE,
              until: str = "2027-12-31", datasets: tuple[str, ...] = ("tax_payments", "social_insurance")) -> None:
    """The stewards import consents for ``subjects`` (one import per dataset, as the demo does)."""
    stewards = {"tax_payments": "tax_steward", "social_insurance": "hrss_steward", "enterprise_registry": "tax_steward",
                "bank_loans": "bank_steward"}
    for d in datasets:
        site["c"][stewards[d]].import_authorisations([
            {"subject": s, "tenant": tenant, "purpose": purpose, "datasets": [d], "valid_until": until,
             "consent_sha256": consent(s)} for s in subjects])
