"""``twh`` — the command line (:mod:`.main` is the entry, :mod:`.root` assembles the command groups,
:mod:`.commands` names them, :mod:`.roothelp` answers ``twh --help`` without typer; :mod:`.output` prints).

    twh --home DIR --as USER dataset list          # local mode
    twh --url URL --token T job submit ./job       # against a service
"""

__all__ = ["audit", "authorize", "commands", "datasets", "exports", "features", "jobs", "local_server",
           "local_server_cmd", "main", "models", "output", "progress", "root", "roothelp", "score", "service",
           "subject", "syft", "tokens", "users", "verify"]
