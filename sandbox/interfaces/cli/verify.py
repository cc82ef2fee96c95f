"""``twh verify define|list|show|check``: verification products (核验).

A steward defines a product over one library feature with fixed thresholds, values or bands;
a tenant checks a claim about one subject who authorised it: yes / no / unknown (or a band),
never the value. A threshold outside the product's list is refused, and distinct claims per
subject per period are limited by the product.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .features import read_yaml
from .output import ctx, emit, out, row, run, say, table

verify_app = typer.Typer(help="Verification products: define them, check a claim about a subject.",
                         no_args_is_help=True)


def _claims(p: dict[str, Any]) -> str:
    if p["kind"] in ("at_least", "at_most"):
        return f"{p['kind']} one of {', '.join(f'{t:g}' for t in p['thresholds'])}"
    if p["kind"] == "one_of":
        return f"one of {', '.join(p['values'][:10])}"
    return "bands " + ", ".join(p["labels"]) + " at " + ", ".join(f"{e:g}" for e in p["edges"])


@verify_app.command("define")
def verify_define(c: typer.Context, file: Path) -> None:
    """Define the product in FILE (YAML: name, feature, kind, thresholds|values|edges+labels, tenants, purposes,
    max_distinct_claims, period)."""
    emit(c, run(lambda: ctx(c).client().define_verification(read_yaml(file))),
         lambda p: say(f"defined {p['ref']} over {p['feature']}: {_claims(p)}; {p['max_distinct_claims']} distinct "
                       f"claim(s) per subject per {p['period']}"))


@verify_app.command("list")
def verify_list(c: typer.Context) -> None:
    """Verification products you may use (all, for stewards and auditors)."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = table("product", "feature", "claims", "tenants", "purposes", whole=("product", "feature"))
        for p in rows:
            row(t, p["ref"], p["feature"], _claims(p), ", ".join(p["allowed_tenants"]), ", ".join(p["allowed_purposes"]))
        out.print(t)
        if not rows:
            say("no verification products")
    emit(c, run(lambda: ctx(c).client().list_verifications()), render)


@verify_app.command("show")
def verify_show(c: typer.Context, ref: str) -> None:
    """A product's fixed claims and limits."""
    emit(c, run(lambda: ctx(c).client().show_verification(ref)),
         lambda p: say(f"{p['ref']} over {p['feature']}: {_claims(p)}; tenants {', '.join(p['allowed_tenants'])}; "
                       f"purposes {', '.join(p['allowed_purposes'])}; {p['max_distinct_claims']} distinct claim(s) per "
                       f"subject per {p['period']}"))


@verify_app.command("check")
def verify_check(c: typer.Context, product: str, subject: str,
                 purpose: Annotated[str, typer.Option(help="what the answer is for")],
                 claim: Annotated[str | None, typer.Option(help="one of the product's thresholds or values")] = None
                 ) -> None:
    """Check PRODUCT's claim about SUBJECT."""
    def render(d: dict[str, Any]) -> None:
        asked = f" {d['claim']}" if d.get("claim") is not None else ""
        if d["status"] == "answered":
            say(f"{d['product']}{asked} for {d['subject']}: {d['answer']} (run {d['run_id']})")
        else:
            say(f"{d['product']}{asked} for {d['subject']}: refused, {d['reason']} (run {d['run_id']})")
    emit(c, run(lambda: ctx(c).client().verify(product, subject, purpose, claim)), render)
