"""`make spark-cluster-stop` (sandbox.engines.spark_cluster.down) signals only Spark daemons: a pid in
its file that now names another process (pids are recycled) is left alone."""

from __future__ import annotations

import os
import subprocess
import sys

from sandbox.engines.spark_cluster import ENV_FILE, PIDS_FILE, down


def test_down_never_signals_a_process_that_is_not_a_spark_daemon(tmp_path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (tmp_path / PIDS_FILE).write_text(f"{other.pid}\n{os.getpid()}\n")
        (tmp_path / ENV_FILE).write_text("TWH_SPARK_MASTER=spark://127.0.0.1:1\n")
        assert down(tmp_path) == 0
        assert other.poll() is None  # still running
        assert not (tmp_path / PIDS_FILE).exists() and not (tmp_path / ENV_FILE).exists()
    finally:
        other.kill()
        other.wait()


def test_down_with_nothing_started_is_a_no_op(tmp_path) -> None:
    assert down(tmp_path) == 0
