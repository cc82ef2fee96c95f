"""``twh subject activity SUBJECT``: who used a subject's data — when, for which purpose and product,
under which authorisation — each row checked against its audit record. For the subject's own
account (role ``subject``), auditors and admins."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .output import ctx, emit, run, say

subject_app = typer.Typer(help="A data subject's view: who used its data.", no_args_is_help=True)


@subject_app.command("activity")
def subject_activity(c: typer.Context, subject: str,
                     limit: Annotated[int, typer.Option(help="newest rows shown")] = 100) -> None:
    """Every score and verification asked about SUBJECT (refusals too), newest first, and its authorisations."""
    def render(d: dict[str, Any]) -> None:
        say(f"subject {d['subject']}: {d['total']} request(s) about it")
        for u in d["items"]:  # one block per use: ids stay whole at any terminal width
            claim = f" ({u['claim']})" if u["claim"] and u["product_kind"] == "verification" else ""
            say(f"{(u['when'] or '')[:19].replace('T', ' ')}  {u['tenant']} ({u['actor']})  {u['product_kind']} "
                f"{u['product']}{claim} for {u['purpose']} → {u['outcome']}")
            say(f"    under {', '.join(u['authorisations']) or 'no authorisation'}; audit record #{u['audit_seq']} "
                + ("verified" if u["verified"] else "NOT VERIFIED"))
        for a in d["authorisations"]:
            say(f"authorisation {a['id']}: {a['tenant']} for {a['purpose']} on {', '.join(a['datasets'])} until "
                f"{a['valid_until'][:10]} [{a['state']}], registered by {a['registered_by']}")
    emit(c, run(lambda: ctx(c).client().subject_activity(subject, limit=limit)), render)
