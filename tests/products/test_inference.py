"""Inference under the subject's authorisation, attacked: unauthorised, expired, revoked, other tenant or
purpose, a dataset not named, subject enumeration, non-catalog models, probing with tenant inputs,
quotas, and what a response may carry (scores and reason codes, never features)."""

from __future__ import annotations

import json

import pytest
from product_site import authorise
from sqlalchemy import select, update

from sandbox.catalog.products import Authorisation, ProductRun, SubjectQuota, SubjectUse
from sandbox.errors import AccessRefused, InvalidInput, NotFound, QuotaExceeded, Refused
from sandbox.products.uses import NOT_AUTHORISED, read_rows

MODEL, PURPOSE = "default_risk@1", "credit_decision"
#: a well-formed credit code that is in no dataset
NOWHERE = "91500000ZZ00000000"


def _inputs(subjects, amount=300.0):
    return {s: {"avg_loan": amount} for s in subjects}


def _score(site, subjects, amount=300.0, who="analyst", model=MODEL, purpose=PURPOSE):
    return site["wh"].products.inference.score(site["people"].get(who) or site["wh"].users.principal(who), model,
                                               subjects, purpose, _inputs(subjects, amount))


def _by_subject(r):
    return {x["subject"]: x for x in r["results"]}


def test_only_authorised_subjects_are_scored_and_only_scores_leave(site, codes):
    authorise(site, codes[:3])
    r = _by_subject(_score(site, codes[:4]))
    for s in codes[:3]:
        assert r[s]["status"] == "scored" and 0 <= r[s]["score"] <= 1
        # a score, the declared reason codes (feature names) and the authorisations: nothing else
        assert set(r[s]) == {"subject", "status", "score", "reasons", "authorisations"}
        assert len(r[s]["reasons"]) <= 2 and set(r[s]["reasons"]) <= {
            "industry", "district", "registered_capital", "avg_vat", "zero_tax_share", "avg_headcount", "avg_loan"}
    assert r[codes[3]] == {"subject": codes[3], "status": "refused", "reason": NOT_AUTHORISED}


def test_expired_revoked_and_partial_authorisations_are_refused(site, codes):
    wh = site["wh"]
    authorise(site, codes[:5])
    with wh.db.transaction() as s:  # time passes: the first subject's authorisations have ended
        s.execute(update(Authorisation).where(Authorisation.subject == codes[0])
                  .values(valid_until=Authorisation.valid_from))
    mine = [a for a in site["c"]["tax_steward"].list_authorisations(subject=codes[1])]
    site["c"]["tax_steward"].revoke_authorisation(mine[0]["id"])  # the tax consent withdrawn
    authorise(site, [codes[2]], datasets=("tax_payments",))  # no social-insurance consent: codes[2] had it…
    authorise(site, [codes[5]], datasets=("tax_payments",))  # …codes[5] never had it
    authorise(site, [codes[6]], tenant="bank_b")  # another tenant
    authorise(site, [codes[7]], purpose="marketing")  # another purpose
    r = _by_subject(_score(site, codes[:8]))
    assert r[codes[0]]["reason"] == r[codes[1]]["reason"] == NOT_AUTHORISED
    assert r[codes[2]]["status"] == "scored" and r[codes[3]]["status"] == "scored"
    for s in (codes[5], codes[6], codes[7]):
        assert r[s] == {"subject": s, "status": "refused", "reason": NOT_AUTHORISED}


def test_a_revocation_while_scores_are_computed_withholds_them(site, codes, monkeypatch):
    wh = site["wh"]
    authorise(site, codes[:2])
    engine = wh.products.inference.engine
    real = engine.lookup

    def revoke_meanwhile(named, subjects):
        out = real(named, subjects)
        a = wh.authorisations.list(site["people"]["tax_steward"], subject=codes[0])[0]
        wh.authorisations.revoke(site["people"]["tax_steward"], a["id"])
        return out

    monkeypatch.setattr(engine, "lookup", revoke_meanwhile)
    r = _by_subject(_score(site, codes[:2]))
    assert r[codes[0]]["status"] == "refused" and r[codes[1]]["status"] == "scored"


def test_subject_enumeration_a_refused_subject_looks_and_costs_the_same_in_the_data_or_not(site, codes, monkeypatch):
    """Two unauthorised ids, one of a firm in every dataset, one in none: the answers are the same
    bytes but for the id, neither reaches the feature computation, and both count to the quota."""
    wh = site["wh"]
    seen: list[list[str]] = []
    for name in ("lookup", "compute"):
        real = getattr(wh.products.engine, name)
        monkeypatch.setattr(wh.products.engine, name,
                            lambda named, subjects, real=real: (seen.append(list(subjects)), real(named, subjects))[1])
    in_data, nowhere = codes[0], NOWHERE
    a = _score(site, [in_data])["results"][0]
    b = _score(site, [nowhere])["results"][0]
    assert json.dumps(a).replace(in_data, "X") == json.dumps(b).replace(nowhere, "X")
    assert seen == []  # no feature was computed for either
    with wh.db.read() as s:
        runs = s.execute(select(ProductRun).where(ProductRun.subjects == 1).order_by(ProductRun.created_at.desc())
                         .limit(2)).scalars().all()
    assert {r.product for r in runs} == {MODEL} and all(read_rows(r.rows).column("outcome").to_pylist() == ["refused"]
                                                          for r in runs)


def test_a_batch_refuses_the_unauthorised_the_same_way_and_waits_for_the_stewards(site, codes):
    c = site["c"]
    authorise(site, codes[:3])
    subjects = codes[:3] + [codes[3], NOWHERE]
    job = c["analyst"].score_batch(MODEL, subjects, PURPOSE, inputs=_inputs(subjects))
    assert job["state"] == "awaiting_review"  # the submitter's one view until a steward acts
    view = c["tax_steward"].get_job(job["id"])
    assert view["state"] == "awaiting_approval" and set(view["datasets"]) == {
        "enterprise_registry", "tax_payments", "social_insurance"}
    export = view["export"]["id"]
    for steward in ("tax_steward", "tax_chief", "hrss_steward"):  # tax_chief: the important tax records
        c[steward].decide_export(export, "approve", "scores only")
    files = c["analyst"].download_export(export, site["root"] / "dl" / job["id"])
    lines = files[0].read_text().splitlines()
    assert lines[0] == '"subject","status","score","reason_1","reason_2","note"'
    rows = {ln.split(",")[0].strip('"'): ln for ln in lines[1:]}
    assert rows[codes[3]].replace(codes[3], "X") == rows[NOWHERE].replace(NOWHERE, "X")
    assert rows[codes[3]].endswith(f'"{NOT_AUTHORISED}"') and '"scored"' in rows[codes[0]]
    assert "vat" not in files[0].read_text().lower().replace("avg_vat", "")  # feature names only, no values


@pytest.mark.parametrize("ref", ["default_risk@9", "nope@1", "default_risk", "exp_0123456789abcdef", "../x@1"])
def test_a_score_request_for_a_non_catalog_model_is_not_found_and_audited(site, codes, ref):
    authorise(site, codes[:1])
    with pytest.raises((NotFound, InvalidInput)):
        _score(site, codes[:1], model=ref)
    recs = site["wh"].audit_records(site["people"]["auditor"], action="inference.refused")
    assert any(r["object_id"] == ref[:80] and r["details"]["rule"] == "not_in_catalog" for r in recs)


def test_another_tenant_and_another_purpose_cannot_score(site, codes):
    wh = site["wh"]
    authorise(site, codes[:1])
    wh.users.add(site["people"]["admin"], "rival_analyst", "enterprise", "bank_b") if not _exists(wh, "rival_analyst") \
        else None
    authorise(site, codes[:1], tenant="bank_b")
    with pytest.raises(NotFound):  # published for bank_a only: for bank_b it does not exist
        _score(site, codes[:1], who="rival_analyst")
    with pytest.raises(AccessRefused):
        _score(site, codes[:1], purpose="marketing")


def _exists(wh, name):
    try:
        wh.users.principal(name)
        return True
    except NotFound:
        return False


def test_probing_the_model_with_varied_tenant_inputs_is_limited(site, codes):
    authorise(site, codes[:2])
    first = _by_subject(_score(site, codes[:2], amount=300.0))
    again = _by_subject(_score(site, codes[:2], amount=300.0))  # the same inputs: answered again, same score
    probe = _by_subject(_score(site, codes[:2], amount=2500.0))  # other inputs: the month's one vector is used
    assert first[codes[0]]["score"] == again[codes[0]]["score"]
    assert probe[codes[0]]["status"] == "refused" and "distinct inputs" in probe[codes[0]]["reason"]
    with pytest.raises(InvalidInput):  # inputs are the model's declared tenant inputs, nothing else
        site["wh"].products.inference.score(site["people"]["analyst"], MODEL, codes[:1], PURPOSE,
                                            {codes[0]: {"avg_loan": 1, "avg_vat": 9}})
    with pytest.raises(InvalidInput):
        site["wh"].products.inference.score(site["people"]["analyst"], MODEL, codes[:1], PURPOSE, None)


def _policy_patch(monkeypatch, wh, **changes):
    """Every dataset's policy with ``subject_results`` changed (the stewards' choice)."""
    service = wh.products.inference
    real = service._manifests

    class Patched:
        def __init__(self, m):
            self._m = m

        def build_policy(self):
            p = self._m.build_policy()
            return p.model_copy(update={"subject_results": p.subject_results.model_copy(update=changes)})

        def __getattr__(self, k):
            return getattr(self._m, k)

    monkeypatch.setattr(service, "_manifests", lambda name: Patched(real(name)))


def test_a_dataset_whose_policy_allows_no_per_subject_results_refuses(site, codes, monkeypatch):
    authorise(site, codes[:1])
    _policy_patch(monkeypatch, site["wh"], allowed=False)
    with pytest.raises(Refused) as got:
        _score(site, codes[:1])
    assert got.value.details["rule"] == "subject_results"


def test_the_daily_quota_counts_every_subject_asked_about_and_refuses_whole(site, codes, monkeypatch):
    wh = site["wh"]
    authorise(site, codes[:2])
    with wh.db.read() as s:
        used = max((q.used for q in s.execute(select(SubjectQuota)).scalars()), default=0)
    _policy_patch(monkeypatch, wh, max_subjects_per_day=used + 3)
    _score(site, [codes[0], NOWHERE])  # one authorised, one not: both count
    with wh.db.read() as s:
        before = s.execute(select(SubjectUse.id)).all()
    with pytest.raises(QuotaExceeded) as got:
        _score(site, [codes[1], codes[2]])
    assert got.value.details["rule"] == "max_subjects_per_day"
    with wh.db.read() as s:
        assert s.execute(select(SubjectUse.id)).all() == before  # nothing was written


def test_every_subject_asked_about_is_audited_with_its_rows(site, codes):
    wh = site["wh"]
    authorise(site, codes[:2])
    r = _score(site, codes[:3])
    rec = [x for x in wh.audit_records(site["people"]["auditor"], action="inference.scored")
           if x["object_id"] == r["run_id"]][0]
    assert rec["details"]["subjects"] == 3 and rec["details"]["answered"] == 2 and rec["details"]["refused"] == 1
    with wh.db.read() as s:
        run = s.get(ProductRun, r["run_id"])
        assert run.audit_seq == rec["seq"] and run.rows_sha256 == rec["details"]["rows_sha256"]
        rows = read_rows(run.rows).to_pydict()
    assert rows["subject"] == codes[:3] and rows["outcome"] == ["answered", "answered", "refused"]
    assert "features" not in json.dumps(rec["details"]) and "avg_vat" not in json.dumps(rec["details"])


def test_bad_requests_are_refused_before_anything(site, codes):
    inf, who = site["wh"].products.inference, site["people"]["analyst"]
    for bad in ([], [codes[0], codes[0]], ["=cmd|calc"], [None], ["x" * 200], list(range(3))):
        with pytest.raises(InvalidInput):
            inf.score(who, MODEL, bad, PURPOSE, None)
    with pytest.raises(InvalidInput):
        inf.score(who, MODEL, [f"9150000000000{i:05d}" for i in range(101)], PURPOSE, None)
    with pytest.raises(Exception) as got:
        inf.score(site["people"]["tax_steward"], MODEL, codes[:1], PURPOSE, None)
    assert got.value.code == "forbidden"


def test_a_large_batch_checks_authorisations_the_same_way_and_sees_a_revocation_meanwhile(site, codes, monkeypatch):
    """Past 100 subjects the batch uses the cached, aggregated coverage: same refusals, and a revocation
    made while its features are computed (the tenant's head moves) withholds that subject's score."""
    c, wh = site["c"], site["wh"]
    authorise(site, codes[:4])
    authorise(site, [codes[4]], datasets=("tax_payments",))  # not enough: social insurance not named
    filler = [f"91500000ZZ{i:08d}" for i in range(150)]
    subjects = codes[:6] + filler
    engine = wh.products.inference.engine
    for name in ("compute", "lookup"):  # 4 authorised subjects: the features come from the lookup
        def revoke_meanwhile(named, chosen, real=getattr(engine, name)):
            out = real(named, chosen)
            a = wh.authorisations.list(site["people"]["hrss_steward"], subject=codes[1])[0]
            wh.authorisations.revoke(site["people"]["hrss_steward"], a["id"])
            return out

        monkeypatch.setattr(engine, name, revoke_meanwhile)
    job = c["analyst"].score_batch(MODEL, subjects, PURPOSE, inputs=_inputs(subjects))
    export = c["tax_steward"].get_job(job["id"])["export"]["id"]
    data = {f["name"]: f["data"] for f in c["tax_steward"].preview_export(export)}["scores.csv"].decode()
    status = {ln.split(",")[0].strip('"'): ln.split(",")[1].strip('"') for ln in data.splitlines()[1:]}
    assert [status[s] for s in codes[:6]] == ["scored", "refused", "scored", "scored", "refused", "refused"]
    assert all(status[s] == "refused" for s in filler)
