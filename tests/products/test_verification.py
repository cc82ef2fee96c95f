"""Verification products: answers against the data, fixed claims, and the binary-search attack."""

from __future__ import annotations

import duckdb
import pytest
from product_site import authorise

from sandbox.errors import Forbidden, InvalidInput, NotFound
from sandbox.products.uses import NOT_AUTHORISED

PURPOSE = "credit_decision"


def _vat_2023(site, subject):
    snap = site["wh"].products.engine.snapshots(["tax_payments"])["tax_payments"]
    files = ", ".join(f"'{f}'" for f in snap.files)
    return duckdb.sql(f"SELECT SUM(vat_paid) FROM read_parquet([{files}]) WHERE uscc = '{subject}' AND period >= "
                      "'2023-01' AND period <= '2023-12'").fetchall()[0][0]


def _define(site, **d):
    base = {"feature": "vat_2023@1", "kind": "at_least", "tenants": ["bank_a"], "purposes": [PURPOSE]}
    return site["wh"].products.verification.define(site["people"]["tax_steward"], {**base, **d})


def test_the_answer_is_the_claim_on_the_data(site, codes):
    authorise(site, codes[:6])
    wh, who = site["wh"], site["people"]["analyst"]
    for s in codes[:6]:
        value = _vat_2023(site, s)
        r = wh.products.verification.verify(who, "vat_2023_at_least@1", s, PURPOSE, claim=100000)
        assert r["status"] == "answered"
        assert r["answer"] == ("unknown" if value is None else "yes" if value >= 100000 else "no")
        assert set(r) == {"run_id", "product", "purpose", "versions", "subject", "claim", "status", "answer",
                          "authorisations"}  # never the value


def test_threshold_search_a_tenant_cannot_bisect_a_subjects_value(site, codes):
    """The attacker walks the product's thresholds, bisection-style, for one subject: it gets as many
    distinct answers as the product allows per period (2 here), then refusals; a threshold of its
    own choosing is never evaluated."""
    p = _define(site, name="vat_search", thresholds=[10000, 50000, 100000, 200000, 400000, 800000],
                max_distinct_claims=2)
    authorise(site, codes[:1])
    wh, who, s = site["wh"], site["people"]["analyst"], codes[0]
    asked = [200000, 50000, 100000, 10000, 400000]
    got = [wh.products.verification.verify(who, p["ref"], s, PURPOSE, claim=t) for t in asked]
    assert [g["status"] for g in got] == ["answered", "answered", "refused", "refused", "refused"]
    assert all("limit of distinct claims" in g["reason"] for g in got[2:])
    again = wh.products.verification.verify(who, p["ref"], s, PURPOSE, claim=200000)  # a repeat is not new
    assert again["status"] == "answered" and again["answer"] == got[0]["answer"]
    for own in (123456, "1e5x", None, 10000.5):
        with pytest.raises(InvalidInput):
            wh.products.verification.verify(who, p["ref"], s, PURPOSE, claim=own)
    # what the attacker learnt: two bits, i.e. an interval of the product's grid, not the value
    values = sorted(set(asked[:2]))
    assert len([g for g in got if g["status"] == "answered"]) == len(values)


def test_unauthorised_subjects_are_refused_alike(site, codes):
    wh, who = site["wh"], site["people"]["analyst"]
    a = wh.products.verification.verify(who, "vat_2023_at_least@1", codes[0], PURPOSE, claim=100000)
    b = wh.products.verification.verify(who, "vat_2023_at_least@1", "91500000ZZ00000000", PURPOSE, claim=100000)
    for r in (a, b):
        assert r["status"] == "refused" and r["reason"] == NOT_AUTHORISED and "answer" not in r
    assert {k: v for k, v in a.items() if k not in ("run_id", "subject")} == \
        {k: v for k, v in b.items() if k not in ("run_id", "subject")}


def test_bands_and_one_of_products(site, codes):
    authorise(site, codes[:3])
    wh, who = site["wh"], site["people"]["analyst"]
    bands = _define(site, name="vat_band", kind="bands", edges=[50000, 500000], labels=["small", "medium", "large"])
    district = wh.products.verification.define(site["people"]["tax_steward"], {
        "name": "in_district", "feature": "district@1", "kind": "one_of", "values": ["500103", "500105"],
        "tenants": ["bank_a"], "purposes": [PURPOSE]})
    for s in codes[:3]:
        v = _vat_2023(site, s)
        r = wh.products.verification.verify(who, bands["ref"], s, PURPOSE)
        assert r["answer"] == ("unknown" if v is None else "small" if v < 50000 else "medium" if v < 500000 else "large")
        d = wh.products.verification.verify(who, district["ref"], s, PURPOSE, claim="500103")
        truth = duckdb.sql("SELECT district FROM read_parquet([" + ", ".join(
            f"'{f}'" for f in wh.products.engine.snapshots(["enterprise_registry"])["enterprise_registry"].files)
            + f"]) WHERE uscc = '{s}'").fetchall()[0][0]
        assert d["answer"] == ("yes" if truth == "500103" else "no")
    with pytest.raises(InvalidInput):
        wh.products.verification.verify(who, bands["ref"], codes[0], PURPOSE, claim=1)


def test_who_defines_and_who_asks(site):
    wh = site["wh"]
    with pytest.raises(Forbidden):  # the feature reads tax_payments: the fund's steward does not hold it
        wh.products.verification.define(site["people"]["hrss_steward"], {
            "name": "x", "feature": "vat_2023@1", "kind": "at_least", "thresholds": [1], "tenants": ["bank_a"],
            "purposes": [PURPOSE]})
    with pytest.raises(InvalidInput):  # a categorical feature cannot be thresholded
        _define(site, name="y", feature="industry@1", thresholds=[1])
    with pytest.raises(NotFound):  # a product for bank_a does not exist for anyone else
        wh.products.verification.verify(_other(wh, site), "vat_2023_at_least@1",
                                        site["codes"][0], PURPOSE, claim=100000)


def _other(wh, site):
    try:
        return wh.users.principal("bank_d_analyst")
    except NotFound:
        wh.users.add(site["people"]["admin"], "bank_d_analyst", "enterprise", "bank_d")
        return wh.users.principal("bank_d_analyst")
