"""``twh`` — the command line.

Works directly on a local warehouse (the embedded default: ``--home`` / ``TWH_HOME``, acting as
``--as USER``), or against a running service (``--url`` + ``--token`` / ``TWH_URL`` + ``TWH_TOKEN``).
Every command takes ``--json`` for machines. Errors print ``error [code]: message`` and exit 2.

Each group of commands lives in its own module of this package; this one assembles them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from . import audit, datasets, exports, jobs, service, users
from .output import _STATE, Ctx
from .syft import syft_app  # syft itself is imported only when a command runs
from .tokens import token_app

app = typer.Typer(help="Training warehouse (训练仓): raw data never leaves; only gated results do.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
for sub, name in ((users.user_app, "user"), (datasets.dataset_app, "dataset"), (jobs.job_app, "job"),
                  (exports.export_app, "export"), (audit.audit_app, "audit"), (datasets.budget_app, "budget"),
                  (service.db_app, "db"), (syft_app, "syft")):
    app.add_typer(sub, name=name)
app.add_typer(token_app, name="token")
for group in (users.top, datasets.top, service.top):  # top-level commands (twh init, twh ingest, twh serve, …)
    for command in group.registered_commands:
        app.registered_commands.append(command)


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



if __name__ == "__main__":  # pragma: no cover
    app()
