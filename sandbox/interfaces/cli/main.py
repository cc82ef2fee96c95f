"""``twh`` — the command line.

Works directly on a local warehouse (the embedded default: ``--home`` / ``TWH_HOME``, acting as
``--as USER``), or against a running service (``--url`` + ``--token`` / ``TWH_URL`` + ``TWH_TOKEN``).
Every command takes ``--json`` for machines and ``--get FIELD`` for one value (a token, an id).
Errors print ``error [code]: message`` and exit 2.

The global options (``--home``, ``--as``, ``--url``, ``--token``, ``--json``, ``--get``) are declared
once, on :func:`main`; :class:`_Root` hands a copy of each to every command and group below it,
so ``twh --json job list`` and ``twh job list --json`` mean the same (the later one wins).

``--lang`` (or ``TWH_LANG``) picks the language of text for people: ``en`` (default) or ``zh-CN``.
Help texts marked with ``N_`` are translated when shown (:func:`_speak_help`), so ``twh --lang zh-CN
model list --help`` reads Chinese.

Each group of commands lives in its own module of this package; this one assembles them.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ...i18n import N_, gettext, normalize, use
from . import audit, authorize, datasets, exports, features, jobs, models, score, service, subject, users, verify
from .output import _STATE, Ctx
from .syft import syft_app  # syft itself is imported only when a command runs
from .tokens import token_app

#: the root callback's parameter -> the :class:`Ctx` field it sets
_GLOBAL = {"home": "home", "as_user": "user", "url": "url", "token": "token", "as_json": "as_json", "get": "get",
           "lang": "lang"}


def _language(value: str | None) -> str | None:
    """``--lang``/``TWH_LANG``: a supported language, or a usage error naming the choices."""
    if value is None:
        return None
    code = normalize(value)
    if code is None:
        raise typer.BadParameter(f"{value!r}: use en or zh-CN", param_hint="--lang")
    return code


def _speak_help(root: Any) -> None:
    """The help of every command, group and parameter in the active language. Help is written at
    import (marked ``N_``), before ``--lang`` is read; it is translated here, once the language is
    known and before any ``--help`` below the root is shown. The English text stays on the object,
    so a later ``--lang`` translates from it again. Help with no translation stays as written."""
    todo = [root]
    while todo:
        cmd = todo.pop()
        todo += list(getattr(cmd, "commands", {}).values())
        for obj in (cmd, *cmd.params):
            for attr in ("help", "short_help"):
                original = obj.__dict__.setdefault(f"_twh_{attr}", getattr(obj, attr, None))
                if original:
                    setattr(obj, attr, gettext(original))


def _late(field: str) -> Any:
    """A sub-command's copy of a global option: it sets the invocation's :class:`Ctx` field."""
    def apply(c: Any, _param: Any, value: Any) -> Any:
        obj = c.find_root().obj
        if value is None or value is False or not isinstance(obj, Ctx):
            return value  # not given here (the root's value stands), or --help/completion
        if field == "lang":
            value = _language(value)
            use(value)
            _speak_help(c.find_root().command)
        setattr(obj, field, value)
        if field == "as_json":
            _STATE["json"] = True
        return value
    return apply


class _Root(TyperGroup):
    """The ``twh`` group: every command below it also accepts the global options."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        globals_ = [p for p in self.params if p.name in _GLOBAL]
        todo = list(self.commands.values())
        while todo:
            cmd = todo.pop()
            todo += list(getattr(cmd, "commands", {}).values())
            taken = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
            for p in globals_:
                if taken & set(p.opts):  # the command's own option of that name (`twh demo --home`)
                    continue
                late = copy.copy(p)
                late.name, late.expose_value, late.callback = f"_global_{p.name}", False, _late(_GLOBAL[p.name])
                cmd.params.append(late)


app = typer.Typer(cls=_Root, help=N_("Training warehouse (训练仓): raw data never leaves; only gated results do."),
                  no_args_is_help=True, pretty_exceptions_enable=False)
for sub, name in ((users.user_app, "user"), (datasets.dataset_app, "dataset"), (jobs.job_app, "job"),
                  (exports.export_app, "export"), (audit.audit_app, "audit"), (datasets.budget_app, "budget"),
                  (service.db_app, "db"), (service.demo_app, "demo"), (syft_app, "syft")):
    app.add_typer(sub, name=name)
app.add_typer(token_app, name="token")
app.add_typer(features.feature_app, name="feature")
app.add_typer(models.model_app, name="model")
app.add_typer(authorize.authorize_app, name="authorize")
app.add_typer(score.score_app, name="score")
app.add_typer(verify.verify_app, name="verify")
app.add_typer(subject.subject_app, name="subject")
for group in (users.top, datasets.top, service.top):  # top-level commands (twh init, twh ingest, twh serve, …)
    for command in group.registered_commands:
        app.registered_commands.append(command)


@app.callback()
def main(
    c: typer.Context,
    home: Annotated[Path | None, typer.Option(help=N_("warehouse directory [env TWH_HOME]"))] = None,
    as_user: Annotated[str | None, typer.Option("--as", help=N_("local mode: the user who acts [env TWH_USER]"))]
    = None,
    url: Annotated[str | None, typer.Option(help=N_("remote mode: service URL [env TWH_URL]"))] = None,
    token: Annotated[str | None, typer.Option(help=N_("remote mode: bearer token [env TWH_TOKEN]"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help=N_("machine-readable output"))] = False,
    get: Annotated[str | None, typer.Option("--get", metavar="FIELD",
                                            help=N_("print only this field of the result, e.g. token, id, "
                                                    "export.id, 0.id (for shell variables)"))] = None,
    lang: Annotated[str | None, typer.Option("--lang", metavar="LANG",
                                             help=N_("language of messages for people: en or zh-CN [env TWH_LANG]"))]
    = None,
) -> None:
    _STATE["json"] = as_json
    chosen = _language(lang) or _language(os.environ.get("TWH_LANG") or None)
    use(chosen)
    _speak_help(c.command)
    c.obj = Ctx(home or (Path(os.environ["TWH_HOME"]) if os.environ.get("TWH_HOME") else None),
                as_user or os.environ.get("TWH_USER"), url or os.environ.get("TWH_URL"),
                token or os.environ.get("TWH_TOKEN"), as_json, get=get, lang=chosen)


if __name__ == "__main__":  # pragma: no cover
    app()
