"""``twh job …``: submit a job, follow it, read its logs, or run it locally on mock data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ...i18n import N_, _
from .output import ctx, emit, row, run, say, show, table
from .views import render_job

job_app = typer.Typer(rich_markup_mode=None, help=N_("Submit and follow jobs."), no_args_is_help=True)

_render_job = render_job  # (the name other modules knew)


@job_app.command("submit", help=N_("Submit a job folder (job.yaml + job.py); it runs in the sandbox."))
def job_submit(c: typer.Context, job_dir: Path,
               wait: Annotated[bool, typer.Option(help=N_("wait until the job has run"))] = True) -> None:
    emit(c, run(lambda: ctx(c).client().submit_job(job_dir, wait=wait)), _render_job)


@job_app.command("run-local", help=N_("Run job.py on this machine against mock tables, through the same client "
                                      "library and gate."))
def job_run_local(c: typer.Context, job_dir: Path,
                  mock_dir: Annotated[Path, typer.Option(help=N_("mock tables: DIR/<dataset>.parquet "
                                                                 "(made if missing)"))]
                  = Path("mock"),
                  rows: Annotated[int, typer.Option(help=N_("rows of generated mock tables"))] = 1000,
                  out_dir: Annotated[Path | None, typer.Option("--out", help=N_("outputs (default MOCK_DIR/out)"))]
                  = None) -> None:
    def go() -> Any:
        from ...datasets.manifest import parse_manifest
        from ...jobs.localrun import run_local
        from ...jobs.spec import load_job_files

        spec, _ = load_job_files(job_dir)
        manifests = {}
        for name in spec.datasets:
            d = ctx(c).client().show_dataset(name)
            manifests[name] = parse_manifest({k: d[k] for k in ("name", "provider_kind", "stewards", "schema",
                                                                "policy")}, source=name)
        return run_local(job_dir, manifests, mock_dir, out_dir=out_dir, rows=rows)

    def render(d: dict[str, Any]) -> None:
        for q in d["queries"]:
            say(_("  query {outcome}: {extra}").format(
                outcome=q["outcome"], extra=_("suppressed {n} group(s)").format(n=q.get("suppressed"))
                if q["outcome"] == "released" else q.get("reason", "")))
        say(f"--- stdout ---\n{d['stdout']}--- stderr ---\n{d['stderr']}")
        say(_("exit {code}; outputs in {folder}: {files}").format(
            code=d["returncode"], folder=d["out_dir"], files=", ".join(d["outputs"]) or _("(none)")))
    data = run(go)
    emit(c, data, render)
    if data["returncode"] != 0:
        raise typer.Exit(1)


@job_app.command("show", help=N_("Show a job, its queries and its export."))
def job_show(c: typer.Context, job_id: str) -> None:
    emit(c, run(lambda: ctx(c).client().get_job(job_id)), _render_job)


@job_app.command("list", help=N_("List the jobs you may see."))
def job_list(c: typer.Context) -> None:
    def render(rows: list[dict[str, Any]]) -> None:
        cols = (_("id"), _("state"))
        t = table(*cols, _("name"), _("tenant"), _("created (UTC)"), whole=cols)
        for j in rows:
            row(t, j["id"], j["state"], j.get("name") or "", j["tenant"], str(j["created_at"])[:16].replace("T", " "))
        show(t)
        if not rows:
            say(_("no jobs"))
    emit(c, run(lambda: ctx(c).client().list_jobs()), render)


@job_app.command("logs", help=N_("A job's withheld stdout/stderr (stewards, auditors)."))
def job_logs(c: typer.Context, job_id: str) -> None:
    emit(c, run(lambda: ctx(c).client().job_logs(job_id)),
         lambda d: say(f"--- stdout ---\n{d['stdout']}\n--- stderr ---\n{d['stderr']}"
                       + ("\n--- " + _("training review") + f" ---\n{d['training_review']}"
                          if d.get("training_review") else "")))
