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

from ...i18n import N_, _
from .features import read_yaml
from .output import ctx, emit, row, run, say, show, table

verify_app = typer.Typer(
    rich_markup_mode=None, help=N_("Verification products: define them, check a claim about a subject."),
                         no_args_is_help=True)


def _claims(p: dict[str, Any]) -> str:
    if p["kind"] in ("at_least", "at_most"):
        thresholds = ", ".join(f"{t:g}" for t in p["thresholds"])
        return (_("at least one of {thresholds}") if p["kind"] == "at_least"
                else _("at most one of {thresholds}")).format(thresholds=thresholds)
    if p["kind"] == "one_of":
        return _("one of {values}").format(values=", ".join(p["values"][:10]))
    return _("bands {labels} at {edges}").format(labels=", ".join(p["labels"]),
                                                 edges=", ".join(f"{e:g}" for e in p["edges"]))


def _limit(p: dict[str, Any]) -> str:
    """The product's limit of distinct claims, a whole sentence per period (the languages word them differently)."""
    said = {"day": _("{n} distinct claim(s) per subject per day"),
            "month": _("{n} distinct claim(s) per subject per month"),
            "year": _("{n} distinct claim(s) per subject per year")}
    return said.get(p["period"], _("{n} distinct claim(s) per subject per {period}")).format(
        n=p["max_distinct_claims"], period=p["period"])


@verify_app.command("define", help=N_("Define the product in FILE (YAML: name, feature, kind, "
                                      "thresholds|values|edges+labels, tenants, purposes, max_distinct_claims, "
                                      "period)."))
def verify_define(c: typer.Context, file: Path) -> None:
    emit(c, run(lambda: ctx(c).client().define_verification(read_yaml(file))),
         lambda p: say(_("defined {ref} over {feature}: {claims}; {limit}").format(
             ref=p["ref"], feature=p["feature"], claims=_claims(p), limit=_limit(p))))


@verify_app.command("list", help=N_("Verification products you may use (all, for stewards and auditors)."))
def verify_list(c: typer.Context) -> None:
    def render(rows: list[dict[str, Any]]) -> None:
        whole = (_("product"), _("feature"))
        t = table(*whole, _("claims"), _("tenants"), _("purposes"), whole=whole)
        for p in rows:
            row(t, p["ref"], p["feature"], _claims(p), ", ".join(p["allowed_tenants"]), ", ".join(p["allowed_purposes"]))
        show(t)
        if not rows:
            say(_("no verification products"))
    emit(c, run(lambda: ctx(c).client().list_verifications()), render)


@verify_app.command("show", help=N_("A product's fixed claims and limits."))
def verify_show(c: typer.Context, ref: str) -> None:
    emit(c, run(lambda: ctx(c).client().show_verification(ref)),
         lambda p: say(_("{ref} over {feature}: {claims}; tenants {tenants}; purposes {purposes}; {limit}").format(
             ref=p["ref"], feature=p["feature"], claims=_claims(p), tenants=", ".join(p["allowed_tenants"]),
             purposes=", ".join(p["allowed_purposes"]), limit=_limit(p))))


@verify_app.command("check", help=N_("Check PRODUCT's claim about SUBJECT."))
def verify_check(c: typer.Context, product: str, subject: str,
                 purpose: Annotated[str, typer.Option(help=N_("what the answer is for"))],
                 claim: Annotated[str | None, typer.Option(help=N_("one of the product's thresholds or values"))]
                 = None) -> None:
    def render(d: dict[str, Any]) -> None:
        asked = f" {d['claim']}" if d.get("claim") is not None else ""
        if d["status"] == "answered":
            say(_("{product}{claim} for {subject}: {answer} (run {run})").format(
                product=d["product"], claim=asked, subject=d["subject"], answer=d["answer"], run=d["run_id"]))
        else:
            say(_("{product}{claim} for {subject}: refused, {reason} (run {run})").format(
                product=d["product"], claim=asked, subject=d["subject"], reason=d["reason"], run=d["run_id"]))
    emit(c, run(lambda: ctx(c).client().verify(product, subject, purpose, claim)), render)
