"""The two commands people run most, without typer: ``twh [G...] dataset [G...] list [G...]`` and
``twh [G...] job [G...] submit [G...] DIR [G...]``, G being the global options.

Importing typer (and its click) and building the command is most of a quick command's time;
these two command lines are read here instead, exactly as the typer tree reads them
(:mod:`.root`: a global option is accepted before the group, between it and the command, and
among the command's arguments; the last one given wins, else the ``TWH_*`` variable), and run
through the same functions as the typer commands (:mod:`.views`, :mod:`.output`). Anything else
— another option (``--grade``, ``--no-wait``, ``--help``), ``--``, a missing or empty value, a
value that begins with ``-``, an unknown ``--lang``, shell completion — is not guessed at:
:func:`parse` answers ``None`` and typer reads the command line as before.
``tests/interfaces/cli/test_fast.py`` runs both over many command lines and compares stdout,
stderr and the exit status.

The standard library and the CLI's own typer-free modules only."""

from __future__ import annotations

import os
import sys
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

    from .output import Ctx

#: the global options that take a value -> the :class:`.output.Ctx` field (``--json`` is the flag)
VALUED = {"--home": "home", "--as": "user", "--url": "url", "--token": "token", "--get": "get", "--lang": "lang"}
#: the command lines read here: their words (the group, the command) -> how many arguments follow
COMMANDS = {("dataset", "list"): 0, ("job", "submit"): 1}


def parse(argv: list[str], environ: Mapping[str, str]) -> tuple[tuple[str, str], list[str], Ctx] | None:
    """``((group, command), arguments, the invocation's Ctx)``, or ``None``: typer reads it."""
    if any(k.endswith("_COMPLETE") for k in environ):
        return None
    given: dict[str, str] = {}
    as_json = False
    words: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--json":
            as_json = True
            continue
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name not in VALUED:
                return None
            if not eq:
                if i >= len(argv):
                    return None
                value = argv[i]
                i += 1
            if not value or value.startswith("-"):
                return None
            given[VALUED[name]] = value
            continue
        if not arg:
            return None
        words.append(arg)
    key = tuple(words[:2])
    if len(key) != 2 or key not in COMMANDS or len(words) != 2 + COMMANDS[key]:  # type: ignore[comparison-overlap]
        return None
    from ...i18n import normalize

    lang = None
    for value in (environ.get("TWH_LANG") or None, given.get("lang")):
        if value is not None:
            lang = normalize(value)
            if lang is None:  # typer's usage error names the choices
                return None
    from .output import Ctx

    home = given.get("home")
    ctx = Ctx(Path(home) if home else (Path(environ["TWH_HOME"]) if environ.get("TWH_HOME") else None),
              given.get("user") or environ.get("TWH_USER"), given.get("url") or environ.get("TWH_URL"),
              given.get("token") or environ.get("TWH_TOKEN"), as_json, get=given.get("get"), lang=lang)
    return (key[0], key[1]), words[2:], ctx  # type: ignore[return-value]


def answer(argv: list[str], environ: Mapping[str, str]) -> int | None:
    """Run the command line if it is one of :data:`COMMANDS`; its exit status, or ``None``."""
    parsed = parse(argv, environ)
    if parsed is None:
        return None
    (group, command), args, ctx = parsed
    from ...i18n import use
    from . import views
    from .output import _STATE, emit_to, run

    use(ctx.lang)
    _STATE["json"] = ctx.as_json
    _STATE["plain_exit"] = True
    try:
        if group == "dataset":
            emit_to(ctx, run(lambda: views.list_datasets(ctx, None)), views.render_datasets)
        else:
            job_dir = Path(args[0])
            emit_to(ctx, run(lambda: ctx.client().submit_job(job_dir, wait=True)), views.render_job)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:  # as typer's main (typer.core): Ctrl-C ends it quietly, status 130
        return 130
    except EOFError:  # ... and an input that ended: a blank line and "Aborted!", status 1
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        return 1
    except OSError as exc:  # ... and a reader that went away (`| head`): quietly, status 1
        import errno

        if exc.errno != errno.EPIPE:
            raise
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more reaches the closed pipe
        return 1
    finally:
        _STATE.pop("plain_exit", None)
    return 0


def main() -> None:
    """``twh``'s quick path, or nothing (the caller goes on to typer)."""
    code = answer(sys.argv[1:], os.environ)
    if code is not None:
        sys.stdout.flush()
        sys.exit(code)
