"""The feature library: what a steward may publish (the training planner's rules), versions, lineage,
and that training and inference compute the same values from the same definitions."""

from __future__ import annotations

import pytest

from sandbox.errors import Forbidden, InvalidInput, NotFound, QueryRefused
from sandbox.training.features import UNIT
from sandbox.training.library import compose


def _publish(site, who, **d):
    return site["wh"].products.features.publish(site["people"][who], {"kind": "numeric", **d})


@pytest.mark.parametrize("sql,rule", [
    ("SELECT t.vat_paid AS f_rows FROM tax_payments t", "privacy_unit"),  # one value per row, not per subject
    ("SELECT AVG(t.vat_paid) AS f_period FROM tax_payments t GROUP BY t.uscc, t.period", "privacy_unit"),
    ("SELECT AVG(t.vat_paid) AS f_two, MAX(t.vat_paid) AS y FROM tax_payments t GROUP BY t.uscc", "feature_library"),
    ("SELECT AVG(t.vat_paid) AS other_name FROM tax_payments t GROUP BY t.uscc -- as f_named", "feature_library"),
    ("SELECT t.uscc AS f_key FROM tax_payments t GROUP BY t.uscc", "join_key"),  # the unit itself: never a value
    ("SELECT AVG(t.vat_paid) AS f_cte FROM (SELECT * FROM tax_payments) t GROUP BY t.uscc", None),
    ("SELECT AVG(t.vat_paid) AS f_join FROM tax_payments t JOIN enterprise_registry r ON t.period = r.industry "
     "GROUP BY t.uscc", None),
])
def test_the_training_planner_refuses_what_a_library_feature_may_not_be(site, sql, rule):
    name = sql.split(" -- as ")[1] if " -- as " in sql else sql.split(" AS ")[1].split()[0].rstrip(",")
    sql = sql.split(" -- as ")[0]
    with pytest.raises(QueryRefused) as got:
        _publish(site, "tax_steward", name=name, sql=sql)
    if rule:
        assert got.value.details["rule"] == rule, got.value.message


def test_a_steward_publishes_only_over_what_it_stewards(site):
    with pytest.raises(Forbidden):
        _publish(site, "hrss_steward", name="hrss_vat", sql="SELECT AVG(t.vat_paid) AS hrss_vat FROM tax_payments t "
                                                            "GROUP BY t.uscc")
    with pytest.raises(Forbidden):
        _publish(site, "analyst", name="mine", sql="SELECT AVG(t.vat_paid) AS mine FROM tax_payments t GROUP BY t.uscc")
    with pytest.raises(NotFound):
        _publish(site, "tax_steward", name="gone", sql="SELECT AVG(x.a) AS gone FROM nowhere x GROUP BY x.u")
    with pytest.raises(InvalidInput):
        _publish(site, "tax_steward", name="Bad-Name", sql="SELECT 1")


def test_versions_are_immutable_and_lineage_names_datasets_columns_versions_and_users(site):
    sql = "SELECT MAX(t.income_tax_paid) AS max_cit FROM tax_payments t GROUP BY t.uscc"
    v1 = _publish(site, "tax_steward", name="max_cit", sql=sql, labels=["tax"])
    v2 = _publish(site, "tax_steward", name="max_cit", sql=sql.replace("MAX", "MIN"))
    assert (v1["version"], v2["version"]) == (1, 2) and v1["sha256"] != v2["sha256"]
    wh = site["wh"]
    assert wh.products.features.resolve("max_cit@1").sql == sql  # the first version is what it was
    shown = wh.products.features.show(site["people"]["analyst"], "max_cit")
    assert shown["version"] == 2
    lineage = wh.products.features.show(site["people"]["analyst"], "avg_vat@1")
    assert lineage["lineage"] == [{"dataset": "tax_payments", "columns": ["uscc", "vat_paid"], "version_at_publish": 1,
                                   "current_version": 1}]
    assert lineage["models"] == ["default_risk@1"] and site["job_id"] in lineage["training_jobs"]
    assert wh.products.features.show(site["people"]["rival"] if "rival" in site["people"] else
                                     site["people"]["auditor"], "avg_vat@1")["training_jobs"]


def test_training_and_inference_compute_the_same_values(site):
    """No training/serving skew: the training composition (the job's own query as base) and the
    inference paths (subjects table; materialised lookup) give every unit the same feature values."""
    from sandbox.gate.engine import open_connection

    wh = site["wh"]
    refs = ["industry@1", "district@1", "registered_capital@1", "avg_vat@1", "zero_tax_share@1", "avg_headcount@1"]
    named = [wh.products.features.resolve(r) for r in refs]
    train = compose(named, wh.products.features.lookup,
                    extra_sql="SELECT MAX(l.defaulted) AS defaulted FROM bank_loans l GROUP BY l.uscc")
    snaps = wh.products.engine.snapshots(train.tables)
    con = open_connection(train, snaps)
    try:
        t = con.sql(train.engine_sql).to_arrow_table().to_pydict()
    finally:
        con.close()
    units = t[UNIT][:40]
    by_sql, _ = wh.products.engine.compute(named, units)
    by_lookup, _ = wh.products.engine.lookup(named, units)
    for nf in named:
        expected = [t[nf.name][i] for i in range(40)]
        assert by_sql[nf.name].to_pylist() == expected, nf.ref
        assert by_lookup[nf.name].to_pylist() == expected, nf.ref
