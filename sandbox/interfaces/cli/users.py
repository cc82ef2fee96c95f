"""``twh init`` and ``twh user …``: a new warehouse, its first admin, and users with their tokens."""

from __future__ import annotations

from typing import Any

import typer

from .output import ctx, emit, out, run

user_app = typer.Typer(help="Users and tokens.", no_args_is_help=True)
#: top-level commands of this module (``twh init``)
top = typer.Typer()

@top.command()
def init(c: typer.Context, admin: str = typer.Option("admin", help="name of the first admin")) -> None:
    """Create a warehouse (directory + catalog) and its first admin; prints the admin's token once."""
    def go() -> Any:
        from ...warehouse import Warehouse

        wh = Warehouse.open(ctx(c).settings())
        made = wh.users.bootstrap_admin(admin)
        return {"home": str(wh.settings.home), "admin": admin if made else None, "token": made[1] if made else None}
    data = run(go)
    emit(c, data, lambda d: out.print(f"warehouse at {d['home']}" + (f"\nadmin {d['admin']} token: {d['token']}"
                                                                      if d["token"] else " (already initialised)")))


@user_app.command("add")
def user_add(c: typer.Context, name: str, role: str = typer.Option(..., help="enterprise|steward|auditor|admin"),
             tenant: str = typer.Option(..., help="the organisation the user belongs to")) -> None:
    """Add a user; prints its bearer token once."""
    data = run(lambda: ctx(c).client().add_user(name, role, tenant))
    emit(c, data, lambda d: out.print(f"user {d['user']['name']} ({d['user']['role']}, {d['user']['tenant']}) "
                                      f"token: {d['token']}"))
