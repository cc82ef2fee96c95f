"""The pages in Chinese (zh-CN) and English: which language a page is in, the switch, and no
English word left on a Chinese page outside the data values the templates mark."""

from __future__ import annotations

import re
import shutil

import pytest
from fastapi.testclient import TestClient
from product_site import PURPOSE, approve_all, authorise, build_site, consent, train_standin

from sandbox.catalog.db import User
from sandbox.demo.scenario import JOBS
from sandbox.interfaces.api.app import create_app
from sandbox.interfaces.web import core

from .conftest import csrf_of, login
from .untranslated import foreign_words, untranslated

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}


def pages(site):
    job, export = site.job["id"], site.export_id
    return {
        None: ["/ui/login"],
        "tax_steward": ["/ui/queue", "/ui/exports", f"/ui/exports/{export}", "/ui/jobs", f"/ui/jobs/{job}",
                        "/ui/datasets", "/ui/datasets?grade=important", "/ui/datasets/firms", "/ui/jobs/job_nope",
                        "/ui/exports?state=pending"],
        "auditor": ["/ui/audit", "/ui/audit?action=query.*", "/ui/audit/activity", f"/ui/audit/jobs/{job}",
                    f"/ui/exports/{export}", "/ui/datasets/loans"],
        "analyst": ["/ui/datasets", "/ui/jobs", f"/ui/jobs/{job}", "/ui/exports", "/ui/datasets/firms"],
        "rival": [f"/ui/jobs/{job}"],  # another tenant's job: the 404 page
    }


def test_every_page_in_chinese_shows_no_english_word_outside_marked_data(site):
    checked = 0
    for user, paths in pages(site).items():
        c = site.client(user)
        for path in paths:
            r = c.get(path, headers=ZH)
            assert r.status_code in (200, 404), (path, r.status_code)
            assert '<html lang="zh-CN">' in r.text and r.headers["content-language"] == "zh-CN", path
            assert untranslated(r.text) == [], (user, path)
            checked += 1
    verify = site.client("auditor")
    page = verify.get("/ui/audit", headers=ZH)
    r = verify.post("/ui/audit/verify", data={"csrf": csrf_of(page.text)}, headers=ZH)
    assert "哈希链验证通过" in r.text and untranslated(r.text) == []
    assert checked >= 20


@pytest.fixture(scope="module")
def products(tmp_path_factory):
    """The products in place (tests/product_site.py): the feature library, a published model and a
    proposed one, a verification product, and an applicant (role subject) whose data was scored and
    checked, with an authorisation in force, one not yet in force and one revoked."""
    site = build_site(tmp_path_factory.mktemp("products_zh"), n_enterprises=200)
    wh, c, admin = site["wh"], site["c"], site["people"]["admin"]
    applicant, other = site["codes"][:2]
    wh.users.add(admin, "applicant", "subject", "applicants", applicant)
    authorise(site, [applicant])
    c["analyst"].score(site["model"]["ref"], [applicant, other], PURPOSE,
                       inputs={applicant: {"avg_loan": 300}, other: {"avg_loan": 300}})
    c["analyst"].verify(site["product"]["ref"], applicant, PURPOSE, claim=100000)
    me = wh.users.principal("applicant")
    wh.authorisations.grant(me, subject=applicant, tenant="bank_a", purpose="marketing", datasets=["tax_payments"],
                            valid_until="2030-12-31", consent_sha256=consent(applicant), valid_from="2029-01-01")
    gone = wh.authorisations.grant(me, subject=applicant, tenant="bank_b", purpose=PURPOSE,
                                   datasets=["tax_payments"], valid_until="2030-12-31",
                                   consent_sha256=consent(applicant))
    wh.authorisations.revoke(me, gone["id"])
    # a second training export, proposed and not yet approved by any steward
    job = train_standin(wh, c["analyst"], shutil.copytree(JOBS / "default_model", site["root"] / "draft"), seed=1)
    approve_all(c, job["export"]["id"], ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"))
    c["analyst"].propose_model(job["export"]["id"], name="default_risk_draft", tenants=["bank_a"],
                               purposes=[PURPOSE], tenant_inputs=["avg_loan"], reason_codes=1)
    site["tokens"] = {n: wh.users.issue_token(admin, n) for n in ("tax_steward", "analyst", "auditor", "applicant")}
    site["app"] = create_app(warehouse=wh)
    site["applicant"] = applicant
    yield site
    wh.close()


def product_pages(site):
    s = site["applicant"]
    library = ["/ui/features", "/ui/features/avg_vat@1", "/ui/features/industry@1", "/ui/models",
               "/ui/models/default_risk@1"]
    return {
        "tax_steward": library,
        "analyst": [*library, "/ui/models/default_risk_draft@1"],
        "auditor": [*library, "/ui/subject", f"/ui/subject?subject={s}"],
        "applicant": ["/ui/subject", "/ui/models", "/ui/models/default_risk@1"],  # the subject role
    }


def test_the_products_pages_in_chinese_show_no_english_word_outside_marked_data(products):
    checked = 0
    for user, paths in product_pages(products).items():
        c = TestClient(products["app"], base_url="http://testserver")
        login(c, products["tokens"][user])
        for path in paths:
            r = c.get(path, headers=ZH)
            assert r.status_code == 200, (user, path, r.status_code)
            assert '<html lang="zh-CN">' in r.text and r.headers["content-language"] == "zh-CN", path
            assert untranslated(r.text) == [], (user, path)
            checked += 1
    assert checked >= 19
    # what the pages say in Chinese, and the data values they keep as they are
    c = TestClient(products["app"], base_url="http://testserver")
    login(c, products["tokens"]["applicant"])
    page = c.get("/ui/subject", headers=ZH).text
    assert "我的数据使用情况" in page and "数据主体" in page and products["applicant"] in page
    for word in ("模型评分", "核验", "已答复", "已核验", "有效", "尚未生效", "已撤销", "撤销"):
        assert word in page, word
    assert "Use of my data" in c.get("/ui/subject").text  # English stays the default
    login(c, products["tokens"]["analyst"])
    draft = c.get("/ui/models/default_risk_draft@1", headers=ZH).text
    assert "待审批" in draft and "等待数据管理员批准" in draft and "使用条款" in draft
    models = c.get("/ui/models", headers=ZH).text
    assert "模型目录与核验产品" in models and "不低于" in models and "每个数据主体每月最多 1 个" in models
    assert "特征库" in c.get("/ui/features", headers=ZH).text


def test_the_checker_finds_english_and_spares_marked_data():
    """The check itself can fail: an English word outside data is found, data and technical names are not."""
    assert untranslated('<p>审核队列 <span translate="no">tax_payments</span> <code>query_refused</code></p>') == []
    assert untranslated("<p>等待 Review</p>") == ["p: 等待 Review"]
    assert untranslated('<img alt="privacy budget">') != []
    assert untranslated('<p>SHA-256 · CSV · v12 · 1,234 · ε 0.5 · GB/T 43697</p>') == []
    assert foreign_words("导出 firms") == ["firms"]


def test_english_stays_the_default_and_error_codes_never_change(site):
    c = site.client("tax_steward")
    en = c.get("/ui/queue")
    assert '<html lang="en">' in en.text and "Review queue" in en.text
    zh = c.get("/ui/queue", headers=ZH)
    assert "审核队列" in zh.text and "Review queue" not in zh.text
    for headers in ({}, ZH):
        r = c.get("/ui/jobs/job_nope", headers=headers)
        assert r.status_code == 404 and "<code>not_found</code>" in r.text  # the code, in every language
    assert "未找到" in c.get("/ui/jobs/job_nope", headers=ZH).text
    # Traditional Chinese is not zh-CN: its readers get English rather than the wrong script
    assert '<html lang="en">' in c.get("/ui/queue", headers={"Accept-Language": "zh-TW"}).text


def test_the_language_follows_the_users_setting_then_the_cookie_then_the_browser(site):
    c = site.client("bank_steward")
    page = c.get("/ui/queue")
    r = c.post("/ui/language", data={"csrf": csrf_of(page.text), "lang": "zh-CN", "next": "/ui/queue?x=1"},
               follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/queue?x=1"
    with site.wh.db.read() as s:  # kept in the catalog: every browser of this user, any service process
        assert s.query(User).filter_by(name="bank_steward").one().locale == "zh-CN"
    fresh = site.client("bank_steward")  # another browser, English by Accept-Language and cookie
    assert "审核队列" in fresh.get("/ui/queue", headers={"Accept-Language": "en"}).text
    assert core.language.__doc__  # (documented order)
    # back to English, by the same switch
    page = fresh.get("/ui/queue")
    fresh.post("/ui/language", data={"csrf": csrf_of(page.text), "lang": "en", "next": "/ui/queue"})
    assert "Review queue" in fresh.get("/ui/queue", headers=ZH).text  # the setting beats the browser
    site.wh.users.set_locale(site.p("bank_steward"), None)
    # no setting: the cookie beats Accept-Language
    anon = site.client()
    r = anon.get("/ui/language", params={"lang": "zh-CN", "next": "/ui/login"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert "登录" in anon.get("/ui/login", headers={"Accept-Language": "en"}).text
    # and with nothing at all, the browser decides
    assert "登录" in site.client().get("/ui/login", headers=ZH).text
    assert "Sign in" in site.client().get("/ui/login").text


def test_the_switch_is_protected_and_checked(site):
    c = site.client("tax_steward")
    assert c.post("/ui/language", data={"csrf": "forged", "lang": "zh-CN"}).status_code == 403
    page = c.get("/ui/queue")
    bad = c.post("/ui/language", data={"csrf": csrf_of(page.text), "lang": "klingon"})
    assert bad.status_code == 422 and "invalid_input" in bad.text
    anon = site.client()
    for target in ("https://evil.example/", "//evil.example/ui/", "/etc/passwd"):
        r = anon.get("/ui/language", params={"lang": "zh-CN", "next": target}, follow_redirects=False)
        assert r.headers["location"] == "/ui/"  # never sent off-site
    assert anon.get("/ui/language", params={"lang": "xx"}, follow_redirects=False).status_code == 303
    with pytest.raises(Exception):  # noqa: B017 - the service refuses unknown languages whatever the edge
        site.wh.users.set_locale(site.p("tax_steward"), "fr")


def test_numbers_on_pages_are_formatted_for_people(site):
    c = site.client("tax_steward")
    text = c.get(f"/ui/exports/{site.export_id}").text
    size = next(f["size"] for f in site.wh.exports.get(site.p("admin"), site.export_id)["files"]
                if f["name"] == "rates.csv")
    assert f"{size:,} bytes" in text
    rows = c.get("/ui/datasets/loans").text
    assert re.search(r'<td class="num">300</td>', rows)
    assert "1,000,000" in c.get("/ui/datasets/firms").text  # the declared max of capital, 1e6
