"""Authorisations (授权): who may register, revoke and see them; what is checked; the audit; imports."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sandbox.catalog.products import Authorisation
from sandbox.datasets.manifest import parse_manifest
from sandbox.errors import Forbidden, InvalidInput, NotFound

SHA = hashlib.sha256(b"signed consent").hexdigest()
MANIFEST = {"name": "tax_payments", "provider_kind": "government", "stewards": ["tax_steward"],
            "schema": [{"name": "uscc", "type": "string", "role": "join_key", "nullable": False},
                       {"name": "vat_paid", "type": "float64", "role": "measure", "nullable": False}],
            "policy": {"tenants": ["bank_a"], "purposes": ["credit_decision"], "privacy_unit": "uscc",
                       "subject_results": {"allowed": True}}}


@pytest.fixture
def setup(wh, people):
    wh.datasets.register(people["tax_steward"], parse_manifest(MANIFEST))
    wh.datasets.register(people["hrss_steward"], parse_manifest({**MANIFEST, "name": "social_insurance",
                                                                 "stewards": ["hrss_steward"]}))
    wh.users.add(people["admin"], "firm_a", "subject", "firms", "91500000MA5U000001")
    return {**people, "firm_a": wh.users.principal("firm_a")}


def _grant(wh, who, subject="91500000MA5U000001", **kw):
    args = {"subject": subject, "tenant": "bank_a", "purpose": "credit_decision", "datasets": ["tax_payments"],
            "valid_until": (datetime.now(UTC) + timedelta(days=30)).date().isoformat(), "consent_sha256": SHA, **kw}
    return wh.authorisations.grant(who, **args)


def test_the_subject_registers_its_own_and_nobody_elses(wh, setup):
    a = _grant(wh, setup["firm_a"])
    assert a["state"] == "active" and a["registered_by"] == "firm_a" and a["datasets"] == ["tax_payments"]
    with pytest.raises(Forbidden):
        _grant(wh, setup["firm_a"], subject="91500000MA5U000002")
    rec = wh.audit_records(setup["auditor"], action="authorisation.granted")[-1]
    assert rec["object_id"] == a["id"] and rec["details"]["consent_sha256"] == SHA and rec["actor"] == "firm_a"


def test_a_steward_registers_only_for_datasets_it_holds(wh, setup):
    _grant(wh, setup["tax_steward"], subject="91500000MA5U000009")
    with pytest.raises(Forbidden):
        _grant(wh, setup["tax_steward"], subject="91500000MA5U000009", datasets=["tax_payments", "social_insurance"])
    for who in ("analyst", "auditor", "admin"):  # the tenant cannot authorise itself; nor can others
        with pytest.raises(Forbidden):
            _grant(wh, setup[who], subject="91500000MA5U000009")


@pytest.mark.parametrize("bad", [{"consent_sha256": "abc"}, {"valid_until": "2001-01-01"},
                                 {"valid_until": "2999-01-01"}, {"datasets": []}, {"datasets": ["nope"]},
                                 {"datasets": ["tax_payments", "tax_payments"]}, {"subject": "=cmd|x"},
                                 {"tenant": "Bank A"}, {"purpose": ""}, {"valid_until": "soon"}])
def test_bad_authorisations_are_refused_naming_the_field(wh, setup, bad):
    with pytest.raises((InvalidInput, NotFound)):
        _grant(wh, setup["firm_a"], **bad)
    with wh.db.read() as s:
        assert s.execute(select(Authorisation.id)).first() is None


def test_who_sees_and_who_revokes(wh, setup):
    a = _grant(wh, setup["firm_a"])
    assert [x["id"] for x in wh.authorisations.list(setup["analyst"])] == [a["id"]]  # the tenant it authorised
    assert wh.authorisations.list(setup["rival"]) == []  # another tenant sees nothing
    with pytest.raises(NotFound):
        wh.authorisations.get(setup["rival"], a["id"])
    with pytest.raises(NotFound):  # the fund's steward: not its dataset
        wh.authorisations.revoke(setup["hrss_steward"], a["id"])
    with pytest.raises(Forbidden):  # the tenant cannot withdraw the subject's consent (nor extend it)
        wh.authorisations.revoke(setup["analyst"], a["id"])
    r = wh.authorisations.revoke(setup["firm_a"], a["id"])
    assert r["state"] == "revoked" and r["revoked_by"] == "firm_a"
    assert wh.audit_records(setup["auditor"], action="authorisation.revoked")[-1]["object_id"] == a["id"]


def test_a_bulk_import_is_all_or_nothing_and_bound_by_one_record(wh, setup):
    until = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    rows = [{"subject": f"91500000MA5U{i:06d}", "tenant": "bank_a", "purpose": "credit_decision",
             "datasets": ["tax_payments"], "valid_until": until, "consent_sha256": SHA} for i in range(50)]
    with pytest.raises(InvalidInput, match="rows\\[49\\]"):
        wh.authorisations.grant_many(setup["tax_steward"], rows[:49] + [{**rows[49], "consent_sha256": "x"}])
    with pytest.raises(Forbidden):
        wh.authorisations.grant_many(setup["tax_steward"], [{**rows[0], "datasets": ["social_insurance"]}])
    with wh.db.read() as s:
        assert s.execute(select(Authorisation.id)).first() is None
    got = wh.authorisations.grant_many(setup["tax_steward"], rows)
    rec = wh.audit_records(setup["auditor"], action="authorisation.imported")[-1]
    from sandbox.access.authorisations import rows_sha256

    listed = wh.authorisations.list(setup["auditor"])
    assert got["count"] == 50 == rec["details"]["count"] and len(listed) == 50
    assert rows_sha256(listed) == rec["details"]["rows_sha256"] == got["rows_sha256"]
