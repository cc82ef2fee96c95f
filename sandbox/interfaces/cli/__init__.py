"""``twh`` — the command line (:mod:`.main` assembles the command groups; :mod:`.output` prints).

    twh --home DIR --as USER dataset list          # local mode
    twh --url URL --token T job submit ./job       # against a service
"""

__all__ = ["audit", "datasets", "exports", "jobs", "local_server", "local_server_cmd", "main", "output", "progress", "service", "syft", "tokens", "users"]
