"""``make screenshots``: PNGs of the main pages, on the demo warehouse, for a reviewer to look at, in
each language the interface speaks: ``OUT/en/*.png`` and ``OUT/zh-CN/*.png`` (a browser asking for
that language, as a Chinese user's does).

    .venv/bin/python tests/interfaces/web/screenshots.py var/screenshots
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the shared `serving` helper

from tests.interfaces.web.harness import browser, demo_server, login  # noqa: E402

VIEWPORT = {"width": 1360, "height": 900}
LANGUAGES = ("en", "zh-CN")


def main(out: Path) -> list[Path]:
    for lang in LANGUAGES:
        (out / lang).mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    # the model card and training review are real: the platform's DP-SGD trainer runs (seconds to a minute here)
    with tempfile.TemporaryDirectory(prefix="twh-shots-") as tmp, \
            demo_server(Path(tmp), real_training=True) as demo, browser() as b:
        export_id = demo.rate_job["export"]["id"]
        model_export = demo.train_job["export"]["id"]

        def shoot(user: str, path: str, name: str, full: bool = True) -> None:
            for lang in LANGUAGES:
                ctx = b.new_context(viewport=VIEWPORT, device_scale_factor=1, locale=lang)
                page = ctx.new_page()
                login(page, demo.url, demo.tokens[user])
                page.goto(demo.url + path)
                shots.append(out / lang / f"{name}.png")
                page.screenshot(path=str(shots[-1]), full_page=full)
                ctx.close()

        shoot("tax_steward", "/ui/queue", "01-steward-queue")
        shoot("tax_steward", f"/ui/exports/{export_id}", "02-export-review")
        shoot("tax_steward", "/ui/datasets/tax_payments", "03-dataset")
        shoot("tax_chief", "/ui/queue", "11-senior-steward-queue", full=False)
        shoot("bank_steward", f"/ui/exports/{model_export}", "09-training-export")
        shoot("bank_steward", f"/ui/exports/{model_export}/model", "10-model-card")
        # the stewards approve, so the audit log and the replay show a whole story
        for steward in ("tax_steward", "bank_steward"):
            demo.wh.exports.decide(demo.wh.users.principal(steward), export_id, "approve",
                                   "aggregates over >= 10 enterprises only", demo.bundle(export_id))
        shoot("auditor", "/ui/audit?limit=25", "04-audit-log", full=False)
        shoot("auditor", f"/ui/audit/jobs/{demo.rate_job['id']}", "05-job-replay")
        shoot("auditor", "/ui/audit/activity", "06-activity")
        shoot("analyst", "/ui/datasets", "07-catalog", full=False)
        shoot("analyst", "/ui/datasets?grade=important", "12-catalog-important", full=False)
        shoot("analyst", f"/ui/exports/{export_id}", "08-enterprise-export")
    return shots


if __name__ == "__main__":
    for p in main(Path(sys.argv[1] if len(sys.argv) > 1 else "var/screenshots")):
        print(p)
