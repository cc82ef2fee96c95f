"""``twh token issue|list|revoke``: bearer tokens, their expiry and last use.

Local mode acts as ``--as USER`` on the warehouse files (an operator who has the files); remote
mode as the token's owner. Admins issue tokens for anyone; anyone lists and revokes their own.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ...i18n import N_, _
from .output import ctx, emit, out, run

token_app = typer.Typer(rich_markup_mode=None, help=N_("Bearer tokens: issue (shown once), list, revoke."),
                        no_args_is_help=True)


def _line(t: dict[str, Any]) -> str:
    used = (t.get("last_used_at") or _("never"))[:19]
    label = f" ({t['label']})" if t.get("label") else ""
    return (f"{t['id']:>5}  {t['user']}{label}  {t['fingerprint']}  {t['state']:<7}  "
            + _("expires {date}  last used {used}").format(date=(t.get("expires_at") or "")[:10], used=used))


@token_app.command("issue", help=N_("Issue a token for USER (admins); prints it once — only its SHA-256 is kept."))
def token_issue(c: typer.Context, user: str,
                days: Annotated[int | None, typer.Option(help=N_("fewer days than the policy's "
                                                                 "(Settings.token_ttl_days)"))]
                = None,
                label: Annotated[str | None, typer.Option(help=N_("a name for it, e.g. laptop or ci"))] = None) -> None:
    data = run(lambda: ctx(c).client().issue_token(user, days=days, label=label))
    emit(c, data, lambda d: out.print(_("token for {user} (id {id}, expires {date}): ").format(
        user=d["user"], id=d["id"], date=d["expires_at"][:10]) + d["token"], highlight=False, markup=False))


@token_app.command("list", help=N_("Tokens with their state, expiry and last use (never the tokens themselves)."))
def token_list(c: typer.Context,
               user: Annotated[str | None, typer.Option(help=N_("only this user's (admins and auditors)"))]
               = None) -> None:
    data = run(lambda: ctx(c).client().list_tokens(user))
    emit(c, data, lambda d: out.print("\n".join(_line(t) for t in d) or _("no tokens"), highlight=False, markup=False))


@token_app.command("revoke", help=N_("Revoke the token with this id (see `twh token list`); its web sessions end at"
                                     " once."))
def token_revoke(c: typer.Context, token_id: int) -> None:
    data = run(lambda: ctx(c).client().revoke_token(token_id))
    emit(c, data, lambda d: out.print(_("revoked: {token}").format(token=_line(d)), highlight=False, markup=False))
