"""The scale-out engine's SparkSession: Spark + delta-spark, one per process.

delta-spark's JARs are resolved the standard way — :func:`delta.configure_spark_with_delta_pip`
adds ``io.delta:delta-spark_<spark>_<scala>`` to ``spark.jars.packages`` and Spark's Ivy fetches
it from Maven Central — into a cache inside the environment (``<sys.prefix>/share/twh-spark-ivy``,
or ``TWH_SPARK_IVY``), so only the first session on a machine downloads anything
(``make spark-jars`` does that up front). The JAR list Ivy resolved is recorded there
(``resolved-<delta version>.txt``); later sessions put exactly those files on ``spark.jars`` and skip
Ivy's resolve (about 10 s per start on a small box), falling back to it if any file is gone.

The master is a setting (``TWH_SPARK_MASTER``): ``local[*]`` by default, or any master URL
(``spark://host:7077``, ``yarn``, ``k8s://…``). Extra Spark configuration comes from
``Settings.spark_conf``. pyspark is imported lazily: the embedded default never pays for it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InternalError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

#: small-box defaults: few shuffle partitions, no UI, Delta snapshots rebuilt in one task
_DEFAULT_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "4",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.driver.memory": "2g",
    # Warehouse tables must stay readable by delta-rs and by the gate's plain Parquet scan: no
    # deletion vectors or column mapping on tables Spark creates, no INT96 timestamps in files
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    "spark.databricks.delta.properties.defaults.columnMapping.mode": "none",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}

_lock = threading.Lock()
_session: SparkSession | None = None
_session_key: tuple[str, tuple[tuple[str, str], ...]] | None = None


def ivy_dir() -> Path:
    """Where Ivy keeps delta-spark's JARs (inside the environment, so a fresh venv refetches once)."""
    return Path(os.environ.get("TWH_SPARK_IVY") or Path(sys.prefix) / "share" / "twh-spark-ivy")


def _delta_version() -> str:
    from importlib.metadata import version

    return version("delta-spark")


def _resolved_list() -> Path:
    return ivy_dir() / f"resolved-{_delta_version()}.txt"


def _cached_jars() -> str | None:
    """The comma-separated JARs an earlier session resolved, if they are all still there."""
    listing = _resolved_list()
    if not listing.is_file():
        return None
    jars = [line for line in listing.read_text().splitlines() if line.strip()]
    if not jars or not all(Path(j).is_file() for j in jars):
        return None
    return ",".join(jars)


def _record_jars(session: Any) -> None:
    from urllib.parse import urlparse

    jars = [urlparse(j).path if j.startswith("file:") else j
            for j in session.sparkContext.getConf().get("spark.jars", "").split(",") if j]
    if jars and all(Path(j).is_file() for j in jars):
        listing = _resolved_list()
        tmp = listing.with_suffix(".tmp")
        tmp.write_text("\n".join(jars) + "\n")
        tmp.replace(listing)


def get_session(master: str = "local[*]", conf: Mapping[str, str] | None = None) -> SparkSession:
    """The process's SparkSession with Delta Lake, created on first use.

    A second call with a different master or configuration is an error: one JVM per process.
    """
    global _session, _session_key
    key = (master, tuple(sorted((conf or {}).items())))
    with _lock:
        if _session is not None:
            if key != _session_key:
                raise InternalError("a SparkSession with another master/configuration is already running")
            return _session
        try:
            from delta import configure_spark_with_delta_pip
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InternalError("the spark engine needs pyspark and delta-spark: pip install "
                                "'training-warehouse[spark]'") from exc
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder: Any = SparkSession.builder.master(master).appName("training-warehouse")
        for k, v in {**_DEFAULT_CONF, "spark.jars.ivy": str(ivy_dir()), **(conf or {})}.items():
            builder = builder.config(k, v)
        jars = None if (conf or {}).get("spark.jars.packages") else _cached_jars()
        if jars:
            session = builder.config("spark.jars", jars).getOrCreate()
        else:
            session = configure_spark_with_delta_pip(builder).getOrCreate()
            _record_jars(session)
        session.sparkContext.setLogLevel("ERROR")
        _session, _session_key = session, key
        return session


def stop_session() -> None:
    global _session, _session_key
    with _lock:
        if _session is not None:
            _session.stop()
        _session, _session_key = None, None


if __name__ == "__main__":  # `python -m sandbox.engines.spark`: resolve the JARs once (make spark-jars)
    s = get_session("local[1]")
    print(f"delta-spark ready: Spark {s.version}; JARs cached in {ivy_dir()}")
    stop_session()
