"""``twh job …``: submit a job, follow it, read its logs, or run it locally on mock data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .output import ctx, emit, out, row, run, say, table

job_app = typer.Typer(rich_markup_mode=None, help="Submit and follow jobs.", no_args_is_help=True)

def _render_job(d: dict[str, Any]) -> None:
    """One job for people, in every state: the submitter's view has no queries (withheld until the
    stewards approve: ``queries`` is None) and maybe no export yet."""
    say(f"job {d['id']}: {d['state']}")
    if d.get("reason"):
        say(f"  {d['reason']}")
    pinned = d.get("pinned_versions") or {}
    datasets = ", ".join(f"{n} v{pinned[n]}" if n in pinned else n for n in d.get("datasets") or [])
    say(f"  {d.get('name') or '(unnamed)'}, purpose {d.get('purpose')}, datasets {datasets or '-'}")
    queries = d.get("queries", [])
    if queries is None:
        say("  queries: withheld from the submitter (the stewards review them with the export)")
    for q in queries or []:
        det = q.get("details") or {}
        extra = (f"suppressed {det.get('suppressed_groups')} group(s)" if q.get("outcome") == "released"
                 else str(det.get("reason")))
        say(f"  query {q.get('outcome')}: {extra}")
    export = d.get("export")
    if export:
        say(f"  export {export['id']}: {export['state']}")
    elif d.get("state") in ("queued", "running", "gating"):
        say("  export: none yet (the job has not finished)")
    else:
        say("  export: none")


@job_app.command("submit")
def job_submit(c: typer.Context, job_dir: Path,
               wait: Annotated[bool, typer.Option(help="wait until the job has run")] = True) -> None:
    """Submit a job folder (job.yaml + job.py); it runs in the sandbox."""
    emit(c, run(lambda: ctx(c).client().submit_job(job_dir, wait=wait)), _render_job)


@job_app.command("run-local")
def job_run_local(c: typer.Context, job_dir: Path,
                  mock_dir: Annotated[Path, typer.Option(help="mock tables: DIR/<dataset>.parquet (made if missing)")]
                  = Path("mock"),
                  rows: Annotated[int, typer.Option(help="rows of generated mock tables")] = 1000,
                  out_dir: Annotated[Path | None, typer.Option("--out", help="outputs (default MOCK_DIR/out)")]
                  = None) -> None:
    """Run job.py on this machine against mock tables, through the same client library and gate."""
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
            say(f"  query {q['outcome']}: " + (f"suppressed {q.get('suppressed')} group(s)"
                                                if q["outcome"] == "released" else q.get("reason", "")))
        say(f"--- stdout ---\n{d['stdout']}--- stderr ---\n{d['stderr']}")
        say(f"exit {d['returncode']}; outputs in {d['out_dir']}: {', '.join(d['outputs']) or '(none)'}")
    data = run(go)
    emit(c, data, render)
    if data["returncode"] != 0:
        raise typer.Exit(1)


@job_app.command("show")
def job_show(c: typer.Context, job_id: str) -> None:
    """Show a job, its queries and its export."""
    emit(c, run(lambda: ctx(c).client().get_job(job_id)), _render_job)


@job_app.command("list")
def job_list(c: typer.Context) -> None:
    """List the jobs you may see."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = table("id", "state", "name", "tenant", "created (UTC)", whole=("id", "state"))
        for j in rows:
            row(t, j["id"], j["state"], j.get("name") or "", j["tenant"], str(j["created_at"])[:16].replace("T", " "))
        out.print(t)
        if not rows:
            say("no jobs")
    emit(c, run(lambda: ctx(c).client().list_jobs()), render)


@job_app.command("logs")
def job_logs(c: typer.Context, job_id: str) -> None:
    """A job's withheld stdout/stderr (stewards, auditors)."""
    emit(c, run(lambda: ctx(c).client().job_logs(job_id)),
         lambda d: say(f"--- stdout ---\n{d['stdout']}\n--- stderr ---\n{d['stderr']}"
                       + (f"\n--- training review ---\n{d['training_review']}" if d.get("training_review") else "")))
