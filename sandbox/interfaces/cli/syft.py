"""``twh syft …`` — run the PySyft bridge from the command line (local mode: ``--home``).

The bridge is an operator process, like ``twh worker``: it opens the warehouse here and acts as
the users its config names. Its config file (YAML)::

    email: warehouse@example.org      # the warehouse's Syft identity (data owner)
    token_path: /srv/twh/secrets/syft-token.json   # syft's transport credentials (login_do)
    publisher: admin                  # steward/admin in whose name mock data is published
    default_purpose: credit_risk      # optional: purpose of jobs that state none
    users:                            # Syft data scientist → warehouse enterprise user
      alice@bank-a.example: analyst
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ...errors import InvalidInput
from ...i18n import N_, _

syft_app = typer.Typer(rich_markup_mode=None,
    help=N_("PySyft bridge: the warehouse as a Syft data owner. The --config YAML holds `email` (the "
         "warehouse's Syft identity), `token_path` (syft's transport credentials), `publisher` (a steward "
         "or admin), `users` (Syft email: enterprise user) and optionally `default_purpose`, `mock_rows`."),
    no_args_is_help=True)

ConfigOpt = Annotated[Path, typer.Option("--config", help=N_("the bridge's YAML config (keys: `twh syft --help`)"))]


def _open(c: typer.Context, config_path: Path) -> Any:
    import yaml

    from ...warehouse import Warehouse
    from ..bridges.syft import bridge as bridge_mod

    if not config_path.is_file():
        raise InvalidInput(f"bridge config {config_path} does not exist")
    raw = yaml.safe_load(config_path.read_text("utf-8")) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("email"), str):
        raise InvalidInput("bridge config: `email` (the warehouse's Syft identity) is required")
    email, token_path = raw.pop("email"), raw.pop("token_path", None)
    config = bridge_mod.SyftBridgeConfig.from_mapping(raw)
    wh = Warehouse.open(c.find_root().obj.settings())
    try:
        rds = bridge_mod.login_data_owner(email, Path(token_path) if token_path else None)
        if rds.email != email:
            raise InvalidInput(f"the Syft login is {rds.email}, the bridge config says {email}")
        return bridge_mod.SyftBridge(wh, rds, config)
    except BaseException:
        wh.close()
        raise


@syft_app.command("publish", help=N_("Publish datasets as Syft datasets: mock data public to the mapped data "
                                     "scientists, a pointer private."))
def syft_publish(c: typer.Context, config: ConfigOpt,
                 datasets: Annotated[list[str] | None, typer.Argument(help=N_("default: every dataset"))] = None,
                 replace: Annotated[bool, typer.Option(help=N_("publish again datasets already published"))] = False,
                 ) -> None:
    from .output import emit, out, run

    def go() -> list[dict[str, Any]]:
        b = _open(c, config)
        try:
            return [{"name": p.name, "mock_sha256": p.mock_sha256, "rows": p.rows, "audience": list(p.audience)}
                    for p in b.publish(datasets or None, replace=replace)]
        finally:
            b.wh.close()

    emit(c, run(go), lambda d: out.print("\n".join(
        _("published {name} ({rows} mock rows) to {audience}").format(
            name=x["name"], rows=x["rows"], audience=", ".join(x["audience"])) for x in d)
        or _("nothing new to publish")))


@syft_app.command("serve-once", help=N_("One pass: take in Syft jobs, run them in the sandbox, return what the "
                                        "stewards released."))
def syft_serve_once(c: typer.Context, config: ConfigOpt,
                    run_jobs: Annotated[bool, typer.Option("--run/--no-run",
                                                           help=N_("run taken-in jobs here "
                                                                   "(else: leave them to workers)"))]
                    = True) -> None:
    from .output import emit, out, run

    def go() -> list[dict[str, Any]]:
        b = _open(c, config)
        try:
            return [{"syft_user": o.syft_user, "syft_job": o.syft_job, "job_id": o.job_id, "syft_state": o.syft_state,
                     "reason": o.reason, "files": list(o.files)} for o in b.serve_once(run=run_jobs)]
        finally:
            b.wh.close()

    emit(c, run(go), lambda d: out.print("\n".join(
        f"{x['syft_user']}/{x['syft_job']}: {x['syft_state']} ({x['job_id'] or _no_job()}) {x['reason']}"
        for x in d) or _("nothing to do")))


def _no_job() -> str:
    return _("no warehouse job")
