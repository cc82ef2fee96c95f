"""The flagship demo: small-business credit (普惠金融), end to end, explained step by step.

Government tables (enterprise registry, monthly tax, social-insurance headcount) and a bank's loan
book land in isolated Delta tables; a bank analyst submits a job that asks for the default rate by
industry × district; small groups are suppressed; the tax bureau's and the bank's stewards
approve the exact bytes; the analyst downloads them; the stewards publish a feature library, the
bank trains a DP model on it, publishes it in the model catalog and scores 20 applicants who
authorised it (one who did not is refused), verifies one claim, and the applicant reads its access
log; the auditor verifies the chain.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from ..errors import ValidationFailed
from ..interfaces.client import LocalClient
from ..settings import Settings
from ..warehouse import Warehouse
from .generate import generate, write_bad_batch

HERE = Path(__file__).parent
MANIFESTS = HERE / "manifests"
JOBS = HERE / "jobs"

USERS = [
    ("tax_steward", "steward", "tax_bureau", "steward of the tax bureau's registry and tax tables"),
    ("tax_chief", "steward", "tax_bureau", "the tax bureau's senior steward: approves exports of important data"),
    ("hrss_steward", "steward", "hrss", "steward of the social-insurance fund's headcount table"),
    ("bank_steward", "steward", "bank_a", "steward of Bank A's loan book"),
    ("analyst", "enterprise", "bank_a", "a credit-risk analyst at Bank A"),
    ("auditor", "auditor", "regulator", "an auditor at the financial regulator"),
]
DATASETS = [("enterprise_registry", "tax_steward"), ("tax_payments", "tax_steward"),
            ("social_insurance", "hrss_steward"), ("bank_loans", "bank_steward")]


def build_warehouse(home: Path, *, fresh: bool = True, n_enterprises: int = 2000,
                    say: Any = print, engine: Settings | None = None) -> tuple[Warehouse, dict[str, LocalClient]]:
    """Create a warehouse with the demo's users and landed datasets; return it and a client per user.

    ``engine``: settings whose query engine (engine, spark_master, spark_conf) the demo uses."""
    if fresh and home.exists():
        shutil.rmtree(home)
    wh = Warehouse.open(Settings(home=home.absolute(), **(engine.model_dump(include={
        "engine", "spark_master", "spark_conf"}) if engine is not None else {})))
    made = wh.users.bootstrap_admin()
    admin = LocalClient(wh, "admin")
    clients = {"admin": admin}
    for name, role, tenant, what in USERS:
        if made:
            admin.add_user(name, role, tenant)
        clients[name] = LocalClient(wh, name)
        say(f"  user [bold]{name}[/] ({role}, tenant {tenant}): {what}")
    data_dir = home / "incoming"
    files = generate(data_dir, n_enterprises=n_enterprises, seed=7)
    for ds, steward in DATASETS:
        clients[steward].register_dataset(MANIFESTS / f"{ds}.yaml")
        r = clients[steward].ingest(ds, files[ds])
        say(f"  {steward} registered and landed [bold]{ds}[/]: {r['rows']} rows → Delta version {r['version']}")
    return wh, clients


def run_demo(home: Path, *, fresh: bool = True, console: Console | None = None,
             engine: Settings | None = None) -> dict[str, Any]:
    con = console or Console()
    say = con.print
    step = lambda n, text: con.print(Panel(text, title=f"step {n}", expand=False))  # noqa: E731

    step(1, "An operator creates the warehouse (a directory + a catalog) and its users.")
    wh, c = build_warehouse(home, fresh=fresh, say=say, engine=engine)

    step(2, "A bad batch arrives: the tax bureau's new file breaks the data contract.")
    try:
        c["tax_steward"].ingest("tax_payments", write_bad_batch(home / "incoming"))
        raise AssertionError("the bad batch should have been quarantined")
    except ValidationFailed as exc:
        say(f"  quarantined, nothing committed: [yellow]{exc.message[:240]}[/]")
    say(f"  tax_payments stays at version {c['tax_steward'].show_dataset('tax_payments')['current_version']}")

    step(3, "The bank's analyst submits a job. Its code runs in a bubblewrap sandbox with no network\n"
            "and no view of the warehouse; it can only ask the broker for gated aggregates.")
    job = c["analyst"].submit_job(JOBS / "default_rate")
    say(f"  job {job['id']} → [bold]{job['state']}[/] for the analyst: until a steward acts, every job looks the\n"
        "  same to its submitter (failed or not, quick or slow), so nothing it saw can leak through its state.")
    review = c["tax_steward"].get_job(job["id"])
    say(f"  the stewards see it [bold]{review['state']}[/]; what it asked and got is theirs to review:")
    for q in review["queries"]:
        d = q["details"]
        if q["outcome"] == "released":
            why = ", ".join(f"{x['rule']} {x['suppressed']}" for x in d.get("decisions", [])
                            if x.get("suppressed") and x.get("rule") != "sdc")
            say(f"  query released on versions {q['versions']}: {d['released_groups']} groups, "
                f"[bold]{d['suppressed_groups']} suppressed[/] (cells failing each rule: {why}); counts and "
                f"means perturbed by the cell-key method ({d.get('mode')}); the job was told none of the "
                "suppression counts")
            for name, rb in (d.get("release_budget") or {}).items():
                say(f"    release budget of {name}: {rb['used']} of {rb['limit']} distinct populations this period")
        else:
            say(f"  query refused: {d.get('reason')}")
    if review["state"] != "awaiting_approval":
        raise AssertionError(f"job ended {review['state']}: {review['reason']}")
    export_id = review["export"]["id"]

    step("3b", "The tax bureau's policy says dp: the analyst's queries on tax_payments\n"
               "(VAT by period; a histogram of VAT over buckets fixed by the declared\n"
               "bounds) get OpenDP noise, bounded per enterprise, each charged to the\n"
               "dataset's ε budget before it runs.")
    dp_job = c["analyst"].submit_job(JOBS / "tax_dp")
    say(f"  job {dp_job['id']} → [bold]{c['tax_steward'].get_job(dp_job['id'])['state']}[/]")
    for q in c["tax_steward"].get_job(dp_job["id"])["queries"]:
        d = q["details"]
        if q["outcome"] != "released":
            raise AssertionError(f"dp query refused: {d.get('reason')}")
        rel = d["decisions"][-1]
        say(f"  released {d['released_groups']} groups, ε spent [bold]{rel['epsilon']}[/] (δ {rel['delta']}, "
            f"keys by {rel['keys']}); noise scale per value: "
            + ", ".join(f"{n['column']} {n['scale']:.3g}" for n in rel["noise"]))
    budget = c["tax_steward"].budget("tax_payments")
    for sc in budget["scopes"]:
        say(f"  tax_payments budget {sc['period']}: spent ε {sc['spent']['epsilon']} of {sc['total']['epsilon']}, "
            f"{sc['remaining']['epsilon']} left")

    step(4, "The stewards of every dataset the job read review the exact bytes and approve.")
    for steward in ("tax_steward", "bank_steward"):
        files = c[steward].preview_export(export_id)
        say(f"  {steward} reviews {[f['name'] for f in files]} ({sum(f['size'] for f in files)} bytes)")
        e = c[steward].decide_export(export_id, "approve", "aggregates over >= 10 enterprises only")
    say(f"  export {export_id} → [bold]{e['state']}[/]")

    step(5, "The analyst downloads the approved file.")
    paths = c["analyst"].download_export(export_id, home / "downloads")
    text = paths[0].read_text()
    table = Table(*next(csv.reader(io.StringIO(text))), title=paths[0].name)
    for row in list(csv.reader(io.StringIO(text)))[1:9]:
        table.add_row(*[f"{float(x):.3f}" if _is_float(x) and "." in x else x for x in row])
    say(table)

    from .products_step import publish_features, run_products_step
    from .training_step import run_training_step

    step("5a", "The stewards publish their feature library (特征库): versioned definitions over their datasets,\n"
               "checked by the training planner. Training and inference compute exactly these.")
    publish_features(c, say)

    step("5b", "The analyst trains a DP default model on the library's tax, social-insurance and registry\n"
               "features, by name, and its own loan book. The broker builds the feature matrix; the platform's own\n"
               "DP-SGD trainer runs in its own sandbox, after reserving ε in every dataset's ledger; only certified\n"
               "weights can leave.")
    trained = run_training_step(c, JOBS / "default_model", home / "downloads" / "model", say)

    step("5c", "The model as a product (measure 十七): the bank publishes it in the model catalog, 20 loan\n"
               "applicants authorise the bank (授权), the bank scores them in the warehouse (推理) — an applicant\n"
               "who did not authorise it is refused — runs one verification (核验), and the applicant reads who\n"
               "used its data. Only scores and yes/no answers leave, never the tax records behind them.")
    products = run_products_step(wh, c, trained["export_id"], home, say)

    step(6, "The auditor verifies the hash chain over every recorded action.")
    v = c["auditor"].audit_verify()
    actions: dict[str, int] = {}
    for r in c["auditor"].audit_records(limit=1000):
        actions[r["action"]] = actions.get(r["action"], 0) + 1
    say(f"  chain ok={v['ok']} over {v['records']} records; actions: {actions}")
    if not v["ok"]:
        raise AssertionError("audit chain broken")
    say("[bold green]demo finished[/]: raw rows never left the warehouse; only gated aggregates, DP-trained "
        "weights and the scores and answers about applicants who authorised the bank did, each recorded.")
    wh.close()
    return {"job": job, "export_id": export_id, "download": [str(p) for p in paths], "audit": v,
            "products": products}


def _is_float(x: str) -> bool:
    try:
        float(x)
    except ValueError:
        return False
    return True
