"""``twh model publish|approve|list|show``: the model catalog.

An approved training export (trained on library features) is proposed with its terms — who may
use it for what, tenant inputs, reason codes — and published once a steward of every dataset its
job read has approved those exact terms (their SHA-256).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...i18n import N_, _
from .output import ctx, emit, row, run, say, show, table

model_app = typer.Typer(
    rich_markup_mode=None, help=N_("The model catalog: publish approved DP models for inference."), no_args_is_help=True)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def render_model(m: dict[str, Any]) -> None:
    say(_("model {ref}: {state} (owner {owner}, {kind}, certified ε {eps})").format(
        ref=m["ref"], state=m["state"], owner=m["owner_tenant"], kind=m.get("model_kind"),
        eps=m["certified_epsilon"]))
    say(_("  from export {export} of job {job}; weights sha256 {sha}…").format(
        export=m["export_id"], job=m["job_id"], sha=m["weights_sha256"][:16]))
    say(_("  features: {refs}").format(refs=", ".join(m["features"]))
        + (_("; tenant inputs: {names}").format(names=", ".join(m["tenant_inputs"])) if m["tenant_inputs"] else ""))
    say(_("  tenants: {tenants}; purposes: {purposes}; reason codes: {n}; scores to {digits} decimals").format(
        tenants=", ".join(m["allowed_tenants"]), purposes=", ".join(m["allowed_purposes"]), n=m["reason_codes"],
        digits=m["score_digits"]))
    say(_("  terms sha256 {sha}").format(sha=m["terms_sha256"]))
    for d, steward in sorted(m["approvals"].items()):
        say(_("  {dataset}: approved by {steward}").format(dataset=d, steward=steward))
    if m.get("needs_approval_from"):
        say(_("  waiting for a steward of: {datasets}").format(datasets=", ".join(m["needs_approval_from"])))


@model_app.command("publish", help=N_("Propose the approved training export EXPORT_ID as a catalog model; it is "
                                      "published when a steward of every dataset its job read has approved its "
                                      "terms."))
def model_publish(c: typer.Context, export_id: str,
                  name: Annotated[str, typer.Option(help=N_("the catalog name (lower case, _)"))],
                  tenants: Annotated[str, typer.Option(help=N_("tenants that may use it, comma-separated"))],
                  purposes: Annotated[str, typer.Option(help=N_("purposes it may be used for, comma-separated"))],
                  tenant_inputs: Annotated[str | None, typer.Option(help=N_("model inputs the tenant supplies (its own "
                                                                            "columns), comma-separated"))] = None,
                  reason_codes: Annotated[int, typer.Option(help=N_("reason codes returned with each score"))] = 0,
                  score_digits: Annotated[int, typer.Option(help=N_("decimals of a score"))] = 2,
                  max_distinct_inputs: Annotated[int, typer.Option(help=N_("distinct tenant-input vectors per subject "
                                                                          "and month"))] = 1,
                  description: Annotated[str, typer.Option(help=N_("what the model predicts"))] = "") -> None:
    data = run(lambda: ctx(c).client().propose_model(
        export_id, name=name, tenants=_csv(tenants), purposes=_csv(purposes), tenant_inputs=_csv(tenant_inputs),
        reason_codes=reason_codes, score_digits=score_digits, max_distinct_inputs=max_distinct_inputs,
        description=description))
    emit(c, data, render_model)


@model_app.command("approve", help=N_("Approve a proposed model's terms for the datasets you steward (bound to "
                                      "their SHA-256)."))
def model_approve(c: typer.Context, ref: str,
                  terms: Annotated[str | None, typer.Option(help=N_("the terms sha256 you reviewed (default: the "
                                                                    "one `twh model show` printed)"))] = None) -> None:
    emit(c, run(lambda: ctx(c).client().approve_model(ref, terms)), render_model)


@model_app.command("list", help=N_("Catalog models you may see."))
def model_list(c: typer.Context) -> None:
    def render(rows: list[dict[str, Any]]) -> None:
        whole = (_("model"), _("state"))
        t = table(*whole, _("owner"), _("tenants"), _("purposes"), _("features"), whole=whole)
        for m in rows:
            row(t, m["ref"], m["state"], m["owner_tenant"], ", ".join(m["allowed_tenants"]),
                ", ".join(m["allowed_purposes"]), ", ".join(m["features"]))
        show(t)
        if not rows:
            say(_("no catalog models"))
    emit(c, run(lambda: ctx(c).client().list_models()), render)


@model_app.command("show", help=N_("A catalog model: terms, approvals, features (NAME or NAME@VERSION)."))
def model_show(c: typer.Context, ref: str) -> None:
    emit(c, run(lambda: ctx(c).client().show_model(ref)), render_model)
