"""``twh local-server status|stop`` (and ``run``, what a local-mode command starts, detached):
the per-home local server of :mod:`.local_server`."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import typer

from ...i18n import N_, _
from .local_server import FOLDER, SOCKET_NAME, _answers, _record, _stop, fingerprint, mode, private_folder
from .output import ctx, emit, say

local_server_app = typer.Typer(rich_markup_mode=None, no_args_is_help=True,
                               help=N_("The per-home local server that serves local-mode commands "
                                    "(TWH_LOCAL_SERVER=auto|off)."))


def _home(c: typer.Context) -> Path:
    home = ctx(c).home or Path(os.environ.get("TWH_HOME", "warehouse"))
    return Path(home).absolute()


@local_server_app.command("status", help=N_("Whether this home's local server runs, its pid, and whether it matches"
                                            " this code and settings."))
def status(c: typer.Context) -> None:
    home = _home(c)
    folder = home / FOLDER
    live = _answers(folder) if folder.is_dir() else None
    data = {"home": str(home), "socket": str(folder / SOCKET_NAME), "running": live is not None,
            "mode": mode()}
    if live:
        data.update(pid=live["pid"], started=live["started"], idle_exit_minutes=live["idle_exit_minutes"],
                    current=live["fingerprint"] == fingerprint(home))

    def render(d: dict[str, Any]) -> None:
        if not d["running"]:
            say(_("no local server runs for {home} (TWH_LOCAL_SERVER={mode})").format(**d))
        else:
            say(_("local server pid {pid} for {home}, on {socket}; {state}; exits after {idle_exit_minutes} min "
                  "idle").format(**d, state=_("current") if d["current"] else _("stale: the next command replaces it")))
    emit(c, data, render)


@local_server_app.command("stop", help=N_("Stop this home's local server (the next local-mode command starts a "
                                          "fresh one)."))
def stop(c: typer.Context) -> None:
    home = _home(c)
    folder = home / FOLDER
    rec = _record(folder) if folder.is_dir() else None
    stopped = bool(rec) and _stop(folder, rec.get("pid"))
    emit(c, {"home": str(home), "stopped": stopped},
         lambda d: say(_("stopped the local server of {home}").format(**d) if d["stopped"]
                       else _("no local server ran for {home}").format(**d)))


@local_server_app.command("run", hidden=True, help=N_("Run the server in this process (what a local-mode command "
                                                      "starts, detached)."))
def run_server(c: typer.Context, fingerprint_: str = typer.Option(..., "--fingerprint")) -> None:
    import logging

    from ...settings import Settings
    from ..api.local import serve_local

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    home = _home(c)
    settings = Settings.from_env(home=home)
    if not os.environ.get("TWH_WORKER_ID"):  # never `twh serve`'s identity: its start-up would end our jobs
        settings = settings.model_copy(update={"worker_id": f"local-server@{socket.gethostname()}"})
    serve_local(settings, private_folder(home), fingerprint_)
