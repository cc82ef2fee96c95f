"""The pages end to end: headless Chromium (Playwright) against a real uvicorn server on loopback."""

from __future__ import annotations

import pytest

from .harness import XSS, browser, demo_server, login

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with demo_server(tmp_path_factory.mktemp("web")) as d:
        yield d


@pytest.fixture(scope="module")
def chromium():
    with browser() as b:
        yield b


@pytest.fixture
def page(chromium):
    ctx = chromium.new_context()
    yield ctx.new_page()
    ctx.close()


def test_login_sets_an_opaque_strict_cookie_and_logout_ends_the_session(demo, page):
    page.goto(f"{demo.url}/ui/queue")
    assert page.url.startswith(f"{demo.url}/ui/login")  # no session: the login page
    page.fill("input[name=token]", "twh_not_a_token")
    page.click("button[type=submit]")
    assert "unknown or revoked token" in page.inner_text("main")

    login(page, demo.url, demo.tokens["tax_steward"])
    assert page.url == f"{demo.url}/ui/queue"
    assert "Review queue" in page.inner_text("h1")
    (cookie,) = [c for c in page.context.cookies() if c["name"] == "twh_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert demo.tokens["tax_steward"] not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # nothing readable by scripts

    page.click("text=Sign out")
    page.goto(f"{demo.url}/ui/queue")
    assert page.url.startswith(f"{demo.url}/ui/login")


def test_stewards_approve_the_default_rate_export_and_the_analyst_downloads_it(demo, page, tmp_path):
    export_id = demo.rate_job["export"]["id"]
    for steward in ("tax_steward", "bank_steward"):
        login(page, demo.url, demo.tokens[steward])
        assert export_id in page.inner_text("table")  # in the queue
        page.click(f"a[href='/ui/exports/{export_id}'] >> nth=0")
        assert "default_rate_by_industry_district.csv" in page.inner_text("main")
        assert page.locator("table.data tbody tr").count() >= 1  # the CSV as a table
        assert "refused by rule" in page.inner_text("table.queries")  # the gate's decisions per query
        assert "refused as expected" in page.inner_text("main")  # the withheld stdout
        page.fill("textarea[name=reason]", "aggregates over >= 10 enterprises only")
        page.click("button[value=approve]")
        assert "Your decision (approve) was recorded" in page.inner_text("main")
        page.click("text=Sign out")
    assert demo.wh.exports.get(demo.wh.users.principal("auditor"), export_id)["state"] == "approved"

    login(page, demo.url, demo.tokens["analyst"])
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    with page.expect_download() as dl:
        page.click("table >> text=Download")  # the file's row (the Bundle card links the signed provenance)
    path = tmp_path / "got.csv"
    dl.value.save_as(path)
    assert path.read_text().startswith("industry,district,loans")
    with page.expect_download() as dl:
        page.click(".provenance >> text=Download")
    assert dl.value.suggested_filename == "provenance.intoto.jsonl"


def test_auditor_verifies_the_chain_and_sees_a_tampered_record(demo, page):
    login(page, demo.url, demo.tokens["auditor"])
    assert page.url == f"{demo.url}/ui/audit"
    page.click("text=Verify the chain")
    assert "Chain verified" in page.inner_text(".verify")

    with demo.wh.db.transaction() as s:  # someone edits record 3 behind the warehouse's back
        from sandbox.catalog.db import AuditRecord
        rec = s.get(AuditRecord, 3)
        original = dict(rec.details)
        rec.details = {**original, "tampered": True}
    try:
        page.click("text=Verify the chain")
        text = page.inner_text(".verify")
        assert "Chain broken at record 3" in text and "modified" in text
    finally:
        with demo.wh.db.transaction() as s:
            s.get(AuditRecord, 3).details = original
    page.click("text=Verify the chain")
    assert "Chain verified" in page.inner_text(".verify")


def test_auditor_filters_the_log_and_replays_a_job(demo, page):
    login(page, demo.url, demo.tokens["auditor"])
    page.fill("input[name=action]", "query.*")
    page.click("button:has-text('Search')")
    actions = page.locator("table.audit tbody .act").all_inner_texts()
    assert actions and set(actions) <= {"query.released", "query.refused"}
    page.goto(f"{demo.url}/ui/audit/jobs/{demo.rate_job['id']}")
    text = page.inner_text("main")
    assert "SELECT * FROM bank_loans" in text and "refused by rule" in text
    assert "bank_loans v1" in text and demo.rate_job["export"]["id"] in text


def test_a_tenant_cannot_see_another_tenants_job_or_export(demo, page):
    login(page, demo.url, demo.tokens["rival"])
    for path in (f"/ui/jobs/{demo.rate_job['id']}", f"/ui/exports/{demo.rate_job['export']['id']}"):
        resp = page.goto(demo.url + path)
        assert resp.status == 404
        assert "Not found" in page.inner_text("h1")
    page.goto(f"{demo.url}/ui/jobs")
    assert demo.rate_job["id"] not in page.inner_text("main")


def test_a_post_without_the_csrf_token_is_refused(demo, page):
    export_id = demo.xss_job["export"]["id"]
    login(page, demo.url, demo.tokens["tax_steward"])
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    bundle = page.input_value("input[name=bundle_sha256]")
    form = {"decision": "deny", "reason": "forged", "bundle_sha256": bundle}
    for extra in ({}, {"csrf": "x" * 43}):
        r = page.request.post(f"{demo.url}/ui/exports/{export_id}/decision", form={**form, **extra},
                              max_redirects=0)
        assert r.status == 403 and "CSRF" in r.text()
    assert demo.wh.exports.get(demo.wh.users.principal("auditor"), export_id)["state"] == "pending"


def test_a_script_in_an_export_cell_is_shown_as_text(demo, page):
    login(page, demo.url, demo.tokens["tax_steward"])
    page.goto(f"{demo.url}/ui/exports/{demo.xss_job['export']['id']}")
    cells = page.locator("table.data td").all_inner_texts()
    assert XSS in cells  # shown verbatim, as text
    assert page.evaluate("window.__pwned") is None  # and nothing ran
    assert page.locator("main script").count() == 0 and page.locator("table.data img").count() == 0


def test_a_steward_sees_the_model_card_and_attack_report_of_a_training_export(demo, page):
    import json

    export_id = demo.train_job["export"]["id"]
    auditor = demo.wh.users.principal("auditor")
    files = {f.name: f for f in demo.wh.exports.preview(auditor, export_id)}
    assert {"model.safetensors", "model_card.json", "model_card.png"} <= set(files)  # the job's own CSV too
    assert not [n for n in files if "attack" in n or "review" in n]  # no attack report in the export
    card = json.loads(files["model_card.json"].data)
    # the attack report is the stewards': in the job's training review (job logs), never in the export
    review = json.loads(demo.wh.jobs.logs(auditor, demo.train_job["id"])["training_review"])
    p, a = card["privacy"], review["membership_inference"]
    login(page, demo.url, demo.tokens["bank_steward"])
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    summary = page.inner_text(".model-summary")
    assert "card verified against the bundle" in summary and f"ε = {p['epsilon']:.4g}" in summary
    assert ("attack flagged" if a["flagged"] else "attack not flagged") in summary
    assert "membership_inference" in page.inner_text(".training-review")  # with the withheld logs
    page.click("text=Model card and attack report")
    assert page.url == f"{demo.url}/ui/exports/{export_id}/model"
    assert "verified against the bundle" in page.inner_text("h1")
    privacy = page.inner_text(".privacy")
    for shown in (f"{p['epsilon']:.4g}", "1e-08", "PRV (Gopi et al. 2021)", "RDP (Mironov 2017)",
                  f"{p['noise_multiplier']:.4g}", "Poisson", f"{p['steps']}"):
        assert shown in privacy, shown
    assert page.inner_text(".q").startswith(f"{p['sample_rate']:.4g}")
    assert page.inner_text(".clip").startswith(f"{p['max_grad_norm']:.4g}")
    attack = page.inner_text(".attack")
    assert page.inner_text(".attack-metrics .auc") == f"{a['auc']:.3g}"
    assert page.inner_text(".attack-metrics .advantage") == f"{a['advantage']:.3g}"
    assert page.inner_text(".attack-metrics .tpr1") == f"{a['tpr_at_fpr_1pct']:.3g}"
    assert ("flagged" in attack) and (("not flagged" in attack) != a["flagged"])
    exact = page.inner_text(".exact")
    assert f"{review['data']['training_rows']} / {review['data']['held_out_rows']}" in exact
    versions = page.locator(".data .chip.version").all_inner_texts()
    assert sorted(versions) == sorted(f"{d} v{v}" for d, v in card["data"]["versions"].items())
    assert files["model.safetensors"].sha256 in page.inner_text(".hashes")
    assert f"{card['holdout_metrics_dp']['auc']:.3g}" in page.inner_text(".holdout")
    assert str(card["holdout_rows_dp"]) in page.inner_text(".holdout-rows")
    # the curves render (an SVG the server drew from the card and the review) and so does the bundle's own PNG
    assert page.evaluate("document.querySelector('img.curves').naturalWidth") > 0
    page.click("text=model_card.png")
    assert page.evaluate("document.querySelector('img.bundle-png').naturalWidth") > 0


def test_weights_are_shown_as_binary_with_their_tensor_table_never_as_text(demo, page):
    from .trained import SHAPES

    export_id = demo.train_job["export"]["id"]
    files = {f.name: f for f in demo.wh.exports.preview(demo.wh.users.principal("auditor"), export_id)}
    weights = files["model.safetensors"]
    login(page, demo.url, demo.tokens["bank_steward"])
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    card = page.locator("section.file", has_text="model.safetensors")
    text = card.inner_text()
    assert "Binary file, not shown as text" in text and weights.sha256 in text and f"{len(weights.data):,} bytes" in text
    rows = card.locator("table.tensors tbody tr").all_inner_texts()
    assert sorted(r.split("\t")[0] for r in rows) == sorted(SHAPES)
    assert any(r.split("\t")[1:] == ["F32", " × ".join(map(str, SHAPES["net.0.weight"]))] for r in rows), rows
    assert card.locator("details").count() == 0 and "\ufffd" not in text  # no "raw bytes" of a binary
    assert "Binary file" in page.locator("section.file", has_text="model_card.png").inner_text()
    # the same in `twh export show --content`, against this service
    from typer.testing import CliRunner

    from sandbox.interfaces.cli.main import app

    r = CliRunner().invoke(app, ["export", "show", export_id, "--content", "--url", demo.url,
                                 "--token", demo.tokens["bank_steward"]])
    assert r.exit_code == 0, r.output
    assert f"--- model.safetensors (binary, not shown as text: {len(weights.data):,} bytes, sha256 {weights.sha256})" \
        in r.output and "net.0.weight" in r.output and "\ufffd" not in r.output and "--- model_card.json ---" in r.output


def test_docs_and_redoc_render_with_the_network_cut_off(demo, page):
    """/docs and /redoc load only from the service itself: with every other address blocked, the UIs render."""
    from urllib.parse import urlparse

    here = urlparse(demo.url).netloc
    outside: list[str] = []

    def only_local(route):
        if urlparse(route.request.url).netloc == here:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{demo.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "Training Warehouse" in page.inner_text(".swagger-ui .info .title")
    assert page.locator(".opblock").count() > 10  # the operations, from /openapi.json
    page.goto(f"{demo.url}/redoc")
    page.wait_for_selector("h1", timeout=20_000)
    assert "Training Warehouse" in page.inner_text("h1")
    assert outside == []
    for path in ("/docs", "/redoc"):
        html = page.request.get(f"{demo.url}{path}").text()
        assert "cdn" not in html.lower() and "https://" not in html and "http://" not in html, path


def test_the_model_page_is_for_training_exports_and_waits_for_approval_for_the_submitter(demo, page):
    login(page, demo.url, demo.tokens["analyst"])
    assert page.goto(f"{demo.url}/ui/exports/{demo.train_job['export']['id']}/model").status == 404
    login(page, demo.url, demo.tokens["bank_steward"])
    assert page.goto(f"{demo.url}/ui/exports/{demo.rate_job['export']['id']}/model").status == 404


def test_the_enterprise_never_sees_the_attack_report_even_after_approval(demo, page):
    export_id = demo.train_job["export"]["id"]
    wh = demo.wh
    e = wh.exports.get(wh.users.principal("admin"), export_id)
    # tax_payments is important data (GB/T 43697): its senior steward, tax_chief, decides for it
    for steward in ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"):
        e = wh.exports.decide(wh.users.principal(steward), export_id, "approve", "DP card checked",
                              e["bundle_sha256"])
    assert e["state"] == "approved"
    login(page, demo.url, demo.tokens["analyst"])
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    summary = page.inner_text(".model-summary")
    assert "attack" not in summary.lower() and page.locator(".training-review").count() == 0
    page.click("text=Model card")
    assert page.url == f"{demo.url}/ui/exports/{export_id}/model"
    assert "verified against the bundle" in page.inner_text("h1")
    html, text = page.content(), page.inner_text("main")
    assert page.locator(".privacy").count() == 1 and page.locator(".holdout").count() == 1  # the DP card
    assert page.locator(".attack").count() == 0 and page.locator(".exact").count() == 0
    for secret in ("membership_inference", "Advantage", "TPR at", "epoch_losses_train", "training_rows",
                   "privacy_unit_rows", "Training review"):
        assert secret not in html, secret
    assert "not part of the export" in text


# -- the same pages in Chinese (zh-CN): a browser that asks for Chinese gets it, every page -----

from .untranslated import DOM_TEXT_JS, foreign_words  # noqa: E402


@pytest.fixture
def zh_page(chromium):
    ctx = chromium.new_context(locale="zh-CN")  # Accept-Language: zh-CN, as a Chinese browser sends
    yield ctx.new_page()
    ctx.close()


def _english_left(page) -> list[str]:
    return [t for t in page.evaluate(DOM_TEXT_JS) if foreign_words(t)]


def test_a_chinese_browser_gets_chinese_pages_and_a_steward_approves_in_chinese(demo, zh_page):
    page = zh_page
    page.goto(f"{demo.url}/ui/login")
    assert page.locator("html").get_attribute("lang") == "zh-CN" and "登录" in page.inner_text("h1")
    login(page, demo.url, demo.tokens["tax_steward"])
    assert page.inner_text("h1") == "审核队列"
    export_id = demo.xss_job["export"]["id"]
    page.goto(f"{demo.url}/ui/exports/{export_id}")
    assert "<script>" in page.inner_text("main")  # what the job wrote is shown as written, as text
    page.fill("textarea[name=reason]", "只含聚合结果")
    page.click("button[value=approve]")
    assert "您的决定（批准）已针对文件包" in page.inner_text("main")
    assert demo.wh.exports.get(demo.wh.users.principal("auditor"), export_id)["state"] == "approved"
    assert _english_left(page) == []
    # the switch: English for this user from now on, in any browser
    page.click("button[value=en]")
    assert "Export" in page.inner_text("h1") and page.locator("html").get_attribute("lang") == "en"
    assert demo.wh.users.locale("tax_steward") == "en"
    page.click("button[value=zh-CN]")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    demo.wh.users.set_locale(demo.wh.users.principal("tax_steward"), None)


PRODUCTS = ["/ui/features", "/ui/features/avg_vat@1", "/ui/models", "/ui/models/default_risk@1"]


@pytest.mark.parametrize("user,paths", [
    ("tax_steward", ["/ui/queue", "/ui/datasets", "/ui/datasets/tax_payments", "/ui/datasets?grade=important",
                     "/ui/jobs", "/ui/exports", *PRODUCTS]),
    ("tax_chief", ["/ui/queue", "/ui/exports/{train}", "/ui/exports/{train}/model"]),
    ("auditor", ["/ui/audit", "/ui/audit/activity", "/ui/audit/jobs/{rate_job}", "/ui/jobs/{rate_job}",
                 "/ui/exports/{rate}", "/ui/subject", "/ui/subject?subject={subject}", "/ui/models"]),
    ("analyst", ["/ui/datasets", "/ui/jobs", "/ui/exports", "/ui/exports/{rate}", "/ui/exports/{train}/model",
                 *PRODUCTS]),
    ("applicant", ["/ui/subject", "/ui/models", "/ui/models/default_risk@1"]),  # the subject role
])
def test_no_english_word_is_left_on_a_chinese_page(demo, zh_page, user, paths):
    ids = {"train": demo.train_job["export"]["id"], "rate": demo.rate_job["export"]["id"],
           "rate_job": demo.rate_job["id"], "subject": demo.subject}
    login(zh_page, demo.url, demo.tokens[user])
    for path in paths:
        resp = zh_page.goto(demo.url + path.format(**ids))
        assert resp.status == 200, path
        assert zh_page.locator("html").get_attribute("lang") == "zh-CN", path
        assert _english_left(zh_page) == [], (user, path)


def test_the_applicant_reads_who_used_its_data_and_revokes_in_chinese(demo, zh_page):
    page = zh_page
    login(page, demo.url, demo.tokens["applicant"])  # a subject's home is its own access log
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.inner_text("h1") == f"谁使用了 {demo.subject} 的数据"
    main = page.inner_text("main")
    for words in ("模型评分", "核验", "已答复", "已核验", "有效", "default_risk@1", "vat_2023_at_least@1"):
        assert words in main, words
    assert _english_left(page) == []
    page.locator("button", has_text="撤销").first.click()
    page.wait_for_load_state()
    assert "已撤销" in page.inner_text("main") and _english_left(page) == []
    me = demo.wh.users.principal("applicant")
    assert "revoked" in {a["state"] for a in demo.wh.authorisations.list(me)}
