"""The products' commands in Chinese (``--lang zh-CN``): the feature library, the model catalog,
verification, authorisations, scores and a subject's access log print their own words in Chinese
and every data value (refs, tenants, purposes, subject ids, states, hashes) as it is; their help
is Chinese too; ``--json`` is the same in both languages."""

from __future__ import annotations

import json
import re

import pytest
from product_site import PURPOSE, authorise, build_site
from typer.testing import CliRunner

from sandbox.interfaces.cli.main import app
from tests.interfaces.web.untranslated import foreign_words

#: what Chinese CLI lines keep as written besides data: option names, formats, command lines
KEPT = {"sha256", "ε", "YAML", "CSV", "SQL", "SHA-256", "NAME", "VERSION", "FILE", "ISO", "YYYY-MM-DD", "DP"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = build_site(tmp_path_factory.mktemp("lang_products"), n_enterprises=200)
    wh, admin = s["wh"], s["people"]["admin"]
    s["subject"] = subject = s["codes"][0]
    wh.users.add(admin, "applicant", "subject", "applicants", subject)
    authorise(s, [subject])
    s["c"]["analyst"].score(s["model"]["ref"], [subject, s["codes"][1]], PURPOSE,
                            inputs={subject: {"avg_loan": 300}, s["codes"][1]: {"avg_loan": 300}})
    s["c"]["analyst"].verify(s["product"]["ref"], subject, PURPOSE, claim=100000)
    yield s
    wh.close()


def twh(site, who, *args):
    r = CliRunner().invoke(app, ["--home", str(site["root"] / "wh"), "--as", who, *args])
    assert r.exit_code == 0, r.output
    return r.output


def english_left(text: str, data: set[str]) -> list[str]:
    """Latin words of ``text`` that are neither a data value, nor kept as written (``KEPT``)."""
    for value in sorted(data, key=len, reverse=True):  # longest first: avg_vat@1 before avg_vat
        text = text.replace(value, " ")
    return [w for w in foreign_words(text) if w not in KEPT]


def data_of(site) -> set[str]:
    """Every value the products' commands print: refs, names, ids, states, hashes, columns, tenants."""
    wh, admin = site["wh"], site["people"]["admin"]
    values: set[str] = {site["subject"], site["codes"][1], PURPOSE}
    for f in wh.products.features.list(admin):
        values |= {f["ref"], f["kind"], f["published_by"], f["privacy_unit"], f["sha256"], f["sha256"][:16],
                   f["description"], *f["datasets"], *f["labels"]}
        shown = wh.products.features.show(admin, f["ref"])
        values |= {" ".join(shown["sql"].split()), *shown.get("models", []), *shown.get("training_jobs", [])}
        for ln in shown.get("lineage", []):
            values |= {ln["dataset"], *ln["columns"]}
    m = site["model"] = wh.products.models.show(admin, site["model"]["ref"])
    values |= {m["ref"], m["state"], m["owner_tenant"], str(m.get("model_kind")), m["export_id"], m["job_id"],
               m["weights_sha256"][:16], m["terms_sha256"], *m["features"], *m["tenant_inputs"],
               *m["allowed_tenants"], *m["allowed_purposes"], *m["approvals"], *m["approvals"].values()}
    p = site["product"]
    values |= {p["ref"], p["feature"], p["kind"], p["period"], *p["allowed_tenants"], *p["allowed_purposes"]}
    for a in wh.authorisations.list(admin):
        values |= {a["id"], a["tenant"], a["registered_by"], a["state"], *a["datasets"]}
    return values | {"bank_a", "analyst", "model", "verification", "answered", "refused", "active", "scored",
                     "yes", "no", "unknown", "not authorised", "applicants", "tax_steward", "hrss_steward"}


def test_the_catalog_and_library_read_chinese_and_the_data_stays_as_it_is(site):
    data = data_of(site)
    en, zh = twh(site, "analyst", "model", "list"), twh(site, "analyst", "--lang", "zh-CN", "model", "list")
    assert "owner" in en and "no catalog models" not in en
    header = zh.strip().splitlines()[0]
    assert {"模型", "状态", "所有者", "租户", "用途", "特征"} <= set(header.split()), header
    assert english_left(header, data) == [] and "default_risk@1" in zh  # (cells wrap at 80 columns: values split)
    zh = twh(site, "analyst", "--lang", "zh-CN", "feature", "list")
    header = zh.strip().splitlines()[0]
    assert {"特征", "类型", "数据集", "标签", "说明"} <= set(header.split()) and english_left(header, data) == []
    assert "avg_vat@1" in zh and "尚未发布任何特征" not in zh
    zh = twh(site, "analyst", "--lang", "zh-CN", "verify", "list")
    assert {"产品", "特征", "核验条件"} <= set(zh.strip().splitlines()[0].split()) and "vat_2023_at_least@1" in zh
    # lines for people (never wrapped): every word Chinese but the values
    for args in (["model", "show", "default_risk@1"], ["feature", "show", "avg_vat@1"],
                 ["verify", "show", "vat_2023_at_least@1"]):
        zh = twh(site, "tax_steward", "--lang", "zh-CN", *args)
        assert re.search(r"[\u4e00-\u9fff]", zh) and english_left(zh, data) == [], (args, zh)
    assert "读取 tax_payments（uscc, vat_paid）" in twh(site, "tax_steward", "--lang", "zh-CN",
                                                         "feature", "show", "avg_vat@1")
    assert "不低于以下阈值之一：50000, 100000, 500000, 1e+06" in twh(site, "analyst", "--lang", "zh-CN", "verify",
                                                                    "show", "vat_2023_at_least@1")


def test_scores_checks_authorisations_and_the_subjects_log_in_chinese(site):
    data = data_of(site)
    s, other = site["subject"], site["codes"][1]
    zh = twh(site, "analyst", "--lang", "zh-CN", "score", "now", "default_risk@1", s, other, "--purpose", PURPOSE,
             "--input", "avg_loan=300")
    assert "数据主体" in zh and "评分" in zh and s in zh and "refused" in zh  # the status is a value: as it is
    zh = twh(site, "analyst", "--lang", "zh-CN", "verify", "check", "vat_2023_at_least@1", s, "--purpose", PURPOSE,
             "--claim", "100000")
    assert f"数据主体 {s}：" in zh
    zh = twh(site, "analyst", "--lang", "zh-CN", "authorize", "list")
    assert all(w in zh for w in ("编号", "数据主体", "租户", "用途", "状态")) and "subject" not in zh
    zh = twh(site, "applicant", "--lang", "zh-CN", "subject", "activity", s)
    for u in site["wh"].products.activity.of(site["people"]["admin"], s)["items"]:
        data |= {u["product"], u["actor"], u["tenant"], *u["authorisations"], str(u["claim"] or s)}
    assert f"数据主体 {s}：共" in zh and "已核验" in zh and "核验未通过" not in zh
    for line in zh.splitlines():
        assert english_left(line, data) == [], line


def test_the_products_help_is_chinese_and_json_does_not_change(site):
    for args in (["model", "list", "--help"], ["feature", "list", "--help"], ["model", "--help"],
                 ["authorize", "grant", "--help"]):
        en, zh = twh(site, "analyst", *args), twh(site, "analyst", "--lang", "zh-CN", *args)
        assert not re.search(r"[\u4e00-\u9fff]", en.replace("训练仓", "")), en
        assert re.search(r"[\u4e00-\u9fff]", zh), zh
    assert "列出您可查看的目录模型。" in twh(site, "analyst", "--lang", "zh-CN", "model", "list", "--help")
    assert "仓库目录" in twh(site, "analyst", "--lang", "zh-CN", "feature", "list", "--help")  # the global options
    grant = twh(site, "analyst", "--lang", "zh-CN", "authorize", "grant", "--help")
    assert "获得授权的租户" in grant and "已签署的授权同意书" in grant
    # help follows TWH_LANG too, and a later --lang in English gives English back
    r = CliRunner().invoke(app, ["model", "list", "--help"], env={"TWH_LANG": "zh-CN"})
    assert "列出您可查看的目录模型。" in r.output
    r = CliRunner().invoke(app, ["--lang", "zh-CN", "model", "--lang", "en", "list", "--help"])
    assert "Catalog models you may see." in r.output
    for args in (["model", "list"], ["feature", "list"], ["verify", "list"]):
        en = json.loads(twh(site, "analyst", "--json", *args))
        zh = json.loads(twh(site, "analyst", "--lang", "zh-CN", "--json", *args))
        assert en == zh and en
