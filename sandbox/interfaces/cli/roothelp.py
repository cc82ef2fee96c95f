"""``twh --help`` without typer: the root listing from a static description, laid out as click does.

Importing typer alone costs about half of ``twh --help``, and the listing never changes between
runs but for the terminal's width: :func:`answer` prints it for the few command lines whose
answer is exactly that listing (:func:`quick`), and everything else goes to typer. The layout below
follows click's ``HelpFormatter`` (``write_usage``, ``write_text``, ``write_dl``) and
``make_default_short_help`` line by line; the texts are those of :mod:`.root`'s callback and of
each command module. ``tests/interfaces/cli/test_import_time.py`` compares the output byte for
byte with typer's own for the same command line, at several widths and in every language, so the
two cannot drift: a changed help text or option fails there until it is changed here too.

The standard library only (``textwrap`` once a listing is printed)."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs a few ms of `twh --help`
    from typing import Any

#: the root's usage after ``Usage: twh``
USAGE = "[OPTIONS] COMMAND [ARGS]..."
#: the root's help (the ``help`` of :func:`.root._new_app`)
HELP = "Training warehouse (训练仓): raw data never leaves; only gated results do."
#: the root's options as click lists them: (option and metavar, help), typer's completion options and --help last
OPTIONS: tuple[tuple[str, str], ...] = (
    ("--home <path>", "warehouse directory [env TWH_HOME]"),
    ("--as <str>", "local mode: the user who acts [env TWH_USER]"),
    ("--url <str>", "remote mode: service URL [env TWH_URL]"),
    ("--token <str>", "remote mode: bearer token [env TWH_TOKEN]"),
    ("--json", "machine-readable output"),
    ("--get FIELD", "print only this field of the result, e.g. token, id, export.id, 0.id (for shell variables)"),
    ("--lang LANG", "language of messages for people: en or zh-CN [env TWH_LANG]"),
    ("--install-completion", "Install completion for the current shell."),
    ("--show-completion", "Show completion for the current shell, to copy it or customize the installation."),
    ("--help", "Show this message and exit."),
)
#: every command's and group's help (its first paragraph: all the listing uses), in the listing's
#: order: top-level commands, then groups, each as :data:`.commands.COMMANDS` lists them
COMMANDS: dict[str, str] = {
    "init": "Create a warehouse (directory + catalog) and its first admin; prints the admin's token once.",
    "whoami": "The user you act as: name, role and tenant (remote mode: checks the URL and token).",
    "ingest": "Land data into a dataset (CSV, Excel, Parquet, JSON lines, SQL, HTTP, OHLC): validated, atomic, "
              "idempotent.",
    "serve": "Run the HTTP API (and a job worker) on this warehouse.",
    "worker": "Run queued jobs (start as many workers as you like, on one machine or several).",
    "user": "Users and tokens.",
    "dataset": "Register and inspect datasets.",
    "job": "Submit and follow jobs.",
    "export": "Review, approve, deny, download and verify exports.",
    "audit": "Verify and export the audit log.",
    "budget": "Differential-privacy budgets.",
    "db": "The catalog database's schema (Alembic migrations).",
    "demo": "The small-business credit demo: run it end to end, or write its sample files.",
    "syft": "PySyft bridge: the warehouse as a Syft data owner. The --config YAML holds `email` (the warehouse's "
            "Syft identity), `token_path` (syft's transport credentials), `publisher` (a steward or admin), `users` "
            "(Syft email: enterprise user) and optionally `default_purpose`, `mock_rows`.",
    "token": "Bearer tokens: issue (shown once), list, revoke.",
    "feature": "The feature library: publish, list and show feature definitions.",
    "model": "The model catalog: publish approved DP models for inference.",
    "authorize": "Subjects' authorisations: grant, import, revoke, list.",
    "score": "Score subjects with a catalog model (inference).",
    "verify": "Verification products: define them, check a claim about a subject.",
    "subject": "A data subject's view: who used its data.",
    "local-server": "The per-home local server that serves local-mode commands (TWH_LOCAL_SERVER=auto|off).",
}


def quick(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    """``"help"`` for ``twh --help`` (also with ``--lang L`` / ``--lang=L``, before or after it),
    ``"bare"`` for ``twh`` alone (click shows the listing on stderr and exits 2), else ``None``:
    typer answers anything else, and any shell-completion request."""
    if any(k.endswith("_COMPLETE") for k in environ):
        return None
    if not argv:
        return "bare"
    rest = list(argv)
    if rest.count("--help") != 1:
        return None
    rest.remove("--help")
    if not rest:
        return "help"
    if len(rest) == 1 and rest[0].startswith("--lang=") and len(rest[0]) > len("--lang="):
        return "help"
    if len(rest) == 2 and rest[0] == "--lang" and rest[1] and not rest[1].startswith("-") and argv[-1] != "--lang":
        return "help"
    return None


def language(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> str | None:
    """The language a root help is asked in, when it is not English: the last ``--lang L`` /
    ``--lang=L`` of the command line, else ``TWH_LANG``. A value that names no language gives
    ``None``: click shows ``--help`` before it checks ``--lang``, so that help is the English one."""
    chosen = None
    args = iter(argv)
    for arg in args:
        if arg == "--lang":
            chosen = next(args, None)
        elif arg.startswith("--lang="):
            chosen = arg[len("--lang="):]
    chosen = chosen or environ.get("TWH_LANG") or None
    if not chosen:
        return None
    from ...i18n.locales import DEFAULT, normalize

    code = normalize(chosen)
    return code if code and code != DEFAULT else None


def answer(kind: str) -> int:
    """Print the listing as click would for ``kind`` (see :func:`quick`); the exit status."""
    code = language(sys.argv[1:], os.environ)
    tr = None
    if code is not None:  # the texts as typer shows them once .root._speak_help translated them
        from ...i18n import gettext, use

        use(code)
        tr = gettext
    text = render(program_name(), max(min(_columns(), 80) - 2, 50), tr)
    stream = sys.stdout if kind == "help" else sys.stderr
    stream.write(text + "\n")
    stream.flush()
    return 0 if kind == "help" else 2


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` gives it to click (without importing
    shutil, which loads fnmatch and re): ``COLUMNS``, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def program_name() -> str:
    """The program's name in the usage line, as click derives it (``twh``, or ``python -m ...``)."""
    main = sys.modules["__main__"]
    path = sys.argv[0]
    if getattr(main, "__package__", None) in (None, ""):
        return os.path.basename(path)
    name = os.path.splitext(os.path.basename(path))[0]
    module = main.__package__ if name == "__main__" else f"{main.__package__}.{name}"
    return f"python -m {module.lstrip('.')}"


def render(prog: str, width: int, tr: Any = None) -> str:
    """The root's help page for a terminal ``width`` columns wide (click's formatter width), its
    texts through ``tr`` (a gettext; click's own ``--help`` option is not one of the root's
    parameters, so typer leaves its help as click wrote it)."""
    tr = tr or (lambda text: text)
    help_, options = tr(HELP), tuple((o, h if o == "--help" else tr(h)) for o, h in OPTIONS)
    commands = {name: tr(text) for name, text in COMMANDS.items()}
    out: list[str] = []
    prefix = f"Usage: {prog} "
    if width >= len(prefix) + 20:
        out.append(_wrap(USAGE, width, prefix, " " * len(prefix)))
    else:
        out += [prefix, "\n", _wrap(USAGE, width, " " * (len("Usage: ") + 4), " " * (len("Usage: ") + 4))]
    out.append("\n")
    out += ["\n", _paragraphs(help_, width, "  "), "\n"]
    out += ["\n", "Options:\n", _dl(options, width, 2)]
    limit = width - 6 - max(len(name) for name in commands)
    out += ["\n", "Commands:\n", _dl(tuple((n, _short(h, limit)) for n, h in commands.items()), width, 2)]
    return "".join(out).rstrip("\n")


def _wrapper(width: int, initial: str, subsequent: str) -> object:
    import textwrap

    class Wrapper(textwrap.TextWrapper):  # click's: a word longer than a line is cut where the line ends
        def _handle_long_word(self, reversed_chunks: list[str], cur_line: list[str], cur_len: int,
                              width: int) -> None:
            space_left = max(width - cur_len, 1)
            last = reversed_chunks[-1]
            cur_line.append(last[:space_left])
            reversed_chunks[-1] = last[space_left:]

    return Wrapper(width, initial_indent=initial, subsequent_indent=subsequent, replace_whitespace=False)


def _wrap(text: str, width: int, initial: str = "", subsequent: str = "") -> str:
    return _wrapper(width, initial, subsequent).fill(text.expandtabs())  # type: ignore[attr-defined]


def _paragraphs(text: str, width: int, indent: str) -> str:
    """click's ``wrap_text(..., preserve_paragraphs=True)`` for text of plain paragraphs."""
    paragraphs: list[tuple[int, str]] = []
    lines: list[str] = []
    lead: int | None = None
    for line in [*text.expandtabs().splitlines(), ""]:
        if not line:
            if lines:
                if lines[0].strip() == "\b":  # click's no-rewrap marker: none of ours uses it
                    raise ValueError("a \\b paragraph in the root help")
                paragraphs.append((lead or 0, " ".join(lines)))
                lines = []
            lead = None
            continue
        if lead is None:
            lead = len(line) - len(line.lstrip())
            line = line.lstrip()
        lines.append(line)
    return "\n\n".join(_wrap(p, width, indent + " " * n, indent + " " * n) for n, p in paragraphs)


def _dl(rows: tuple[tuple[str, str], ...], width: int, indent: int) -> str:
    """click's ``HelpFormatter.write_dl``: a definition list (col_max 30, col_spacing 2)."""
    first_col = min(max(len(a) for a, _ in rows), 30) + 2
    out: list[str] = []
    for first, second in rows:
        out.append(" " * indent + first)
        if not second:
            out.append("\n")
            continue
        if len(first) <= first_col - 2:
            out.append(" " * (first_col - len(first)))
        else:
            out += ["\n", " " * (first_col + indent)]
        lines = _paragraphs(second, max(width - first_col - 2, 10), "").splitlines()
        out.append(f"{lines[0]}\n")
        out += [" " * (first_col + indent) + f"{line}\n" for line in lines[1:]]
    return "".join(out)


def _short(text: str, limit: int) -> str:
    """click's ``make_default_short_help``: the first sentence, or as many words as fit and ``...``."""
    words = text.split("\n\n")[0].split()
    total = 0
    for i, word in enumerate(words):
        total += len(word) + (i > 0)
        if total > limit:
            break
        if word[-1] == ".":
            return " ".join(words[:i + 1])
        if total == limit and i != len(words) - 1:
            break
    else:
        return " ".join(words)
    total += len("...")
    while i > 0:
        total -= len(words[i]) + (i > 0)
        if total <= limit:
            break
        i -= 1
    return " ".join(words[:i]) + "..."
