"""The model catalog: what can be published, by whom, on which terms — and that nothing else scores."""

from __future__ import annotations

import shutil

import pytest
import yaml
from product_site import approve_all, authorise, train_standin

from sandbox.demo.scenario import JOBS
from sandbox.errors import Conflict, Forbidden, InvalidInput, NotFound

PURPOSE = "credit_decision"


def _job(site, name, edit=None):
    d = site["root"] / name
    if not d.exists():
        shutil.copytree(JOBS / "default_model", d)
        spec = yaml.safe_load((d / "job.yaml").read_text())
        if edit:
            edit(spec)
        spec["name"] = name
        (d / "job.yaml").write_text(yaml.safe_dump(spec))
    return train_standin(site["wh"], site["c"]["analyst"], d)


def test_publication_needs_every_datasets_steward_to_approve_the_exact_terms(site):
    c = site["c"]
    job = _job(site, "second")
    approve_all(c, job["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    m = c["analyst"].propose_model(job["export"]["id"], name="second_risk", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"])
    assert m["state"] == "proposed" and set(m["needs_approval_from"]) == {
        "enterprise_registry", "tax_payments", "social_insurance", "bank_loans"}
    with pytest.raises(Conflict):  # terms other than the ones proposed
        c["tax_steward"].approve_model(m["ref"], "0" * 64)
    with pytest.raises(Conflict):  # the same export twice
        c["analyst"].propose_model(job["export"]["id"], name="again", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"])
    m = c["tax_steward"].approve_model(m["ref"], m["terms_sha256"])
    # tax_payments is important data (GB/T 43697): the ordinary tax steward's approval covers only the
    # registry; the bureau's senior steward decides for the tax records
    assert m["state"] == "proposed" and set(m["needs_approval_from"]) == {"tax_payments", "social_insurance",
                                                                          "bank_loans"}
    m = c["tax_chief"].approve_model(m["ref"], m["terms_sha256"])
    assert set(m["needs_approval_from"]) == {"social_insurance", "bank_loans"}
    # a proposed model is not in the catalog for scoring
    authorise(site, site["codes"][-2:])
    with pytest.raises(NotFound):
        c["analyst"].score(m["ref"], site["codes"][-2:], PURPOSE, inputs={s: {"avg_loan": 1.0}
                                                                         for s in site["codes"][-2:]})
    for steward in ("hrss_steward", "bank_steward"):
        m = c[steward].approve_model(m["ref"], m["terms_sha256"])
    assert m["state"] == "published" and m["needs_approval_from"] == []
    r = c["analyst"].score(m["ref"], site["codes"][-2:], PURPOSE, inputs={s: {"avg_loan": 1.0}
                                                                         for s in site["codes"][-2:]})
    assert all(x["status"] == "scored" for x in r["results"])


def test_only_an_approved_training_export_on_library_features_can_be_proposed(site):
    c, wh = site["c"], site["wh"]
    pending = _job(site, "pending_export")
    with pytest.raises(Conflict):  # not approved yet
        c["analyst"].propose_model(pending["export"]["id"], name="x", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"])

    def inline(spec):  # the same model on an inline feature query: inference could not compute its inputs
        spec["train"]["features"] = ("SELECT AVG(t.vat_paid) AS avg_vat, MAX(l.defaulted) AS defaulted FROM bank_loans l "
                                     "JOIN tax_payments t ON t.uscc = l.uscc GROUP BY l.uscc")
        spec["train"].pop("sql")
        spec["train"]["numeric"] = {"avg_vat": {"range": [0, 1000000], "log": True}}
        spec["train"]["categorical"] = {}
        spec["train"]["model"] = {"kind": "logreg"}
    job = _job(site, "inline_sql", inline)
    approve_all(c, job["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    with pytest.raises(InvalidInput, match="library features"):
        c["analyst"].propose_model(job["export"]["id"], name="inline", tenants=["bank_a"], purposes=[PURPOSE])
    approved = _job(site, "inputs_check")
    approve_all(c, approved["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    with pytest.raises(InvalidInput, match="neither the library nor the tenant"):  # avg_loan has no source
        c["analyst"].propose_model(approved["export"]["id"], name="x", tenants=["bank_a"], purposes=[PURPOSE])
    with pytest.raises(InvalidInput, match="tenant_inputs"):  # a library feature cannot be the tenant's
        c["analyst"].propose_model(approved["export"]["id"], name="x", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan", "avg_vat"])
    wh.users.add(site["people"]["admin"], "other_bank", "enterprise", "bank_z")
    with pytest.raises(NotFound):  # another tenant's export: as if absent
        wh.products.models.propose(wh.users.principal("other_bank"), approved["export"]["id"], name="x",
                                   tenants=["bank_z"], purposes=[PURPOSE], tenant_inputs=["avg_loan"])
    with pytest.raises(Forbidden):
        wh.products.models.propose(site["people"]["auditor"], approved["export"]["id"], name="x",
                                   tenants=["bank_a"], purposes=[PURPOSE], tenant_inputs=["avg_loan"])


def test_the_catalog_shows_each_viewer_what_it_may_see(site):
    wh = site["wh"]
    refs = {m["ref"] for m in wh.products.models.list(site["people"]["analyst"])}
    assert "default_risk@1" in refs
    if "bank_c_analyst" not in {u["name"] for u in wh.users.list(site["people"]["admin"])}:
        wh.users.add(site["people"]["admin"], "bank_c_analyst", "enterprise", "bank_c")
    assert wh.products.models.list(wh.users.principal("bank_c_analyst")) == []
    with pytest.raises(NotFound):
        wh.products.models.show(wh.users.principal("bank_c_analyst"), "default_risk@1")
    shown = wh.products.models.show(site["people"]["auditor"], "default_risk@1")
    assert shown["card"]["format"] == "twh-model-card/1" and shown["approvals"]["tax_payments"] == "tax_chief"


def test_a_catalog_model_runs_exactly_the_approved_weights(site):
    """The runtime's forward pass on the stored weights equals torch's module on the export's bytes."""
    import numpy as np
    import torch
    from safetensors.torch import load as load_st

    from dp.training.models import build_model

    wh = site["wh"]
    m = wh.products.models.load("default_risk@1")
    files = {f.name: f.data for f in wh.exports.preview(site["people"]["admin"], site["export_id"])}
    module = build_model(m.cfg)
    module.load_state_dict(load_st(files["model.safetensors"]))
    rng = np.random.default_rng(1)
    x_num = rng.random((64, len(m.cfg.numeric))).astype(np.float32)
    x_cat = np.stack([rng.integers(0, f.cardinality, 64) for f in m.cfg.categorical], 1)
    ours = wh.products.inference.runtime.logits(m, x_num, x_cat)
    with torch.no_grad():
        theirs = module(torch.from_numpy(x_num), torch.from_numpy(x_cat)).numpy()
    assert np.allclose(ours, theirs, atol=1e-5)


def test_an_ordinary_steward_cannot_publish_a_model_on_important_data(site):
    """The attack: the model of an important dataset (its per-subject scores leave) published on the
    approval of an ordinary steward of it, where its exports need the senior steward."""
    c = site["c"]
    job = _job(site, "important_only")
    approve_all(c, job["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    m = c["analyst"].propose_model(job["export"]["id"], name="third_risk", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"])
    for steward in ("tax_steward", "hrss_steward", "bank_steward"):
        m = c[steward].approve_model(m["ref"], m["terms_sha256"])
    assert m["state"] == "proposed" and m["needs_approval_from"] == ["tax_payments"]
    m = c["tax_chief"].approve_model(m["ref"], m["terms_sha256"])
    assert m["state"] == "published"
