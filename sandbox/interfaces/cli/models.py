"""``twh model publish|approve|list|show``: the model catalog.

An approved training export (trained on library features) is proposed with its terms — who may
use it for what, tenant inputs, reason codes — and published once a steward of every dataset its
job read has approved those exact terms (their SHA-256).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .output import ctx, emit, out, row, run, say, table

model_app = typer.Typer(help="The model catalog: publish approved DP models for inference.", no_args_is_help=True)


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def render_model(m: dict[str, Any]) -> None:
    say(f"model {m['ref']}: {m['state']} (owner {m['owner_tenant']}, {m.get('model_kind')}, certified ε "
        f"{m['certified_epsilon']})")
    say(f"  from export {m['export_id']} of job {m['job_id']}; weights sha256 {m['weights_sha256'][:16]}…")
    say(f"  features: {', '.join(m['features'])}" + (f"; tenant inputs: {', '.join(m['tenant_inputs'])}"
                                                     if m["tenant_inputs"] else ""))
    say(f"  tenants: {', '.join(m['allowed_tenants'])}; purposes: {', '.join(m['allowed_purposes'])}; "
        f"reason codes: {m['reason_codes']}; scores to {m['score_digits']} decimals")
    say(f"  terms sha256 {m['terms_sha256']}")
    for d, steward in sorted(m["approvals"].items()):
        say(f"  {d}: approved by {steward}")
    if m.get("needs_approval_from"):
        say(f"  waiting for a steward of: {', '.join(m['needs_approval_from'])}")


@model_app.command("publish")
def model_publish(c: typer.Context, export_id: str,
                  name: Annotated[str, typer.Option(help="the catalog name (lower case, _)")],
                  tenants: Annotated[str, typer.Option(help="tenants that may use it, comma-separated")],
                  purposes: Annotated[str, typer.Option(help="purposes it may be used for, comma-separated")],
                  tenant_inputs: Annotated[str | None, typer.Option(help="model inputs the tenant supplies "
                                                                         "(its own columns), comma-separated")] = None,
                  reason_codes: Annotated[int, typer.Option(help="reason codes returned with each score")] = 0,
                  score_digits: Annotated[int, typer.Option(help="decimals of a score")] = 2,
                  max_distinct_inputs: Annotated[int, typer.Option(help="distinct tenant-input vectors per subject "
                                                                       "and month")] = 1,
                  description: Annotated[str, typer.Option(help="what the model predicts")] = "") -> None:
    """Propose the approved training export EXPORT_ID as a catalog model; it is published when a steward
    of every dataset its job read has approved its terms."""
    data = run(lambda: ctx(c).client().propose_model(
        export_id, name=name, tenants=_csv(tenants), purposes=_csv(purposes), tenant_inputs=_csv(tenant_inputs),
        reason_codes=reason_codes, score_digits=score_digits, max_distinct_inputs=max_distinct_inputs,
        description=description))
    emit(c, data, render_model)


@model_app.command("approve")
def model_approve(c: typer.Context, ref: str,
                  terms: Annotated[str | None, typer.Option(help="the terms sha256 you reviewed (default: the "
                                                                 "one `twh model show` printed)")] = None) -> None:
    """Approve a proposed model's terms for the datasets you steward (bound to their SHA-256)."""
    emit(c, run(lambda: ctx(c).client().approve_model(ref, terms)), render_model)


@model_app.command("list")
def model_list(c: typer.Context) -> None:
    """Catalog models you may see."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = table("model", "state", "owner", "tenants", "purposes", "features", whole=("model", "state"))
        for m in rows:
            row(t, m["ref"], m["state"], m["owner_tenant"], ", ".join(m["allowed_tenants"]),
                ", ".join(m["allowed_purposes"]), ", ".join(m["features"]))
        out.print(t)
        if not rows:
            say("no catalog models")
    emit(c, run(lambda: ctx(c).client().list_models()), render)


@model_app.command("show")
def model_show(c: typer.Context, ref: str) -> None:
    """A catalog model: terms, approvals, features (NAME or NAME@VERSION)."""
    emit(c, run(lambda: ctx(c).client().show_model(ref)), render_model)
