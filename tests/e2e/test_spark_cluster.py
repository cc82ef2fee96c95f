"""A classic Spark driver on the 2-worker standalone cluster (``TWH_SPARK_MASTER=spark://…``).

This process's SparkSession is ``local[2]`` and there is one per process (sandbox.engines.spark), so
the ``cluster_subset`` tests — parity shapes, the time limit, pinned versions, dp bounding, Spark
ingest, the end-to-end answers and two concurrent loads into one s3:// table — run in a child
pytest whose ``spark`` fixture is a driver on the cluster (tests/spark_cluster.py). Its tasks run in
the workers' executor JVMs: tables, S3A credentials (the driver's Hadoop configuration, carried by
each task) and quiet logging must all reach them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# the PostgreSQL pass leaves it out: ~3 minutes of Spark, and the two-worker test shares PostgreSQL there
pytestmark = [pytest.mark.timeout(900), pytest.mark.sqlite_pass]

ROOT = Path(__file__).resolve().parents[2]
SUBSET = ["tests/gate/test_spark_parity.py", "tests/landing/test_spark_ingest.py", "tests/e2e/test_spark_engine.py",
          "tests/e2e/test_object_storage.py"]


def test_the_cluster_subset_passes_on_a_classic_driver_on_the_cluster(spark_cluster: Any, catalog_url: str) -> None:
    from spark_cluster import child_env

    env = child_env(spark_cluster)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    database = ["--database", "postgres"] if catalog_url else []
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cluster_subset",
                           *database, *SUBSET], cwd=ROOT, env=env, capture_output=True, text=True, timeout=840)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    passed = int(re.search(r"(\d+) passed", out).group(1))  # type: ignore[union-attr]
    assert passed >= (16 if not catalog_url else 1), out[-2000:]
    # the executors ran in the workers' JVMs, as this cluster's application
    executors = list(spark_cluster.root.glob("worker-*/app-*/*/stderr"))
    assert executors, "no executor ran on the cluster"
