"""``twh``'s typer tree (:mod:`.main` is the entry point and answers a bare ``twh --help`` itself).

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

Each group of commands lives in its own module of this package; this one assembles them, lazily:
:data:`.commands.COMMANDS` names the module of every top-level command and group, and ``twh NAME ...``
imports and builds only that one (the tests build them all). A new command module adds its line
there, and its help line to :data:`.roothelp.COMMANDS` (the listing ``twh --help`` prints without
typer); ``tests/interfaces/cli/test_import_time.py`` checks both against the full tree and that
``twh --help`` stays free of typer and the heavy libraries.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ...i18n import N_, gettext, normalize, use
from .commands import COMMANDS, _first_word, _named, _root_help
from .output import _STATE, Ctx
from .roothelp import language

#: typer's own options' help (--install-completion, --show-completion), marked for the catalogue:
#: :func:`_speak_help` translates it like ours
_TYPER_HELP = (N_("Install completion for the current shell."),
               N_("Show completion for the current shell, to copy it or customize the installation."))

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


_BOOL = {True: True, False: False, "": False, "1": True, "0": False, "true": True, "false": False,
         "t": True, "f": False, "yes": True, "no": False, "y": True, "n": False, "on": True, "off": False}


def _use_plain_coercion() -> None:
    """Typer 0.29 converts every option value through a pydantic ``TypeAdapter``: the first option
    of any command imports pydantic, ~50 ms, more than the rest of a quick command. A ``str``, a
    ``Path`` without checks, a number without bounds or a flag gets the same conversion here
    without it; anything else keeps typer's own (and so does another typer that lacks these hooks)."""
    try:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer.core import _TyperParameter
    except ImportError:  # pragma: no cover
        return
    if not hasattr(_TyperParameter, "get_runtime_param"):  # pragma: no cover
        return

    class Plain(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bytes):
                value = os.fsdecode(value)
            if self.annotation is bool:  # what pydantic accepts for a bool
                word = value.strip().lower() if isinstance(value, str) else value
                if word in _BOOL:
                    return _BOOL[word]
                raise BadParameter(f"{value!r} is not a valid boolean.", ctx=ctx, param=param)
            try:
                return self.annotation(value)
            except (TypeError, ValueError):
                kind = {int: "integer", float: "float"}.get(self.annotation, self.annotation.__name__)
                raise BadParameter(f"{value!r} is not a valid {kind}.", ctx=ctx, param=param) from None

    def plain(desc: Any) -> Any:
        info, ann = desc.parameter_info, desc.annotation
        if desc.file_annotation is not None or ann not in (str, Path, int, float, bool):
            return None
        if getattr(info, "parser", None) is not None or getattr(info, "path_type", None) or any(
                getattr(info, k, False) for k in ("exists", "resolve_path", "allow_dash", "writable")):
            return None
        if ann in (int, float) and (getattr(info, "min", None) is not None or getattr(info, "max", None) is not None):
            return None
        return Plain(info, ann)

    def get_runtime_param(self: Any) -> Any:
        if self._runtime_param is None:
            self._runtime_param = plain(self.type_descriptor) or build_runtime_param(self.type_descriptor)
        return self._runtime_param

    _TyperParameter.get_runtime_param = get_runtime_param


_use_plain_coercion()


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


def _register(app: typer.Typer, names: list[str]) -> None:
    for name in names:
        module, attr = COMMANDS[name]
        obj = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        if attr != "top":
            app.add_typer(obj, name=name)
            continue
        found = [c for c in obj.registered_commands if _name_of(c) == name]
        if len(found) != 1:
            raise RuntimeError(f"twh {name}: not one command of that name in {module}.top")
        app.registered_commands.append(found[0])


class _App(typer.Typer):
    """``twh``: every command is registered on first look (so the tests and ``--help`` see the whole
    tree), but a command line that names one command builds only that one."""

    @property
    def registered_commands(self) -> list[Any]:
        self._full()
        return self._commands

    @registered_commands.setter
    def registered_commands(self, value: list[Any]) -> None:
        self._commands = value

    @property
    def registered_groups(self) -> list[Any]:
        self._full()
        return self._groups

    @registered_groups.setter
    def registered_groups(self, value: list[Any]) -> None:
        self._groups = value

    def _full(self) -> None:
        if not self.__dict__.get("_assembled", True):
            self._assembled = True
            _register(self, list(COMMANDS))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = sys.argv[1:]
        name = None if args or "args" in kwargs else _named(argv)
        if name is None:
            if not (args or "args" in kwargs) and _root_help(argv):
                listing = _listing()
                code = language(argv, os.environ)  # --help is shown before the callback reads --lang
                if code is not None:
                    use(code)
                    _speak_help(listing)
                return listing(*args, **kwargs)
            return super().__call__(*args, **kwargs)
        one = _new_app()
        one.callback()(main)
        _register(one, [name])
        if COMMANDS[name][1] != "top":  # `twh job submit`: the group with that one command only
            rest = argv[argv.index(name) + 1:]
            (info,) = one.registered_groups
            info.typer_instance = _only(info.typer_instance, _first_word(rest))
        return one(*args, **kwargs)


def _name_of(command: Any) -> str:
    """A registered command's name on the command line, as typer derives it."""
    return command.name or typer.main.get_command_name(command.callback.__name__)


def _only(group: typer.Typer, word: str | None) -> typer.Typer:
    """``group`` with only the command ``word`` names (typer builds every command of a group it
    runs: each one's signature and type hints, ~2 ms apiece); the whole group when ``word`` names
    none of them (``twh job --help``, a typo: click lists or suggests the commands as before)."""
    found = [c for c in group.registered_commands if _name_of(c) == word]
    if len(found) != 1:
        return group
    narrow = copy.copy(group)
    narrow.registered_commands = found
    return narrow


def _nothing() -> None:  # pragma: no cover - a listing entry is never run
    pass


def _listing() -> Any:
    """The root for ``twh --help``: every command and group by name and help text only — what the
    listing shows. The root's own options come from typer as always; the entries are bare click
    commands (no parameters, no callbacks, no global options copied into each): building each
    through typer costs more than the rest of ``twh --help``
    (tests/interfaces/cli/test_import_time.py compares it with the whole tree's help)."""
    import inspect

    from typer.core import TyperCommand

    root = _new_app(group=TyperGroup)
    root.callback()(main)
    group = typer.main.get_command(root)
    tops = [n for n in COMMANDS if COMMANDS[n][1] == "top"]
    for name in tops + [n for n in COMMANDS if COMMANDS[n][1] != "top"]:  # typer's order: commands, then groups
        module, attr = COMMANDS[name]
        obj = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
        if attr == "top":
            (info,) = [c for c in obj.registered_commands if _name_of(c) == name]
            text = info.help if info.help is not None else inspect.getdoc(info.callback)
            group.add_command(TyperCommand(name, help=inspect.cleandoc(text) if text else text,
                                           short_help=info.short_help, hidden=info.hidden,
                                           deprecated=info.deprecated, rich_markup_mode=None))
        else:
            cb = obj.registered_callback
            text = obj.info.help if isinstance(obj.info.help, str) else (
                inspect.getdoc(cb.callback) if cb is not None and cb.callback is not None else None)
            group.add_command(TyperGroup(name=name, help=text, rich_markup_mode=None))
    return group


def _new_app(cls: type[typer.Typer] = typer.Typer, group: type[TyperGroup] = _Root) -> Any:
    # rich_markup_mode=None: help and usage errors in plain text; rich's help formatter costs
    # more to import than the whole rest of `twh --help`
    return cls(rich_markup_mode=None, cls=group,
               help=N_("Training warehouse (训练仓): raw data never leaves; only gated results do."),
               no_args_is_help=True, pretty_exceptions_enable=False)


app = _new_app(_App)
app._assembled = False




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
