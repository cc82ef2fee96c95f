"""What every ``twh`` command shares: the invocation's context, its two consoles, and how results
and errors are printed (``--json`` for machines, readable text for people; a known error prints
``error [code]: message`` and exits 2, never a traceback)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from ...errors import InvalidInput, TwhError
from ...settings import Settings

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
                from ..client import Client

                self._client = Client(self.url, self.token)
            else:
                from ...warehouse import Warehouse
                from ..client import LocalClient

                if not self.user:
                    raise InvalidInput("local mode needs --as USER (or TWH_USER): which user acts")
                self._client = LocalClient(Warehouse.open(self.settings()), self.user)
        return self._client


def ctx(c: typer.Context) -> Ctx:
    return c.find_root().obj


def emit(c: typer.Context, data: Any, render: Any = None) -> None:
    if ctx(c).as_json or render is None:
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
