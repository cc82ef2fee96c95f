"""The table of ``twh``'s commands, and reading a command line without building any of them.

The standard library only: ``twh --help`` answers from here and :mod:`.roothelp` before typer
is imported (:mod:`.main`)."""

from __future__ import annotations

#: every top-level name -> (module of this package, attribute): a group (a Typer of its own), or
#: ``top``, the module's Typer of top-level commands (``twh init``, ``twh ingest``, ...). In help order.
COMMANDS: dict[str, tuple[str, str]] = {
    "user": ("users", "user_app"), "dataset": ("datasets", "dataset_app"), "job": ("jobs", "job_app"),
    "export": ("exports", "export_app"), "audit": ("audit", "audit_app"), "budget": ("datasets", "budget_app"),
    "db": ("service", "db_app"), "demo": ("service", "demo_app"), "syft": ("syft", "syft_app"),
    "token": ("tokens", "token_app"),
    "feature": ("features", "feature_app"), "model": ("models", "model_app"),
    "authorize": ("authorize", "authorize_app"), "score": ("score", "score_app"),
    "verify": ("verify", "verify_app"), "subject": ("subject", "subject_app"),
    "init": ("users", "top"), "whoami": ("users", "top"), "ingest": ("datasets", "top"),
    "serve": ("service", "top"), "worker": ("service", "top"),
    "local-server": ("local_server_cmd", "local_server_app"),
}
#: the global options that take a value (skipped when looking for the command's name)
_VALUED = {"--home", "--as", "--url", "--token", "--get", "--lang"}


def _first_word(argv: list[str]) -> str | None:
    """The first argument that is neither a global option nor its value: the command's name."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _named(argv: list[str]) -> str | None:
    """The top-level command an argument list names (after any global options), if it is ours."""
    word = _first_word(argv)
    return word if word in COMMANDS else None


def _root_help(argv: list[str]) -> bool:
    """``twh`` alone or ``twh [global options] --help``: only the list of commands is shown."""
    return _first_word(argv) is None and (not argv or "--help" in argv)
