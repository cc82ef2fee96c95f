"""The Spark cluster and Connect server the service uses: authenticated, secrets off command lines,
no row values in their logs, and the gate's row source alike over Connect and a classic session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.timeout(900)


def _cmdlines(root_pids: list[int]) -> dict[int, str]:
    """The command lines of the given processes and all their descendants."""
    seen: dict[int, str] = {}
    todo = list(root_pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        try:
            seen[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return seen


def test_smoke(spark_connect: Any, spark_cluster: Any, s3_server: Any) -> None:
    from sandbox.engines.spark import SparkTarget

    s = SparkTarget(remote=spark_connect.url, token=spark_connect.token).session()
    assert s.sql("SELECT 1 AS x").toArrow().num_rows == 1
    pids = [d.proc.pid for d in spark_cluster.daemons] + [spark_connect.daemon.proc.pid]
    lines = _cmdlines(pids)
    print(len(lines))
    for pid, line in lines.items():
        for secret in (spark_connect.token, spark_cluster.auth_secret, s3_server.secret_key):
            assert secret not in line, pid
