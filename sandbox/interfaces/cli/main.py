"""``twh``'s entry point (``twh = sandbox.interfaces.cli.main:app``): the command line.

Works directly on a local warehouse (the embedded default: ``--home`` / ``TWH_HOME``, acting as
``--as USER``), or against a running service (``--url`` + ``--token`` / ``TWH_URL`` + ``TWH_TOKEN``).
Every command takes ``--json`` for machines and ``--get FIELD`` for one value (a token, an id).
Errors print ``error [code]: message`` and exit 2.

:mod:`.root` is the typer tree (the global options, ``--lang``, building only the named command);
:mod:`.commands` names the module of every command. This module imports neither typer nor the
tree until it must: ``twh``, ``twh --help`` and ``twh --lang L --help`` print the root listing
from :mod:`.roothelp` (a static copy that a test compares with typer's output byte for byte);
``twh dataset list`` and ``twh job submit DIR`` (with global options only) are read and run by
:mod:`.fast`, also without typer; everything else, and any other use of :data:`app` (typer's test runner, ``get_command``), goes to
:data:`.root.app`. The tree's names (``main``, ``_new_app``, ``_register``, ...) are readable here
as before.
"""

from __future__ import annotations

import os
import sys

from .commands import _VALUED, COMMANDS, _first_word, _named, _root_help  # noqa: F401 (read through this module)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["COMMANDS", "app"]


def _tree() -> Any:
    from . import root

    return root


class _Entry:
    """:data:`app`: calling it runs ``twh`` (the root listing without typer when that is all the
    command line asks for); anything else is :data:`.root.app`'s (a ``typer.Typer``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs and len(sys.argv) <= 4 and (len(sys.argv) == 1 or "--help" in sys.argv):
            from .roothelp import answer, quick

            kind = quick(sys.argv[1:], os.environ)
            if kind is not None:
                sys.exit(answer(kind))
        if not args and not kwargs:  # `twh dataset list`, `twh job submit DIR`: no typer (:mod:`.fast`)
            from .fast import main

            main()
        return _tree().app(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(_tree().app, name)


app = _Entry()


def __getattr__(name: str) -> Any:  # the tree's names: main, _new_app, _register, _listing, _GLOBAL, ...
    if name.startswith("__"):
        raise AttributeError(name)
    return getattr(_tree(), name)


if __name__ == "__main__":  # pragma: no cover
    app()
