"""The steward sees every byte they approve; a download is audited only for the bytes it sends.

The attack: a job writes an output whose interesting row is past what the review page shows (it
used to stop at 2000 rows and 200 000 characters while saying "the raw bytes below are
complete"). Here the last row differs; the steward must be able to reach it through the page's
own links, the page must say where it stands, and the complete file must be one link away.
"""

from __future__ import annotations

import hashlib
import html
import re
import textwrap

import yaml
from sqlalchemy import select, update

from sandbox.catalog.db import AuditRecord, ExportFile
from sandbox.interfaces.web.files import RAW_BYTES_PER_PAGE, ROWS_PER_PAGE

from .conftest import csrf_of

ROWS = 4500
LAST = "the-last-row-differs"
BIG_JOB = f"""
    import csv
    with open("/out/big.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["row", "value"])
        for i in range({ROWS - 1}):
            w.writerow([f"r{{i:05d}}", "the same value on every row but the last"])
        w.writerow(["r{ROWS - 1:05d}", "the-last-row-" + "differs"])  # the code shown never holds it whole
"""


def _run_job(site, tmp_path, code: str, datasets: list[str]) -> dict:
    jd = tmp_path / "bigjob"
    jd.mkdir()
    (jd / "job.yaml").write_text(yaml.safe_dump({"name": "big", "purpose": "credit_risk", "datasets": datasets}))
    (jd / "job.py").write_text(textwrap.dedent(code))
    job = site.wh.jobs.submit(site.p("analyst"), jd)
    site.wh.jobs.run(job["id"])
    job = site.wh.jobs.get(site.p("admin"), job["id"])
    assert job["state"] == "awaiting_approval", job["reason"]
    return job


def _rows(page: str) -> list[str]:
    return re.findall(r"<td>(r\d{5})</td>", page)


def _next(page: str) -> str | None:
    """The table's "next page" link (the raw bytes have a pager of their own)."""
    pager = re.search(r'data-view="page">(.*?)</div>', page, re.S).group(1)
    m = re.search(r'rel="next" href="([^"]+)"', pager)
    return html.unescape(m.group(1)) if m else None


def test_a_steward_is_shown_every_row_including_the_last_before_approving(site, tmp_path):
    job = _run_job(site, tmp_path, BIG_JOB, ["firms"])
    export_id = job["export"]["id"]
    stored = {f["name"]: f for f in site.wh.exports.get(site.p("admin"), export_id)["files"]}["big.csv"]
    c = site.client("tax_steward")
    url = f"/ui/exports/{export_id}"
    first = c.get(url).text
    pages = -(-ROWS // ROWS_PER_PAGE)
    # the page says what it shows — never "complete" when it is not — with the counts of the bundle's bytes
    # (numbers for people: thousands separated)
    assert f"rows 1–{ROWS_PER_PAGE:,} of {ROWS:,} · page 1 of {pages}" in first
    assert f"{stored['size']:,} bytes · {ROWS:,} data rows" in first and "do not fit on one page" in first
    big = first.split('<strong translate="no">big.csv</strong>', 1)[1].split("</section>", 1)[0]
    assert LAST not in first and "(complete)" not in big  # neither the table nor the raw bytes claim it all

    seen, page, shown = [], first, [first]
    while (link := _next(page)) is not None:  # the steward follows the page's own links
        page = c.get(link).text
        shown.append(page)
        seen += _rows(page)
    seen = _rows(first) + seen
    assert len(shown) == pages and seen == [f"r{i:05d}" for i in range(ROWS)]  # every row, once, in order
    assert LAST in shown[-1] and f"rows {ROWS_PER_PAGE * (pages - 1) + 1:,}–{ROWS:,} of {ROWS:,} · page {pages} of {pages}" \
        in shown[-1]

    # the complete file, one link away: exactly the bytes the bundle hash covers
    whole = c.get(f"/ui/exports/{export_id}/review/big.csv")
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == stored["sha256"]
    assert whole.content.rstrip().endswith(LAST.encode())
    assert site.client("analyst").get(f"/ui/exports/{export_id}/review/big.csv").status_code == 403
    assert site.client("hrss_steward").get(f"/ui/exports/{export_id}/review/big.csv").status_code == 404

    # raw bytes are paged too, with their position, and their last page holds the last row
    raw_pages = -(-stored["size"] // RAW_BYTES_PER_PAGE)
    assert raw_pages > 1 and f"bytes 1–{RAW_BYTES_PER_PAGE:,} of {stored['size']:,} · page 1 of {raw_pages}" in big
    last_raw = c.get(url, params={"file": "big.csv", "page": 1, "raw": raw_pages}).text
    assert LAST in last_raw and f"of {stored['size']:,} · page {raw_pages} of {raw_pages}" in last_raw

    # approving from the last page binds the same bundle: the bytes the steward paged through
    bundle = re.search(r'name="bundle_sha256" value="([0-9a-f]{64})"', shown[-1]).group(1)
    r = c.post(f"{url}/decision", data={"csrf": csrf_of(shown[-1]), "decision": "approve",
                                        "reason": "every page read", "bundle_sha256": bundle},
               follow_redirects=False)
    assert r.status_code == 303
    assert site.wh.exports.get(site.p("admin"), export_id)["state"] == "approved"


def test_a_small_file_is_said_complete_and_out_of_range_pages_are_clamped(site):
    c = site.client("tax_steward")
    page = c.get(f"/ui/exports/{site.export_id}").text
    assert "(complete)" in page and "do not fit on one page" not in page
    assert c.get(f"/ui/exports/{site.export_id}", params={"file": "rates.csv", "page": 10**9}).status_code == 200
    assert c.get(f"/ui/exports/{site.export_id}", params={"page": 0}).status_code == 422


def _downloads(site) -> list[dict]:
    with site.wh.db.read() as s:
        return [r.details for r in s.execute(select(AuditRecord).where(
            AuditRecord.action == "export.downloaded", AuditRecord.object_id == site.export_id)).scalars()]


def test_a_download_is_audited_per_file_and_only_when_bytes_are_sent(site):
    for steward in ("tax_steward", "bank_steward"):
        c = site.client(steward)
        page = c.get(f"/ui/exports/{site.export_id}").text
        bundle = re.search(r'name="bundle_sha256" value="([0-9a-f]{64})"', page).group(1)
        c.post(f"/ui/exports/{site.export_id}/decision",
               data={"csrf": csrf_of(page), "decision": "approve", "reason": "ok", "bundle_sha256": bundle})
    analyst = site.client("analyst")
    before = len(_downloads(site))
    r = analyst.get(f"/ui/exports/{site.export_id}/files/no-such-file.csv")
    assert r.status_code == 404 and len(_downloads(site)) == before  # nothing sent, nothing recorded
    r = analyst.get(f"/ui/exports/{site.export_id}/files/rates.csv")
    assert r.status_code == 200
    (record,) = _downloads(site)[before:]
    assert record["files"] == [["rates.csv", hashlib.sha256(r.content).hexdigest()]]  # this file, not the bundle

    # tampered stored bytes: a named refusal (never 500 internal_error), audited, nothing sent
    with site.wh.db.transaction() as s:
        s.execute(update(ExportFile).where(ExportFile.export_id == site.export_id, ExportFile.name == "rates.csv")
                  .values(data=r.content + b"9,9,9\n"))
    r = analyst.get(f"/ui/exports/{site.export_id}/files/rates.csv")
    assert r.status_code == 409 and "tampered" in r.text and "9,9,9" not in r.text
    api = analyst.get(f"/v1/exports/{site.export_id}/download",
                      headers={"Authorization": f"Bearer {site.tokens['analyst']}"})
    assert api.status_code == 409 and api.json()["error"]["code"] == "tampered"
    assert api.json()["error"]["details"]["files"] == ["rates.csv"]
    with site.wh.db.read() as s:
        refused = s.execute(select(AuditRecord).where(AuditRecord.action == "export.download_refused")).scalars().all()
    assert len(refused) == 2 and refused[0].details["changed"] == ["rates.csv"]
    assert len(_downloads(site)) == before + 1
