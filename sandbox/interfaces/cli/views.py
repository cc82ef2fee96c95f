"""What ``twh dataset list`` and ``twh job submit|show`` do and print, without typer: the typer
commands (:mod:`.datasets`, :mod:`.jobs`) and the quick path (:mod:`.fast`) both call these, so
the two cannot answer differently."""

from __future__ import annotations

from ...i18n import _
from .output import Ctx, row, say, show, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def grade_word(grade: str | None) -> str:
    """A GB/T 43697 grade as people say it (the value itself stays in --json)."""
    return {"core": _("core data"), "important": _("important data"), "general": _("general data"),
            "unclassified": _("unclassified")}.get(grade or "unclassified", grade or "")


def list_datasets(ctx: Ctx, grade: str | None) -> list[dict[str, Any]]:
    """Local mode reads the catalog directly when it can (a listing should answer at once);
    otherwise, in remote mode, and to filter by grade (the facade checks the grade's name), the
    facade answers."""
    conn = None if grade else ctx.readonly()
    if conn is None:
        return ctx.client().list_datasets(grade)
    from ...catalog.readonly import user
    from ...datasets.summary import list_readonly

    try:
        user(conn, ctx.user)  # the same check (and error) as opening the warehouse as that user
        return list_readonly(conn)
    finally:
        conn.close()


def render_datasets(rows: list[dict[str, Any]], grade: str | None = None) -> None:
    name = _("name")
    t = table(name, _("zone"), _("grade"), _("version"), _("columns"), _("stewards"), whole=(name,))
    for d in rows:
        row(t, d["name"], d["provider_kind"], grade_word((d.get("classification") or {}).get("grade")),
            d["current_version"], len(d["columns"]), ", ".join(d["stewards"]))
    show(t)
    if not rows:
        say(_("no datasets") + (" (" + grade_word(grade) + ")" if grade else ""))


def render_job(d: dict[str, Any]) -> None:
    """One job for people, in every state: the submitter's view has no queries (withheld until the
    stewards approve: ``queries`` is None) and maybe no export yet."""
    say(_("job {id}: {state}").format(id=d["id"], state=d["state"]))
    if d.get("reason"):
        say(f"  {d['reason']}")
    pinned = d.get("pinned_versions") or {}
    datasets = ", ".join(f"{n} v{pinned[n]}" if n in pinned else n for n in d.get("datasets") or [])
    say(_("  {name}, purpose {purpose}, datasets {datasets}").format(
        name=d.get("name") or _("(unnamed)"), purpose=d.get("purpose"), datasets=datasets or "-"))
    queries = d.get("queries", [])
    if queries is None:
        say(_("  queries: withheld from the submitter (the stewards review them with the export)"))
    for q in queries or []:
        det = q.get("details") or {}
        extra = (_("suppressed {n} group(s)").format(n=det.get("suppressed_groups")) if q.get("outcome") == "released"
                 else str(det.get("reason")))
        say(_("  query {outcome}: {extra}").format(outcome=q.get("outcome"), extra=extra))
    export = d.get("export")
    if export:
        say(_("  export {id}: {state}").format(id=export["id"], state=export["state"]))
    elif d.get("state") in ("queued", "running", "gating"):
        say(_("  export: none yet (the job has not finished)"))
    else:
        say(_("  export: none"))
