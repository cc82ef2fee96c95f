"""``twh export …``: review, approve or deny the exact bytes of an export, and download it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .output import ctx, emit, out, run

export_app = typer.Typer(help="Review, approve, deny and download exports.", no_args_is_help=True)

def _render_export(d: dict[str, Any]) -> None:
    out.print(f"export {d['id']} of {d['job_id']} [{d['state']}] bundle {d['bundle_sha256'][:16]}…")
    for f in d["files"]:
        out.print(f"  {f['name']}  {f['size']} bytes  sha256 {f['sha256'][:16]}…")
    for a in d["approvals"]:
        out.print(f"  {a['dataset']}: {a['decision']} by {a['steward']} — {a['reason']}")


@export_app.command("list")
def export_list(c: typer.Context, state: Annotated[str | None, typer.Option(help="pending|approved|denied")] = None) -> None:
    """List exports (stewards: those awaiting you)."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "job", "tenant", "state", "files", "needs approval from")
        for e in rows:
            t.add_row(e["id"], e["job_id"], e["tenant"], e["state"], str(len(e["files"])),
                      ", ".join(e["needs_approval_from"]))
        out.print(t)
    emit(c, run(lambda: ctx(c).client().list_exports(state)), render)


@export_app.command("show")
def export_show(c: typer.Context, export_id: str,
                content: Annotated[bool, typer.Option(help="print the files' exact bytes (stewards)")] = False) -> None:
    """Show an export; with --content, the exact files under review."""
    def go() -> Any:
        d = ctx(c).client().get_export(export_id)
        if content:
            d["content"] = {f["name"]: f["data"].decode("utf-8", "replace")
                            for f in ctx(c).client().preview_export(export_id)}
        return d

    def render(d: dict[str, Any]) -> None:
        _render_export(d)
        for name, text in d.get("content", {}).items():
            out.print(f"--- {name} ---\n{text}", markup=False)
    emit(c, run(go), render)


def _decide(c: typer.Context, export_id: str, decision: str, reason: str, sha256: str | None) -> None:
    data = run(lambda: ctx(c).client().decide_export(export_id, decision, reason, sha256))
    emit(c, data, _render_export)


@export_app.command("approve")
def export_approve(c: typer.Context, export_id: str, reason: str = typer.Option(..., help="why"),
                   sha256: Annotated[str | None, typer.Option(help="bundle hash you reviewed")] = None) -> None:
    """Approve the exact bytes of an export (bound to their SHA-256)."""
    _decide(c, export_id, "approve", reason, sha256)


@export_app.command("deny")
def export_deny(c: typer.Context, export_id: str, reason: str = typer.Option(..., help="why"),
                sha256: Annotated[str | None, typer.Option(help="bundle hash you reviewed")] = None) -> None:
    """Deny an export, with a reason."""
    _decide(c, export_id, "deny", reason, sha256)


@export_app.command("download")
def export_download(c: typer.Context, export_id: str,
                    to: Annotated[Path, typer.Option(help="folder to write the files into")] = Path(".")) -> None:
    """Download an approved export (enterprise of the job's tenant)."""
    paths = run(lambda: ctx(c).client().download_export(export_id, to))
    emit(c, [str(p) for p in paths], lambda d: [out.print(f"wrote {p}") for p in d])
