"""``twh subject activity SUBJECT``: who used a subject's data — when, for which purpose and product,
under which authorisation — each row checked against its audit record. For the subject's own
account (role ``subject``), auditors and admins."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...i18n import N_, _
from .output import ctx, emit, run, say

subject_app = typer.Typer(
    rich_markup_mode=None, help=N_("A data subject's view: who used its data."), no_args_is_help=True)


@subject_app.command("activity", help=N_("Every score and verification asked about SUBJECT (refusals too), newest "
                                         "first, and its authorisations."))
def subject_activity(c: typer.Context, subject: str,
                     limit: Annotated[int, typer.Option(help=N_("newest rows shown"))] = 100) -> None:
    def render(d: dict[str, Any]) -> None:
        say(_("subject {subject}: {n} request(s) about it").format(subject=d["subject"], n=d["total"]))
        for u in d["items"]:  # one block per use: ids stay whole at any terminal width
            claim = f" ({u['claim']})" if u["claim"] and u["product_kind"] == "verification" else ""
            say(_("{when}  {tenant} ({actor})  {kind} {product}{claim} for {purpose} → {outcome}").format(
                when=(u["when"] or "")[:19].replace("T", " "), tenant=u["tenant"], actor=u["actor"],
                kind=u["product_kind"], product=u["product"], claim=claim, purpose=u["purpose"],
                outcome=u["outcome"]))
            say(_("    under {authorisations}; audit record #{seq} {checked}").format(
                authorisations=", ".join(u["authorisations"]) or _("no authorisation"), seq=u["audit_seq"],
                checked=_("verified") if u["verified"] else _("NOT VERIFIED")))
        for a in d["authorisations"]:
            say(_("authorisation {id}: {tenant} for {purpose} on {datasets} until {until} [{state}], registered by "
                  "{who}").format(id=a["id"], tenant=a["tenant"], purpose=a["purpose"],
                                  datasets=", ".join(a["datasets"]), until=a["valid_until"][:10], state=a["state"],
                                  who=a["registered_by"]))
    emit(c, run(lambda: ctx(c).client().subject_activity(subject, limit=limit)), render)
