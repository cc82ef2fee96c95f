"""``twh serve``, ``twh worker``, ``twh db …`` and ``twh demo [data]``: running the warehouse."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ...i18n import N_, _
from .output import ctx, emit, out, run, say

db_app = typer.Typer(rich_markup_mode=None, help=N_("The catalog database's schema (Alembic migrations)."),
                     no_args_is_help=True)
#: top-level commands of this module
top = typer.Typer(rich_markup_mode=None)

@top.command(help=N_("Run the HTTP API (and a job worker) on this warehouse."))
def serve(c: typer.Context, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from ..api.app import create_app

    uvicorn.run(create_app(run(lambda: ctx(c).settings())), host=host, port=port, log_level="info")


@top.command(help=N_("Run queued jobs (start as many workers as you like, on one machine or several)."))
def worker(c: typer.Context,
           worker_id: Annotated[str | None, typer.Option("--id", help=N_("worker identity [env TWH_WORKER_ID; "
                                                                         "default HOST:PID]"))] = None,
           max_jobs: Annotated[int | None, typer.Option(help=N_("exit after running this many jobs"))] = None,
           exit_when_idle: Annotated[bool, typer.Option(help=N_("exit when the queue is empty"))] = False) -> None:
    import logging
    import signal
    import threading

    from ...jobs.leases import default_worker_id
    from ...jobs.workers import Worker
    from ...warehouse import Warehouse

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    wid = worker_id or os.environ.get("TWH_WORKER_ID") or default_worker_id()
    wh = run(lambda: Warehouse.open(ctx(c).settings().model_copy(update={"worker_id": wid})))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # finish the job at hand, then stop
        signal.signal(sig, lambda *_: stop.set())
    n = run(lambda: Worker(wh, wid).serve(stop, max_jobs=max_jobs, exit_when_idle=exit_when_idle))
    wh.close()
    emit(c, {"worker_id": wid, "jobs_run": n}, lambda d: say(_("worker {id} ran {n} job(s)").format(
        id=d["worker_id"], n=d["jobs_run"])))


def _schema(c: typer.Context, upgrade: bool) -> dict[str, Any]:
    from ...catalog import schema
    from ...catalog.db import make_engine

    settings = ctx(c).settings()
    settings.home.mkdir(parents=True, exist_ok=True)  # the SQLite catalog lives there
    engine = make_engine(settings.catalog_url)
    try:
        return {"revision": schema.upgrade(engine) if upgrade else schema.current(engine), "head": schema.head()}
    finally:
        engine.dispose()


@db_app.command("upgrade", help=N_("Migrate the catalog database to the code's schema (idempotent; safe with others"
                                   " running)."))
def db_upgrade(c: typer.Context) -> None:
    emit(c, run(lambda: _schema(c, True)), lambda d: say(_("catalog at revision {revision} (head {head})").format(**d)))


@db_app.command("current", help=N_("The catalog database's schema revision, and the code's."))
def db_current(c: typer.Context) -> None:
    emit(c, run(lambda: _schema(c, False)),
         lambda d: say(_("catalog at revision {revision} (head {head})").format(
             revision=d["revision"] or _("none"), head=d["head"])))


demo_app = typer.Typer(rich_markup_mode=None,
                       help=N_("The small-business credit demo: run it end to end, or write its sample files."),
                       invoke_without_command=True)


@demo_app.callback()
def demo(c: typer.Context, home: Annotated[Path | None, typer.Option(help=N_("where to build the demo warehouse "
                                                                             "[default: demo-warehouse]"))] = None,
         fresh: bool = True) -> None:
    """Run the small-business credit scenario end to end, explaining each step (`twh demo data DIR`
    only writes its sample files)."""
    if c.invoked_subcommand is not None:
        return
    from ...demo.scenario import run_demo

    # `twh --home DIR demo` means the same as `twh demo --home DIR`; TWH_HOME alone never picks the
    # demo's folder (a fresh demo deletes it first).
    home = home or c.find_root().params.get("home") or Path("demo-warehouse")
    # The query engine follows the environment (`make demo ENGINE=spark` sets TWH_ENGINE).
    from ...settings import Settings

    run(lambda: run_demo(home, fresh=fresh, console=out.rich(), engine=Settings.from_env(home=home.absolute())))


@demo_app.command("data", help=N_("Write the demo's sample files into FOLDER: generated CSVs (enterprise_registry, "
                                  "tax_payments, social_insurance, bank_loans), their manifests (manifests/), the "
                                  "example jobs (jobs/), the stewards' feature definitions (features/) and a "
                                  "verification product (products/)."))
def demo_data(c: typer.Context, folder: Annotated[Path, typer.Argument(help=N_("where to write the files"))],
              enterprises: Annotated[int, typer.Option(min=1, max=200_000, help=N_("how many enterprises"))] = 2000,
              seed: Annotated[int, typer.Option(help=N_("random seed (same seed, same files)"))] = 7) -> None:
    import shutil

    from ...demo.generate import generate
    from ...demo.products_step import FEATURES, PRODUCTS
    from ...demo.scenario import JOBS, MANIFESTS

    def go() -> dict[str, Any]:
        files = {name: str(p) for name, p in generate(folder, n_enterprises=enterprises, seed=seed).items()}
        shutil.copytree(MANIFESTS, folder / "manifests", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(JOBS, folder / "jobs", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        for src, name in ((FEATURES, "features"), (PRODUCTS, "products")):
            shutil.copytree(src, folder / name, dirs_exist_ok=True)
        return {"folder": str(folder), "data": files,
                "manifests": sorted(str(p) for p in (folder / "manifests").glob("*.yaml")),
                "jobs": sorted(str(p) for p in (folder / "jobs").iterdir() if p.is_dir())}

    def render(d: dict[str, Any]) -> None:
        for name, path in d["data"].items():
            say(_("wrote {path} (sample data for the dataset {name})").format(path=path, name=name))
        say(_("wrote {n} manifests under {folder}/manifests and {jobs} example jobs under {folder}/jobs").format(
            n=len(d["manifests"]), folder=d["folder"], jobs=len(d["jobs"])))
    emit(c, run(go), render)
