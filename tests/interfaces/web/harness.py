"""A demo warehouse served by a real uvicorn on loopback, and a headless Chromium to drive its pages.

Used by the browser tests (``tests/interfaces/web/test_browser.py``) and by ``make screenshots``
(``tests/interfaces/web/screenshots.py``). Chromium is Debian's (``/usr/bin/chromium``): Playwright never
downloads a browser here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from product_site import PURPOSE, add_products, authorise, registry_codes
from serving import serving

from sandbox.demo.scenario import JOBS, build_warehouse
from sandbox.interfaces.api.app import create_app
from sandbox.warehouse import Warehouse
from tests.interfaces.web.trained import submit_training_job

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: written by a job, shown to a steward: must appear as text, never run
XSS = "<script>window.__pwned=1</script><img src=x onerror=\"window.__pwned=2\">"
XSS_JOB = f'''
import twh_job
r = twh_job.query("SELECT r.industry, COUNT(*) AS firms FROM enterprise_registry AS r GROUP BY r.industry")
with open("/out/notes.csv", "w") as fh:
    fh.write("note,value\\n")
    fh.write({XSS!r} + ",1\\n")
r.to_csv("by_industry.csv")
'''


def chromium_available() -> bool:
    return Path(CHROMIUM).exists() and shutil.which("chromium") is not None


@dataclass
class Demo:
    wh: Warehouse
    url: str
    tokens: dict[str, str]
    rate_job: dict[str, Any]  # the demo's default-rate job (awaiting approval)
    xss_job: dict[str, Any]  # a job whose CSV carries a script tag
    train_job: dict[str, Any]  # a training job (model card + attack report), awaiting approval
    subject: str = ""  # the applicant's firm (user "applicant", role subject): scored and checked by bank_a

    def bundle(self, export_id: str) -> str:
        return str(self.wh.exports.get(self.wh.users.principal("admin"), export_id)["bundle_sha256"])


def _job(root: Path, name: str, code: str, datasets: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "job.yaml").write_text(yaml.safe_dump({"name": name, "purpose": "credit_risk", "datasets": datasets}))
    (root / "job.py").write_text(code)
    return root


@contextmanager
def demo_server(home: Path, *, n_enterprises: int = 300, real_training: bool = False) -> Iterator[Demo]:
    """The demo warehouse (jobs already run) behind a uvicorn server on a free loopback port.

    The training job's trainer is a stand-in (``tests/interfaces/web/trained.py``) unless ``real_training``."""
    wh, clients = build_warehouse(home / "wh", n_enterprises=n_enterprises, say=lambda *_a, **_k: None)
    admin = clients["admin"]
    admin.add_user("rival", "enterprise", "bank_b")
    tokens = {n: wh.users.issue_token(admin.principal, n)
              for n in ("admin", "analyst", "rival", "tax_steward", "tax_chief", "bank_steward", "hrss_steward",
                        "auditor")}
    analyst = clients["analyst"]
    # the jobs as the platform sees them (their submitter sees "awaiting_review" and no export
    # until a steward acts): the tests need their export ids
    full = lambda job: wh.jobs.get(admin.principal, job["id"])  # noqa: E731
    rate_job = full(analyst.submit_job(JOBS / "default_rate"))
    xss_job = full(analyst.submit_job(_job(home / "xss_job", "notes", XSS_JOB, ["enterprise_registry"])))
    train_job = full(submit_training_job(wh, analyst, home, real=real_training))
    # the products (tests/product_site.py): library, default_risk@1, vat_2023_at_least@1, and an
    # applicant whose data bank_a scored and checked under its authorisation
    products = add_products(wh, clients, home)
    subject = registry_codes(wh)[0]
    admin.add_user("applicant", "subject", "applicants", subject=subject)
    authorise({"c": clients}, [subject])
    analyst.score(products["model"]["ref"], [subject], PURPOSE, inputs={subject: {"avg_loan": 300}})
    analyst.verify(products["product"]["ref"], subject, PURPOSE, claim=100000)
    tokens["applicant"] = wh.users.issue_token(admin.principal, "applicant")
    try:
        with serving(create_app(warehouse=wh)) as url:
            yield Demo(wh, url, tokens, rate_job, xss_job, train_job, subject)
    finally:
        wh.close()


@contextmanager
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def login(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_load_state()
