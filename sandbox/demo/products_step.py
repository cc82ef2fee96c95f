"""The demo's products steps: the stewards' feature library, then — once the bank's model is trained on
it — the model catalog, 20 applicants' authorisations, a batch of scores (one applicant refused), a
verification, and the applicant's own access log.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import yaml
from rich.table import Table

HERE = Path(__file__).parent
FEATURES = HERE / "features"
PRODUCTS = HERE / "products"
PURPOSE = "credit_decision"
APPLICANTS = 21  # 20 authorise the bank; the 21st does not


def publish_features(c: dict[str, Any], say: Any) -> list[str]:
    """The tax bureau's and the social-insurance fund's stewards publish their feature definitions."""
    refs = []
    for steward in ("tax_steward", "hrss_steward"):
        mine = [c[steward].publish_feature(d)["ref"] for d in yaml.safe_load((FEATURES / f"{steward}.yaml").read_text("utf-8"))]
        say(f"  {steward} published {', '.join(mine)}")
        refs += mine
    return refs


def _applicants(home: Path) -> list[str]:
    with open(home / "incoming" / "enterprise_registry.csv", newline="", encoding="utf-8") as fh:
        codes = [r["uscc"] for r in csv.DictReader(fh)]
    return codes[-APPLICANTS:]  # firms that registered last: the bank's newest loan applicants


def run_products_step(wh: Any, c: dict[str, Any], export_id: str, home: Path, say: Any) -> dict[str, Any]:
    from ..interfaces.client import LocalClient
    from ..interfaces.client_products import consent_sha256

    # the catalog: the bank proposes, the stewards of every dataset its model read approve the terms
    m = c["analyst"].propose_model(export_id, name="default_risk", tenants=["bank_a"], purposes=[PURPOSE],
                                   tenant_inputs=["avg_loan"], reason_codes=2,
                                   description="probability that a small-business loan defaults")
    say(f"  the analyst proposes [bold]{m['ref']}[/] (features {', '.join(m['features'])}; tenant input avg_loan; "
        f"2 reason codes); terms sha256 {m['terms_sha256'][:16]}…")
    for steward in ("tax_steward", "tax_chief", "hrss_steward", "bank_steward"):
        m = c[steward].approve_model(m["ref"], m["terms_sha256"])
    say(f"  the tax (and, for the important tax records, its senior), social-insurance and bank stewards approve those terms → [bold]{m['state']}[/]")

    # authorisations: one applicant through its own account, 19 through the data holders' portals
    applicants = _applicants(home)
    consents = home / "incoming" / "consents"
    consents.mkdir(parents=True, exist_ok=True)
    digests = {}
    for code in applicants[:20]:
        doc = consents / f"{code}.txt"
        doc.write_text(f"{code} authorises bank_a to use its tax and social-insurance records for one credit "
                       f"decision ({PURPOSE}) until 2027-12-31.\n", "utf-8")
        digests[code] = consent_sha256(doc)
    first = applicants[0]
    made = c["admin"].add_user("applicant", "subject", "applicants", subject=first)
    c["applicant"] = LocalClient(wh, made["user"]["name"])
    c["applicant"].authorize(first, "bank_a", PURPOSE, ["tax_payments", "social_insurance"], "2027-12-31",
                             digests[first])
    for steward, dataset in (("tax_steward", "tax_payments"), ("hrss_steward", "social_insurance")):
        c[steward].import_authorisations([{"subject": s, "tenant": "bank_a", "purpose": PURPOSE, "datasets": [dataset],
                                           "valid_until": "2027-12-31", "consent_sha256": digests[s]}
                                          for s in applicants[1:20]])
    say(f"  applicant {first} registers its own authorisation (consent sha256 {digests[first][:12]}…); the tax "
        "bureau and the fund import the other 19 applicants' consents; applicant "
        f"{applicants[20]} authorised nobody")

    # the bank scores all 21 applicants as a batch; the stewards review scores.csv like any export
    amounts = {s: 200.0 + 40 * i for i, s in enumerate(applicants)}
    job = c["analyst"].score_batch(m["ref"], applicants, PURPOSE, inputs={s: {"avg_loan": a} for s, a in amounts.items()})
    export = c["tax_steward"].get_job(job["id"])["export"]["id"]
    for steward in ("tax_steward", "tax_chief", "hrss_steward"):  # tax_chief: the important tax records
        c[steward].decide_export(export, "approve", "scores of authorised applicants only; no feature values")
    paths = c["analyst"].download_export(export, home / "downloads" / "scores")
    rows = list(csv.DictReader(open(paths[0], encoding="utf-8")))
    table = Table("subject", "status", "score", "reason 1", "reason 2", "note", title="scores.csv (first 6 and the refused)")
    shown = rows[:6] + [r for r in rows[6:] if r["status"] != "scored"]
    for r in shown:
        table.add_row(r["subject"], r["status"], r["score"], r["reason_1"], r["reason_2"], r["note"])
    say(f"  batch job {job['id']}: {sum(r['status'] == 'scored' for r in rows)} scored, "
        f"{sum(r['status'] == 'refused' for r in rows)} refused; released after the stewards' review")
    say(table)

    # a verification product and one check
    p = c["tax_steward"].define_verification(yaml.safe_load((PRODUCTS / "vat_2023_at_least.yaml").read_text("utf-8")))
    v = c["analyst"].verify(p["ref"], first, PURPOSE, claim=100000)
    say(f"  the tax steward defines [bold]{p['ref']}[/] (thresholds {', '.join(f'{t:g}' for t in p['thresholds'])}, "
        f"one per applicant per month); the bank asks about {first}: VAT 2023 ≥ 100000? → [bold]{v['answer']}[/]")

    # the applicant's own view
    act = c["applicant"].subject_activity(first)
    for u in act["items"]:
        say(f"  {first}'s access log: {u['when'][:19]} {u['tenant']} ({u['actor']}) {u['product_kind']} "
            f"{u['product']} for {u['purpose']} → {u['outcome']} under {', '.join(u['authorisations'])} "
            f"(audit #{u['audit_seq']}, {'verified' if u['verified'] else 'NOT VERIFIED'})")
    return {"model": m, "scores": rows, "verification": v, "activity": act,
            "scores_sha256": hashlib.sha256(paths[0].read_bytes()).hexdigest()}
