"""The subject's view: who used its data, checked against the audit log — and only for the subject."""

from __future__ import annotations

import pytest
from product_site import authorise
from sqlalchemy import select, update

from sandbox.catalog.products import ProductRun, SubjectUse
from sandbox.errors import NotFound

PURPOSE = "credit_decision"


def _subject_user(site, subject):
    wh = site["wh"]
    name = "s_" + subject.lower()[-10:]
    wh.users.add(site["people"]["admin"], name, "subject", "subjects", subject)
    return wh.users.principal(name)


def test_the_subject_sees_scores_verifications_and_refusals_about_it(site, codes):
    wh, c = site["wh"], site["c"]
    me = _subject_user(site, codes[0])
    authorise(site, codes[:2])
    c["analyst"].score("default_risk@1", codes[:2], PURPOSE, inputs={s: {"avg_loan": 100.0} for s in codes[:2]})
    job = c["analyst"].score_batch("default_risk@1", codes[:3] + site["codes"][-30:], PURPOSE,
                                   inputs={s: {"avg_loan": 100.0} for s in codes[:3] + site["codes"][-30:]})
    c["analyst"].verify("vat_2023_at_least@1", codes[0], PURPOSE, claim=100000)
    wh.products.verification.verify(site["people"]["analyst"], "vat_2023_at_least@1", codes[2], PURPOSE, claim=100000)
    a = wh.products.activity.of(me, codes[0])
    kinds = [(u["product_kind"], u["flow"], u["outcome"]) for u in a["items"]]
    assert kinds == [("verification", "verification", "answered"), ("model", "batch", "answered"),
                     ("model", "decision", "answered")]
    assert all(u["verified"] and u["tenant"] == "bank_a" and u["actor"] == "analyst" and u["purpose"] == PURPOSE
               and u["authorisations"] for u in a["items"])
    assert {x["id"] for x in a["authorisations"]} == {x for u in a["items"] for x in u["authorisations"]}
    assert a["items"][1]["run_id"] == job["id"]
    third = wh.products.activity.of(site["people"]["auditor"], codes[2])  # not authorised: refused, but shown
    assert [(u["product_kind"], u["outcome"]) for u in third["items"]] == [("verification", "refused"),
                                                                           ("model", "refused")]


def test_nobody_else_reads_a_subjects_log(site, codes):
    wh = site["wh"]
    me = _subject_user(site, codes[0])
    for who in (site["people"]["analyst"], site["people"]["tax_steward"]):
        with pytest.raises(NotFound):
            wh.products.activity.of(who, codes[0])
    with pytest.raises(NotFound):  # a subject speaks for itself only
        wh.products.activity.of(me, codes[1])


def test_a_row_changed_after_the_fact_is_not_verified(site, codes):
    wh, c = site["wh"], site["c"]
    authorise(site, codes[:2])
    r = c["analyst"].score("default_risk@1", codes[:2], PURPOSE, inputs={s: {"avg_loan": 100.0} for s in codes[:2]})
    v = c["analyst"].verify("vat_2023_at_least@1", codes[0], PURPOSE, claim=100000)
    auditor = site["people"]["auditor"]
    assert all(u["verified"] for u in wh.products.activity.of(auditor, codes[0])["items"])
    with wh.db.transaction() as s:  # someone with the database rewrites a use as refused (hiding it)...
        s.execute(update(SubjectUse).where(SubjectUse.run_id == r["run_id"], SubjectUse.subject == codes[0])
                  .values(outcome="refused", authorisations=""))
    with wh.db.transaction() as s:  # ...and, for the verification, the run's own rows
        run = s.get(ProductRun, v["run_id"])
        run.rows = run.rows[:-1] + b"\0"
    items = {u["run_id"]: u for u in wh.products.activity.of(auditor, codes[0])["items"]}
    assert items[r["run_id"]]["verified"] is False and items[v["run_id"]]["verified"] is False
    assert wh.products.activity.of(auditor, codes[1])["items"][0]["verified"] is True


def test_a_batch_is_indexed_by_subject_once_when_first_read(site, codes):
    wh, c = site["wh"], site["c"]
    authorise(site, codes[:1])
    subjects = [codes[0]] + [f"91500000ZZ{i:08d}" for i in range(1200)]  # past the size indexed at once
    job = c["analyst"].score_batch("default_risk@1", subjects, PURPOSE,
                                   inputs={s: {"avg_loan": 100.0} for s in subjects})
    with wh.db.read() as s:
        assert s.get(ProductRun, job["id"]).indexed is False
    got = wh.products.activity.of(site["people"]["auditor"], codes[0])["items"]
    assert got[0]["run_id"] == job["id"] and got[0]["verified"]
    with wh.db.read() as s:
        assert s.get(ProductRun, job["id"]).indexed is True
        assert len(s.execute(select(SubjectUse.id).where(SubjectUse.run_id == job["id"])).all()) == 1201
