"""``twh export …``: review, approve or deny the exact bytes of an export, and download it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .output import ctx, emit, out, row, run, say, table

export_app = typer.Typer(rich_markup_mode=None, help="Review, approve, deny and download exports.",
                         no_args_is_help=True)

def _waiting(d: dict[str, Any]) -> list[str]:
    decided = {a["dataset"] for a in d.get("approvals") or []}
    return [n for n in d.get("needs_approval_from") or [] if n not in decided]


def _render_export(d: dict[str, Any]) -> None:
    """One export for people, in every state; the submitter's view before approval has no files
    and no bundle hash (``None``: withheld, they could carry unapproved results)."""
    say(f"export {d['id']}: {d['state']}")
    say(f"  job {d['job_id']}, tenant {d.get('tenant')}")
    if d.get("bundle_sha256"):
        say(f"  bundle sha256 {d['bundle_sha256']}")
    files = d.get("files")
    if files is None:
        say("  files: withheld from the submitter until every steward approves")
    for f in files or []:
        say(f"  file {f['name']}  {f['size']} bytes  sha256 {f['sha256']}")
    for a in d.get("approvals") or []:
        say(f"  {a['dataset']}: {a['decision']} by {a['steward']}: {a['reason']}")
    waiting = _waiting(d)
    if d["state"] == "pending" and waiting:
        say(f"  waiting for a steward of: {', '.join(waiting)}")


@export_app.command("list")
def export_list(c: typer.Context, state: Annotated[str | None, typer.Option(help="pending|approved|denied")] = None,
                wait: Annotated[float, typer.Option(help="wait up to SECONDS for at least one export (a steward "
                                                        "waiting for a worker to finish a job)")] = 0) -> None:
    """List exports (stewards: those awaiting you)."""
    def listed() -> Any:
        deadline = time.monotonic() + max(0.0, wait)
        while True:
            rows = ctx(c).client().list_exports(state)
            if rows or time.monotonic() >= deadline:
                return rows
            time.sleep(0.5)

    def render(rows: list[dict[str, Any]]) -> None:
        t = table("id", "state", "job", "waiting for", whole=("id", "state", "job"))
        for e in rows:
            row(t, e["id"], e["state"], e["job_id"], ", ".join(_waiting(e)) if e["state"] == "pending" else "")
        out.print(t)
        if not rows:
            say("no exports" + (f" in state {state}" if state else ""))
    emit(c, run(listed), render)


@export_app.command("show")
def export_show(c: typer.Context, export_id: str,
                content: Annotated[bool, typer.Option(help="print the files' exact bytes (stewards); binary "
                                                           "files as size, SHA-256 and tensor table")] = False) -> None:
    """Show an export; with --content, the exact files under review."""
    def go() -> Any:
        d = ctx(c).client().get_export(export_id)
        if content:
            from ..web.files import describe_binary, is_binary

            d["content"] = {f["name"]: describe_binary(f["name"], f["data"]) if is_binary(f["name"], f["data"])
                            else f["data"].decode("utf-8") for f in ctx(c).client().preview_export(export_id)}
        return d

    def render(d: dict[str, Any]) -> None:
        _render_export(d)
        for name, body in d.get("content", {}).items():
            if isinstance(body, str):
                say(f"--- {name} ---\n{body}")
                continue
            say(f"--- {name} (binary, not shown as text: {body['size']} bytes, sha256 {body['sha256']}) ---")
            if body.get("problem"):
                say(f"  {body['problem']}")
            if body.get("tensors"):
                t = table("tensor", "dtype", "shape", whole=("tensor", "dtype"))
                for x in body["tensors"]:
                    row(t, x["name"], x["dtype"], " x ".join(map(str, x["shape"])) or "scalar")
                out.print(t)
            for k, v in sorted((body.get("metadata") or {}).items()):
                say(f"  metadata {k} = {v}")
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
    emit(c, [str(p) for p in paths], lambda d: [say(f"wrote {p}") for p in d])
