"""What every ``twh`` command shares: the invocation's context, its two consoles, and how results
and errors are printed (``--json`` for machines, readable text for people; a known error prints
``error [code]: message`` and exits 2, never a traceback).

Text for people is in the invocation's language (``--lang``, ``TWH_LANG``: ``en`` or ``zh-CN``;
:mod:`sandbox.i18n`); ``--json`` output, error codes, ids and values never change with it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ...errors import InvalidInput, TwhError
from ...i18n import _

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any

    import typer
    from rich.console import Console

    from ...settings import Settings
    from .plaintable import Table


class _Console:
    """A rich ``Console`` made on first use. Importing rich (and pydantic, for the settings)
    costs more than the rest of ``twh --help`` together, and ``--json``/``--get`` never need it;
    attribute reads and writes go to the real console."""

    __slots__ = ("_real", "_stderr")

    def __init__(self, *, stderr: bool = False) -> None:
        object.__setattr__(self, "_stderr", stderr)
        object.__setattr__(self, "_real", None)

    def rich(self) -> Console:
        """The console itself, for rich APIs that take one (progress bars)."""
        if self._real is None:
            from rich.console import Console

            object.__setattr__(self, "_real", Console(stderr=self._stderr))
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.rich(), name, value)


out = _Console()
err = _Console(stderr=True)


class Ctx:
    """The invocation: the global options, resolved. (A plain class: ``dataclasses`` imports
    ``inspect``, several ms of every quick command.)"""

    __slots__ = ("home", "user", "url", "token", "as_json", "_client", "engine", "get", "lang")

    def __init__(self, home: Path | None, user: str | None, url: str | None, token: str | None, as_json: bool,
                 _client: Any = None, engine: str | None = None, get: str | None = None,
                 lang: str | None = None) -> None:
        self.home, self.user, self.url, self.token, self.as_json = home, user, url, token, as_json
        self._client = _client
        #: ``--engine`` of one command (local mode): overrides TWH_ENGINE
        self.engine = engine
        #: ``--get FIELD``: print only that field of the result
        self.get = get
        #: ``--lang``: the language of text for people (en, zh-CN)
        self.lang = lang

    def __repr__(self) -> str:
        return (f"Ctx(home={self.home!r}, user={self.user!r}, url={self.url!r}, as_json={self.as_json!r}, "
                f"engine={self.engine!r}, get={self.get!r}, lang={self.lang!r})")  # never the token

    def settings(self) -> Settings:
        from ...settings import Settings

        return Settings.from_env(home=self.home, engine=self.engine)

    def readonly(self) -> Any:
        """A read-only catalog connection for a quick local read (``sqlite3``, no SQLAlchemy), or
        ``None``: remote mode, or opening the warehouse would change something
        (:mod:`sandbox.catalog.readonly`) — then the command goes through :meth:`client`."""
        home = str(self.home or "warehouse")
        if self.url or self.engine or not self.user or "://" in home:
            return None
        from ...catalog.readonly import open_readonly

        return open_readonly(Path(home).absolute(), os.environ.get("TWH_DATABASE_URL"))

    def client(self, *, in_process: bool = False) -> Any:
        """The command's client: remote (``--url``), or local mode's — through the home's warm
        local server (:mod:`.local_server`, ``TWH_LOCAL_SERVER=auto``) or, with ``off``, with
        ``--engine``, when that server is unavailable or when ``in_process`` (a command that
        reads local files the server should not be sent, such as a large ingest), in this process."""
        if self._client is None:
            if self.url:
                if not self.token:
                    raise InvalidInput(_("--url needs --token (or TWH_TOKEN)"))
                from ..client import Client

                self._client = Client(self.url, self.token)
            else:
                if not self.user:
                    raise InvalidInput(_("local mode needs --as USER (or TWH_USER): which user acts"))
                from . import local_server

                home = str(self.home or os.environ.get("TWH_HOME") or "warehouse")
                if not in_process and not self.engine and "://" not in home and local_server.mode() == "auto":
                    self._client = local_server.client_for(Path(home).absolute(), self.user)
                if self._client is None:
                    from ...warehouse import Warehouse
                    from ..client import LocalClient

                    self._client = LocalClient(Warehouse.open(self.settings()), self.user)
        return self._client


def ctx(c: typer.Context) -> Ctx:
    return c.find_root().obj


def emit(c: typer.Context, data: Any, render: Any = None) -> None:
    emit_to(ctx(c), data, render)


def emit_to(x: Ctx, data: Any, render: Any = None) -> None:
    """Print a command's result as its invocation asks: ``--get``, ``--json``, or ``render``."""
    if x.get:
        value = run(lambda: field(data, x.get))
        print(value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False))
    elif x.as_json or render is None:
        text = json.dumps(data, default=str, ensure_ascii=False)
        if sys.stdout.isatty():  # colours for a person; a pipe gets the same JSON without importing rich
            out.print_json(text)
        else:
            print(json.dumps(json.loads(text), indent=2, ensure_ascii=False))
    else:
        render(data)


def field(data: Any, path: str) -> Any:
    """``--get``: the value at a dotted path (``export.id``; list items by index, ``0.id``)."""
    value = data
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            keys = sorted(value) if isinstance(value, dict) else f"items 0..{len(value) - 1}" \
                if isinstance(value, list) else "none"
            raise InvalidInput(_("--get {path}: the result has no {part!r} there (it has: {keys})").format(
                path=path, part=part, keys=keys), details={"field": "get"})
    if value is None:
        raise InvalidInput(_("--get {path}: that field is empty in this result").format(path=path),
                           details={"field": "get"})
    return value


def say(text: str) -> None:
    """A line for people, printed as is: no markup (``[awaiting_approval]`` stays text) and never
    broken by the console, so ids, hashes and tokens stay whole whatever the terminal's width
    (the terminal wraps them visually; copying still gets them whole)."""
    from .plaintable import cells

    if cells(text) is not None:  # printable text of known widths: rich would print it unchanged
        sys.stdout.write(text + "\n")
    else:  # rich drops control characters and expands tabs
        out.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)


def table(*columns: str, whole: tuple[str, ...] = (), title: str | None = None) -> Table:
    """A table that fits the terminal by wrapping the free-text columns between words; the
    ``whole`` columns (ids, states, names used as arguments) are never wrapped or cut. Print it
    with :func:`show`."""
    from .plaintable import Table

    return Table(columns, whole, title)


def row(t: Table, *cells: Any) -> None:
    """Add a row of values as plain text (a value is never read as markup)."""
    t.add_row(*cells)


def show(t: Table) -> None:
    """Print a :func:`table`: laid out without rich (:mod:`.plaintable`), or by rich where that
    module leaves it to rich (a title, characters it does not measure, a non-UTF-8 output)."""
    from . import plaintable

    if not plaintable.show(t):
        out.print(_rich_table(t))


def _rich_table(t: Table) -> Any:
    from rich import box
    from rich.table import Table as RichTable
    from rich.text import Text

    rt = RichTable(box=box.SIMPLE_HEAD, title=Text(t.title) if t.title else None, title_justify="left",
                   pad_edge=False)
    for name, whole in zip(t.columns, t.whole, strict=True):
        rt.add_column(name, no_wrap=whole, overflow="fold")
    for cells in t.rows:
        rt.add_row(*(Text(v) for v in cells))
    return rt


def run(fn: Any) -> Any:
    """Call ``fn``; print our errors readably and exit 2 (never a traceback for a known error)."""
    try:
        return fn()
    except TwhError as exc:
        if _STATE.get("json"):
            print(json.dumps({"error": exc.to_dict()}, ensure_ascii=False))
        else:
            from rich.markup import escape

            # the code is the same in every language; the word before it is the reader's
            word = _("error")
            err.print(f"[bold red]{escape(word)}[/] {escape('[' + exc.code + ']')}: {escape(exc.message)}",
                      highlight=False, soft_wrap=True)
        if _STATE.get("plain_exit"):  # the quick path (:mod:`.fast`): no click to turn Exit into the status
            raise SystemExit(2) from None
        import typer

        raise typer.Exit(2) from None


_STATE: dict[str, bool] = {}
