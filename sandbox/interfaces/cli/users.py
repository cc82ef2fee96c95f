"""``twh init``, ``twh whoami`` and ``twh user …``: a new warehouse, its first admin, and users with their tokens."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from ...errors import TwhError
from ...i18n import N_, _
from .output import ctx, emit, run, say

user_app = typer.Typer(rich_markup_mode=None, help=N_("Users and tokens."), no_args_is_help=True)
#: top-level commands of this module (``twh init``, ``twh whoami``)
top = typer.Typer(rich_markup_mode=None)

@top.command(help=N_("Create a warehouse (directory + catalog) and its first admin; prints the admin's token once."))
def init(c: typer.Context, admin: str = typer.Option("admin", help=N_("name of the first admin"))) -> None:
    def go() -> Any:
        from ...warehouse import Warehouse

        wh = Warehouse.open(ctx(c).settings())
        made = wh.users.bootstrap_admin(admin)
        return {"home": str(wh.settings.home), "admin": admin if made else None, "token": made[1] if made else None}

    def render(d: dict[str, Any]) -> None:
        say(_("warehouse at {home}").format(home=d["home"]) + ("" if d["token"] else _(" (already initialised)")))
        if d["token"]:  # on a line of its own, whole: it is shown once
            say(_("admin {name}; its token (shown once, keep it):").format(name=d["admin"]) + f"\n{d['token']}")
    emit(c, run(go), render)


@top.command(help=N_("The user you act as: name, role and tenant (remote mode: checks the URL and token)."))
def whoami(c: typer.Context,
           wait: Annotated[float, typer.Option(help=N_("seconds to keep trying while the service does not answer "
                                                       "(e.g. just after `twh serve &`)"))] = 0) -> None:
    def go() -> Any:
        deadline = time.monotonic() + wait
        while True:
            try:
                return ctx(c).client().whoami()
            except TwhError as exc:
                if not exc.details.get("unreachable") or time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)
    emit(c, run(go), lambda d: say(_("{name} ({role}, tenant {tenant})").format(**d)))


@user_app.command("add", help=N_("Add a user; prints its bearer token once (`--get token` prints only the token)."))
def user_add(c: typer.Context, name: str,
             role: str = typer.Option(..., help=N_("enterprise|steward|auditor|admin|subject")),
             tenant: str = typer.Option(..., help=N_("the organisation the user belongs to")),
             subject: str | None = typer.Option(None, help=N_("role subject: the privacy-unit value (a firm's "
                                                              "credit code) the user speaks for"))) -> None:
    data = run(lambda: ctx(c).client().add_user(name, role, tenant, subject=subject))
    emit(c, data, lambda d: say(_("user {name} ({role}, {tenant}); its token (shown once, keep it):").format(
        **d["user"]) + f"\n{d['token']}"))
