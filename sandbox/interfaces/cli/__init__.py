"""``twh`` — the command line (:mod:`.main` is the entry, :mod:`.root` assembles the command groups,
:mod:`.commands` names them, :mod:`.roothelp` answers ``twh --help`` and :mod:`.fast` ``dataset list`` and
``job submit DIR`` without typer, through :mod:`.views`; :mod:`.output` prints, :mod:`.plaintable` lays out tables).

    twh --home DIR --as USER dataset list          # local mode
    twh --url URL --token T job submit ./job       # against a service
"""

__all__ = ["audit", "authorize", "commands", "datasets", "exports", "fast", "features", "jobs", "local_server",
           "local_server_cmd", "main", "models", "output", "plaintable", "progress", "root", "roothelp", "score",
           "service", "subject", "syft", "tokens", "users", "verify", "views"]
