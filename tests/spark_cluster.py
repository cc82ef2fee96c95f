"""A real Spark cluster and a Spark Connect server for the tests, one of each per pytest run.

* ``spark_cluster``: a standalone master and two workers (2 cores, 2 GB each), separate JVMs started
  from pyspark's own ``bin/spark-class`` on loopback, with an authentication secret.
* ``spark_connect``: a Spark Connect server whose master is that cluster, configured with the test
  S3 server's store (``s3_server``): the service's way to run Spark without a JVM of its own.

How one pytest process uses both a classic session and the cluster: ``sandbox.engines.spark`` keeps
ONE classic SparkSession per process (the ``spark`` fixture, ``local[2]``), and a Connect client is
not a session of that kind — so the in-process tests run each Spark test on the classic session
and, for a representative subset, over Connect (whose driver runs its tasks on the 2-worker
cluster). The classic driver *on* the cluster (``TWH_SPARK_MASTER=spark://…``, what ``make demo
ENGINE=spark TWH_SPARK_MASTER=…`` does) runs in a child pytest (tests/e2e/test_spark_cluster.py),
which points the ``spark`` fixture at the cluster through ``TWH_TEST_SPARK_MASTER`` and
``TWH_TEST_SPARK_AUTH``: one JVM start for that subset instead of stopping and restarting the
session the rest of the run shares.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

#: the environment the child pytest of the cluster subset reads (tests/conftest.py)
MASTER_ENV, AUTH_ENV = "TWH_TEST_SPARK_MASTER", "TWH_TEST_SPARK_AUTH"
#: the master every Spark test shares: settings with engine="spark" in tests must use this, since
#: sandbox.engines.spark keeps one SparkSession per process and refuses a second configuration.
#: The child pytest of tests/e2e/test_spark_cluster.py sets it to the test cluster's spark:// URL.
SPARK_TEST_MASTER = os.environ.get(MASTER_ENV) or "local[2]"


def _need_spark() -> None:
    try:
        import delta  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark/delta-spark not installed: pip install 'training-warehouse[spark]'")


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A standalone master and two workers (JVMs on loopback) for the whole run."""
    _need_spark()
    from sandbox.engines.spark_cluster import StandaloneCluster

    # 2 cores and 2 GB a worker: the Connect server's application (one 1-core, 512 MB executor a worker)
    # and the cluster child's classic driver (one executor a worker) run side by side
    cluster = StandaloneCluster.start(tmp_path_factory.mktemp("spark-cluster"), workers=2, cores=2, memory="2g")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def spark_connect(spark_cluster: Any, s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Spark Connect server on the cluster, holding the test object store's credentials."""
    from sandbox.engines.spark_cluster import ConnectServer

    server = ConnectServer.start(tmp_path_factory.mktemp("spark-connect"), master=spark_cluster.master_url,
                                 conf=spark_cluster.driver_conf(), hadoop=s3_server.store().hadoop_conf(),
                                 auth_secret=spark_cluster.auth_secret)
    yield server
    from sandbox.engines.spark import stop_remote_sessions

    stop_remote_sessions()
    server.stop()


def connect_target(server: Any) -> Any:
    from sandbox.engines.spark import SparkTarget

    return SparkTarget(remote=server.url, token=server.token)


def child_env(cluster: Any) -> dict[str, str]:
    """The environment of a child pytest whose ``spark`` fixture is a classic driver on ``cluster``."""
    return {**os.environ, MASTER_ENV: cluster.master_url, AUTH_ENV: cluster.auth_secret}
