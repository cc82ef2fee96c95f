"""``twh`` — the command line.

Works directly on a local warehouse (the embedded default: ``--home`` / ``TWH_HOME``, acting as
``--as USER``), or against a running service (``--url`` + ``--token`` / ``TWH_URL`` + ``TWH_TOKEN``).
Every command takes ``--json`` for machines. Errors print ``error [code]: message`` and exit 2.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .client import Client, LocalClient
from .errors import InvalidInput, TwhError
from .settings import Settings

app = typer.Typer(help="Training warehouse (训练仓): raw data never leaves; only gated results do.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
user_app = typer.Typer(help="Users and tokens.", no_args_is_help=True)
dataset_app = typer.Typer(help="Register and inspect datasets.", no_args_is_help=True)
job_app = typer.Typer(help="Submit and follow jobs.", no_args_is_help=True)
export_app = typer.Typer(help="Review, approve, deny and download exports.", no_args_is_help=True)
audit_app = typer.Typer(help="Verify and export the audit log.", no_args_is_help=True)
budget_app = typer.Typer(help="Differential-privacy budgets.", no_args_is_help=True)
for sub, name in ((user_app, "user"), (dataset_app, "dataset"), (job_app, "job"), (export_app, "export"),
                  (audit_app, "audit"), (budget_app, "budget")):
    app.add_typer(sub, name=name)

db_app = typer.Typer(help="The catalog database's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")

from .bridges.syft_cli import syft_app  # noqa: E402 - syft itself is imported only when a command runs

app.add_typer(syft_app, name="syft")

out = Console()
err = Console(stderr=True)


@dataclass
class Ctx:
    home: Path | None
    user: str | None
    url: str | None
    token: str | None
    as_json: bool
    _client: Any = None
    #: ``--engine`` of one command (local mode): overrides TWH_ENGINE
    engine: str | None = None

    def settings(self) -> Settings:
        return Settings.from_env(home=self.home, engine=self.engine)

    def client(self) -> Any:
        if self._client is None:
            if self.url:
                if not self.token:
                    raise InvalidInput("--url needs --token (or TWH_TOKEN)")
                self._client = Client(self.url, self.token)
            else:
                from .warehouse import Warehouse

                if not self.user:
                    raise InvalidInput("local mode needs --as USER (or TWH_USER): which user acts")
                self._client = LocalClient(Warehouse.open(self.settings()), self.user)
        return self._client


def _ctx(c: typer.Context) -> Ctx:
    return c.find_root().obj


def emit(c: typer.Context, data: Any, render: Any = None) -> None:
    if _ctx(c).as_json or render is None:
        out.print_json(json.dumps(data, default=str, ensure_ascii=False))
    else:
        render(data)


def run(fn: Any) -> Any:
    """Call ``fn``; print our errors readably and exit 2 (never a traceback for a known error)."""
    try:
        return fn()
    except TwhError as exc:
        if _STATE.get("json"):
            print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False))
        else:
            err.print(f"[bold red]error[/] {escape('[' + exc.code + ']')}: {escape(exc.message)}", highlight=False)
        raise typer.Exit(2) from None


_STATE: dict[str, bool] = {}


@app.callback()
def main(
    c: typer.Context,
    home: Annotated[Path | None, typer.Option(help="warehouse directory [env TWH_HOME]")] = None,
    as_user: Annotated[str | None, typer.Option("--as", help="local mode: the user who acts [env TWH_USER]")] = None,
    url: Annotated[str | None, typer.Option(help="remote mode: service URL [env TWH_URL]")] = None,
    token: Annotated[str | None, typer.Option(help="remote mode: bearer token [env TWH_TOKEN]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    _STATE["json"] = as_json
    c.obj = Ctx(home or (Path(os.environ["TWH_HOME"]) if os.environ.get("TWH_HOME") else None),
                as_user or os.environ.get("TWH_USER"), url or os.environ.get("TWH_URL"),
                token or os.environ.get("TWH_TOKEN"), as_json)


# -- init / users ----------------------------------------------------------------------------
@app.command()
def init(c: typer.Context, admin: str = typer.Option("admin", help="name of the first admin")) -> None:
    """Create a warehouse (directory + catalog) and its first admin; prints the admin's token once."""
    def go() -> Any:
        from .warehouse import Warehouse

        wh = Warehouse.open(_ctx(c).settings())
        made = wh.users.bootstrap_admin(admin)
        return {"home": str(wh.settings.home), "admin": admin if made else None, "token": made[1] if made else None}
    data = run(go)
    emit(c, data, lambda d: out.print(f"warehouse at {d['home']}" + (f"\nadmin {d['admin']} token: {d['token']}"
                                                                      if d["token"] else " (already initialised)")))


@user_app.command("add")
def user_add(c: typer.Context, name: str, role: str = typer.Option(..., help="enterprise|steward|auditor|admin"),
             tenant: str = typer.Option(..., help="the organisation the user belongs to")) -> None:
    """Add a user; prints its bearer token once."""
    data = run(lambda: _ctx(c).client().add_user(name, role, tenant))
    emit(c, data, lambda d: out.print(f"user {d['user']['name']} ({d['user']['role']}, {d['user']['tenant']}) "
                                      f"token: {d['token']}"))


# -- datasets --------------------------------------------------------------------------------
@dataset_app.command("register")
def dataset_register(c: typer.Context, manifest: Path) -> None:
    """Register a dataset from its manifest (schema, roles, expectations, policy)."""
    data = run(lambda: _ctx(c).client().register_dataset(manifest))
    emit(c, data, lambda d: out.print(f"registered {d['name']} ({d['provider_kind']}), stewards {d['stewards']}"))


@dataset_app.command("list")
def dataset_list(c: typer.Context) -> None:
    """List the catalog."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = Table("name", "zone", "version", "columns", "stewards")
        for d in rows:
            t.add_row(d["name"], d["provider_kind"], str(d["current_version"]), str(len(d["columns"])),
                      ", ".join(d["stewards"]))
        out.print(t)
    emit(c, run(lambda: _ctx(c).client().list_datasets()), render)


@dataset_app.command("show")
def dataset_show(c: typer.Context, name: str) -> None:
    """Show a dataset: schema with roles, policy, versions."""
    def render(d: dict[str, Any]) -> None:
        t = Table("column", "type", "role", title=f"{d['name']} (version {d['current_version']})")
        for col in d["schema"]:
            t.add_row(col["name"], col["type"], col["role"])
        out.print(t)
        out.print(f"policy: {json.dumps(d['policy'], ensure_ascii=False)}")
        for v in d["versions"]:
            out.print(f"  v{v['version']}: {v['rows']} rows, load {v['load_id']}")
    emit(c, run(lambda: _ctx(c).client().show_dataset(name)), render)


@budget_app.command("show")
def budget_show(c: typer.Context, dataset: str) -> None:
    """A dataset's DP budget: total, spent and remaining per scope, and every charge."""
    def render(d: dict[str, Any]) -> None:
        if d["budget"] is None:
            out.print(f"{d['dataset']} has no DP budget (release mode sdc)")
            return
        t = Table("scope", "period", "total ε", "spent ε", "remaining ε", "spent δ",
                  title=f"{d['dataset']} budget")
        for sc in d["scopes"]:
            t.add_row(sc["scope"], sc["period"], sc["total"]["epsilon"], sc["spent"]["epsilon"],
                      sc["remaining"]["epsilon"], sc["spent"]["delta"])
        out.print(t)
        h = Table("id", "at", "tenant", "actor", "job", "kind", "ε", "δ", title="charges")
        for r in d["history"]:
            h.add_row(str(r["id"]), str(r["at"]), r["tenant"], r["actor"], str(r["job_id"]), r["kind"],
                      r["epsilon"], r["delta"])
        out.print(h)
    emit(c, run(lambda: _ctx(c).client().budget(dataset)), render)


@app.command()
def ingest(c: typer.Context, dataset: str,
           file: Annotated[Path | None, typer.Argument(help="a file; omit to re-run the manifest's source: block")]
           = None,
           encoding: Annotated[str | None, typer.Option(help="CSV encoding, e.g. gbk")] = None,
           mode: Annotated[str | None, typer.Option(help="append|overwrite|merge|incremental (default: manifest)")]
           = None,
           kind: Annotated[str | None, typer.Option(help="connector kind of FILE (default: from its suffix)")]
           = None,
           engine: Annotated[str | None, typer.Option(help="spark: land a big CSV/Parquet file with Spark + "
                                                          "delta-spark (default: TWH_ENGINE)")] = None) -> None:
    """Land data into a dataset (CSV, Excel, Parquet, JSON lines, SQL, HTTP, OHLC): validated, atomic, idempotent."""
    from .ingest_progress import ingest_with_progress

    if engine is not None:
        if engine not in ("duckdb", "spark"):
            raise typer.BadParameter("--engine is duckdb or spark")
        if _ctx(c).url:
            raise typer.BadParameter("--engine applies to local mode; a service lands with its own TWH_ENGINE")
        _ctx(c).engine = engine
    data = run(lambda: ingest_with_progress(_ctx(c).client(), dataset, file, encoding=encoding, mode=mode, kind=kind,
                                            console=err, show=not _ctx(c).as_json))
    emit(c, data, lambda d: out.print(f"{d['status']}: {dataset} version {d.get('version')} ({d.get('rows')} rows"
                                      + (f", {d['rows_quarantined']} quarantined" if d.get("rows_quarantined") else "")
                                      + ")"))


@dataset_app.command("history")
def dataset_history(c: typer.Context, name: str) -> None:
    """Every version of a dataset with its lineage: source, connector, load, rows, validation."""
    from .ingest_progress import render_history

    emit(c, run(lambda: _ctx(c).client().dataset_history(name)), lambda d: render_history(out, d))


@dataset_app.command("migrate")
def dataset_migrate(c: typer.Context, name: str, manifest: Path,
                    rename: Annotated[list[str] | None, typer.Option(help="OLD=NEW column rename (repeatable)")]
                    = None) -> None:
    """Approve a new schema (steward): rewrite the table into NEW_MANIFEST's schema, audited."""
    def go() -> Any:
        renames = {}
        for r in rename or []:
            old, sep, new = r.partition("=")
            if not sep or not old or not new:
                raise InvalidInput(f"--rename {r!r}: use OLD=NEW")
            renames[old] = new
        return _ctx(c).client().migrate_dataset(name, manifest, renames)
    emit(c, run(go), lambda d: out.print(f"migrated {d['dataset']} to version {d['version']} ({d['rows']} rows): "
                                         + ", ".join(f"{k} {v}" for k, v in d["diff"].items() if v and k != "kept")))


@dataset_app.command("mock")
def dataset_mock(c: typer.Context, name: str,
                 rows: Annotated[int, typer.Option(help="how many mock rows")] = 1000,
                 seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 0,
                 out_file: Annotated[Path | None, typer.Option("--out", help="FILE.csv or FILE.parquet")] = None) -> None:
    """A schema-identical mock table (no real values) for developing jobs locally."""
    fmt = "parquet" if out_file is not None and out_file.suffix.lower() in (".parquet", ".pq") else "csv"
    data = run(lambda: _ctx(c).client().mock_dataset(name, rows=rows, seed=seed, fmt=fmt))
    if out_file is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    out_file.write_bytes(data)
    emit(c, {"file": str(out_file), "rows": rows, "format": fmt},
         lambda d: out.print(f"wrote {d['rows']} mock rows to {d['file']}"))


@dataset_app.command("synthetic")
def dataset_synthetic(c: typer.Context, name: str,
                      out_file: Annotated[Path | None, typer.Option("--out", help="FILE.parquet or FILE.csv")]
                      = None) -> None:
    """The dataset's DP synthetic table (real shape of the distributions; the first request spends
    the policy's dp.synthetic epsilon, later ones are free)."""
    fmt = "csv" if out_file is None or out_file.suffix.lower() == ".csv" else "parquet"
    data = run(lambda: _ctx(c).client().synthetic_dataset(name, fmt=fmt))
    if out_file is None:
        sys.stdout.write(data.decode("utf-8"))
        return
    out_file.write_bytes(data)
    emit(c, {"file": str(out_file), "format": fmt, "bytes": len(data)},
         lambda d: out.print(f"wrote the synthetic table of {name} to {d['file']}"))


# -- jobs ------------------------------------------------------------------------------------
def _render_job(d: dict[str, Any]) -> None:
    out.print(f"job {d['id']} [{d['state']}] {d.get('reason', '')}")
    for q in d.get("queries", []):
        det = q["details"]
        extra = (f"suppressed {det.get('suppressed_groups')} group(s)" if q["outcome"] == "released"
                 else f"refused: {det.get('reason')}")
        out.print(f"  query {q['outcome']}: {extra}")
    if d.get("export"):
        out.print(f"  export {d['export']['id']} [{d['export']['state']}]")


@job_app.command("submit")
def job_submit(c: typer.Context, job_dir: Path,
               wait: Annotated[bool, typer.Option(help="wait until the job has run")] = True) -> None:
    """Submit a job folder (job.yaml + job.py); it runs in the sandbox."""
    emit(c, run(lambda: _ctx(c).client().submit_job(job_dir, wait=wait)), _render_job)


@job_app.command("run-local")
def job_run_local(c: typer.Context, job_dir: Path,
                  mock_dir: Annotated[Path, typer.Option(help="mock tables: DIR/<dataset>.parquet (made if missing)")]
                  = Path("mock"),
                  rows: Annotated[int, typer.Option(help="rows of generated mock tables")] = 1000,
                  out_dir: Annotated[Path | None, typer.Option("--out", help="outputs (default MOCK_DIR/out)")]
                  = None) -> None:
    """Run job.py on this machine against mock tables, through the same client library and gate."""
    def go() -> Any:
        from .jobspec import load_job_files
        from .localrun import run_local
        from .manifest import parse_manifest

        spec, _ = load_job_files(job_dir)
        manifests = {}
        for name in spec.datasets:
            d = _ctx(c).client().show_dataset(name)
            manifests[name] = parse_manifest({k: d[k] for k in ("name", "provider_kind", "stewards", "schema",
                                                                "policy")}, source=name)
        return run_local(job_dir, manifests, mock_dir, out_dir=out_dir, rows=rows)

    def render(d: dict[str, Any]) -> None:
        for q in d["queries"]:
            out.print(f"  query {q['outcome']}: " + (f"suppressed {q.get('suppressed')} group(s)"
                                                      if q["outcome"] == "released" else q.get("reason", "")),
                      markup=False)
        out.print(f"--- stdout ---\n{d['stdout']}--- stderr ---\n{d['stderr']}", markup=False)
        out.print(f"exit {d['returncode']}; outputs in {d['out_dir']}: {', '.join(d['outputs']) or '(none)'}")
    data = run(go)
    emit(c, data, render)
    if data["returncode"] != 0:
        raise typer.Exit(1)


@job_app.command("show")
def job_show(c: typer.Context, job_id: str) -> None:
    """Show a job, its queries and its export."""
    emit(c, run(lambda: _ctx(c).client().get_job(job_id)), _render_job)


@job_app.command("list")
def job_list(c: typer.Context) -> None:
    """List the jobs you may see."""
    def render(rows: list[dict[str, Any]]) -> None:
        t = Table("id", "name", "tenant", "state", "created")
        for j in rows:
            t.add_row(j["id"], str(j["name"]), j["tenant"], j["state"], j["created_at"][:19])
        out.print(t)
    emit(c, run(lambda: _ctx(c).client().list_jobs()), render)


@job_app.command("logs")
def job_logs(c: typer.Context, job_id: str) -> None:
    """A job's withheld stdout/stderr (stewards, auditors)."""
    emit(c, run(lambda: _ctx(c).client().job_logs(job_id)),
         lambda d: out.print(f"--- stdout ---\n{d['stdout']}\n--- stderr ---\n{d['stderr']}"
                             + (f"\n--- training review ---\n{d['training_review']}" if d.get("training_review") else ""),
                             markup=False))


# -- exports ---------------------------------------------------------------------------------
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
    emit(c, run(lambda: _ctx(c).client().list_exports(state)), render)


@export_app.command("show")
def export_show(c: typer.Context, export_id: str,
                content: Annotated[bool, typer.Option(help="print the files' exact bytes (stewards)")] = False) -> None:
    """Show an export; with --content, the exact files under review."""
    def go() -> Any:
        d = _ctx(c).client().get_export(export_id)
        if content:
            d["content"] = {f["name"]: f["data"].decode("utf-8", "replace")
                            for f in _ctx(c).client().preview_export(export_id)}
        return d

    def render(d: dict[str, Any]) -> None:
        _render_export(d)
        for name, text in d.get("content", {}).items():
            out.print(f"--- {name} ---\n{text}", markup=False)
    emit(c, run(go), render)


def _decide(c: typer.Context, export_id: str, decision: str, reason: str, sha256: str | None) -> None:
    data = run(lambda: _ctx(c).client().decide_export(export_id, decision, reason, sha256))
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
    paths = run(lambda: _ctx(c).client().download_export(export_id, to))
    emit(c, [str(p) for p in paths], lambda d: [out.print(f"wrote {p}") for p in d])


# -- audit -----------------------------------------------------------------------------------
@audit_app.command("verify")
def audit_verify(c: typer.Context) -> None:
    """Recompute the hash chain; name the first record modified, deleted or reordered."""
    data = run(lambda: _ctx(c).client().audit_verify())
    emit(c, data, lambda d: out.print(f"audit chain OK: {d['records']} records" if d["ok"] else
                                      f"[bold red]audit chain BROKEN[/] at record {d['first_bad_seq']}: {d['problem']}"))
    if not data["ok"]:
        raise typer.Exit(1)


@audit_app.command("export")
def audit_export(c: typer.Context,
                 out_file: Annotated[Path | None, typer.Option("--out", help="file (default stdout)")] = None) -> None:
    """Write the audit log as JSON lines."""
    def go() -> int:
        if out_file is None:
            return _ctx(c).client().audit_export(sys.stdout)
        with open(out_file, "w", encoding="utf-8") as fh:
            return _ctx(c).client().audit_export(fh)
    n = run(go)
    if out_file is not None:
        emit(c, {"records": n, "file": str(out_file)}, lambda d: out.print(f"wrote {d['records']} records to {d['file']}"))


# -- service / demo --------------------------------------------------------------------------
@app.command()
def serve(c: typer.Context, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the HTTP API (and a job worker) on this warehouse."""
    import uvicorn

    from .api import create_app

    uvicorn.run(create_app(run(lambda: _ctx(c).settings())), host=host, port=port, log_level="info")


@app.command()
def worker(c: typer.Context,
           worker_id: Annotated[str | None, typer.Option("--id", help="worker identity [env TWH_WORKER_ID; "
                                                                      "default HOST:PID]")] = None,
           max_jobs: Annotated[int | None, typer.Option(help="exit after running this many jobs")] = None,
           exit_when_idle: Annotated[bool, typer.Option(help="exit when the queue is empty")] = False) -> None:
    """Run queued jobs (start as many workers as you like, on one machine or several)."""
    import logging
    import signal
    import threading

    from .leases import default_worker_id
    from .warehouse import Warehouse
    from .workers import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    wid = worker_id or os.environ.get("TWH_WORKER_ID") or default_worker_id()
    wh = run(lambda: Warehouse.open(_ctx(c).settings().model_copy(update={"worker_id": wid})))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # finish the job at hand, then stop
        signal.signal(sig, lambda *_: stop.set())
    n = run(lambda: Worker(wh, wid).serve(stop, max_jobs=max_jobs, exit_when_idle=exit_when_idle))
    wh.close()
    emit(c, {"worker_id": wid, "jobs_run": n}, lambda d: out.print(f"worker {d['worker_id']} ran {d['jobs_run']} job(s)"))


def _schema(c: typer.Context, upgrade: bool) -> dict[str, Any]:
    from . import schema
    from .db import make_engine

    settings = _ctx(c).settings()
    settings.home.mkdir(parents=True, exist_ok=True)  # the SQLite catalog lives there
    engine = make_engine(settings.catalog_url)
    try:
        return {"revision": schema.upgrade(engine) if upgrade else schema.current(engine), "head": schema.head()}
    finally:
        engine.dispose()


@db_app.command("upgrade")
def db_upgrade(c: typer.Context) -> None:
    """Migrate the catalog database to the code's schema (idempotent; safe with others running)."""
    emit(c, run(lambda: _schema(c, True)), lambda d: out.print(f"catalog at revision {d['revision']} (head {d['head']})"))


@db_app.command("current")
def db_current(c: typer.Context) -> None:
    """The catalog database's schema revision, and the code's."""
    emit(c, run(lambda: _schema(c, False)),
         lambda d: out.print(f"catalog at revision {d['revision'] or 'none'} (head {d['head']})"))


@app.command()
def demo(c: typer.Context, home: Annotated[Path, typer.Option(help="where to build the demo warehouse")]
         = Path("demo-warehouse"), fresh: bool = True) -> None:
    """Run the small-business credit scenario end to end, explaining each step."""
    from .demo.scenario import run_demo

    # The query engine follows the environment (`make demo ENGINE=spark` sets TWH_ENGINE).
    run(lambda: run_demo(home, fresh=fresh, console=out, engine=Settings.from_env(home=home.absolute())))


if __name__ == "__main__":  # pragma: no cover
    app()
