"""``twh audit …``: verify the hash chain and export the log."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ...i18n import N_, _, fmt_number
from .output import ctx, emit, out, run, say

audit_app = typer.Typer(rich_markup_mode=None, help=N_("Verify and export the audit log."), no_args_is_help=True)

@audit_app.command("verify", help=N_("Recompute the hash chain; name the first record modified, deleted or "
                                     "reordered."))
def audit_verify(c: typer.Context) -> None:
    from rich.markup import escape

    data = run(lambda: ctx(c).client().audit_verify())
    emit(c, data, lambda d: out.print(
        escape(_("audit chain OK: {n} records").format(n=fmt_number(d["records"]))) if d["ok"] else
        "[bold red]" + escape(_("audit chain BROKEN")) + "[/] "
        + escape(_("at record {seq}: {problem}").format(seq=d["first_bad_seq"], problem=d["problem"])),
        soft_wrap=True))
    if not data["ok"]:
        raise typer.Exit(1)


@audit_app.command("export", help=N_("Write the audit log as JSON lines."))
def audit_export(c: typer.Context,
                 out_file: Annotated[Path | None, typer.Option("--out", help=N_("file (default stdout)"))]
                 = None) -> None:
    def go() -> int:
        if out_file is None:
            return ctx(c).client().audit_export(sys.stdout)
        with open(out_file, "w", encoding="utf-8") as fh:
            return ctx(c).client().audit_export(fh)
    n = run(go)
    if out_file is not None:
        emit(c, {"records": n, "file": str(out_file)},
             lambda d: say(_("wrote {n} records to {file}").format(n=fmt_number(d["records"]), file=d["file"])))
