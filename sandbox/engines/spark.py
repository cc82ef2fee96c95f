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

Two kinds of session, one interface (:class:`SparkTarget`, built by ``Settings.spark_target``):

* **classic** (``TWH_SPARK_MASTER``): a JVM driver inside this process, one per process
  (:func:`get_session`); a second configuration is refused;
* **Spark Connect** (``TWH_SPARK_REMOTE=sc://localhost:15002``): a gRPC client of a long-lived
  server (:mod:`sandbox.engines.spark_cluster` starts one) — no JVM here, so no query pays a JVM
  start; one client per server URL per process (:func:`get_remote_session`). The server requires
  a bearer token (``TWH_SPARK_CONNECT_TOKEN``); on ``localhost`` gRPC's local credentials carry
  it without TLS.

Object storage: the S3A connector's JARs (``hadoop-aws`` and the AWS SDK modules it needs, put
in ``<sys.prefix>/share/twh-jars/s3a`` by ``make spark-jars``) are on every driver's and
executor's class path, and ``s3://`` maps to S3A. The store's endpoint and credentials reach a
classic driver at run time (:func:`apply_hadoop_conf`, into its Hadoop configuration, which tasks
carry to the executors) — never as builder options, which pyspark would put on the JVM's command
line for every local user to read in ``ps``. A Connect server gets them from a private properties
file (:mod:`sandbox.engines.spark_cluster`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InternalError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

#: small-box defaults: few shuffle partitions, no adaptive re-planning, no UI, Delta snapshots rebuilt in one task
_DEFAULT_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    # Adaptive execution re-plans after each shuffle stage, as a job of its own: on the gate's small
    # aggregates that is most of a warm query's fixed cost (≈ 0.15 s of 0.55–0.7 s per query over
    # Connect on the 2-worker test cluster, measured interleaved), and with 4 shuffle partitions it
    # has nothing to coalesce. Big joins still get the planner's static broadcast choice; an operator
    # of a large cluster can turn it back on in Settings.spark_conf.
    "spark.sql.adaptive.enabled": "false",
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
_hadoop_applied: str | None = None
_remote: dict[str, SparkSession] = {}
#: bumped whenever a session stops: caches keyed on a session (the gate's warm views) key on it too,
#: so a new session that happens to reuse an old object's id() never finds the old session's views
_generation = 0


def ivy_dir() -> Path:
    """Where Ivy keeps delta-spark's JARs (inside the environment, so a fresh venv refetches once)."""
    return Path(os.environ.get("TWH_SPARK_IVY") or Path(sys.prefix) / "share" / "twh-spark-ivy")


def jars_dir() -> Path:
    """The JARs ``make spark-jars`` fetches with Maven (S3A under ``s3a/``, the S3 test server)."""
    return Path(sys.prefix) / "share" / "twh-jars"


def s3a_classpath() -> str:
    """The S3A connector's JARs as a class path ('' when not installed: s3:// tables then fail closed)."""
    folder = jars_dir() / "s3a"
    return ":".join(str(p) for p in sorted(folder.glob("*.jar"))) if folder.is_dir() else ""


def base_conf() -> dict[str, str]:
    """Every driver's configuration before Settings.spark_conf: the defaults, Delta, S3A."""
    conf = {**_DEFAULT_CONF, "spark.jars.ivy": str(ivy_dir())}
    s3a = s3a_classpath()
    if s3a:  # the class path, not spark.jars: Hadoop's FileSystem loader does not see spark.jars
        conf["spark.driver.extraClassPath"] = s3a
        conf["spark.executor.extraClassPath"] = s3a
        conf["spark.hadoop.fs.s3.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
    return conf


@dataclass(frozen=True)
class SparkTarget:
    """Where Spark work runs: this process's classic session on ``master``, or a Connect server."""

    master: str = "local[*]"
    conf: tuple[tuple[str, str], ...] = ()
    #: ``sc://host:port`` of a Spark Connect server; set, it is used instead of ``master``
    remote: str = ""
    token: str = field(default="", repr=False)
    #: Hadoop configuration applied at run time (the object store's S3A settings and credentials)
    hadoop: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    #: a standalone cluster's shared secret (``spark.authenticate``)
    auth_secret: str = field(default="", repr=False)

    @property
    def is_remote(self) -> bool:
        return bool(self.remote)

    def session(self) -> SparkSession:
        if self.remote:
            return get_remote_session(self.remote, self.token)
        session = get_session(self.master, dict(self.conf), auth_secret=self.auth_secret)
        apply_hadoop_conf(session, dict(self.hadoop))
        return session


def is_connect(spark: Any) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no JVM, no SparkContext here)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def query_frame(spark: Any, sql: str) -> Any:
    """The DataFrame of the query ``sql``, run when it is collected. Over Connect ``spark.sql`` first
    runs the statement as an eager command — a round trip of its own, with an analysis the collect
    repeats — and hands back the same relation; for a query (all the gate sends: sqlglot checked it
    is one SELECT) that trip buys nothing, so the relation is built here and travels with the
    collect: one round trip per query. A classic session analyses in this process (no trip)."""
    if not is_connect(spark):
        return spark.sql(sql)
    from pyspark.sql.connect.dataframe import DataFrame
    from pyspark.sql.connect.plan import SQL

    return DataFrame(SQL(sql), spark)


def query_arrow(spark: Any, sql: str) -> Any:
    """The result of the query ``sql`` as an Arrow table, in one round trip over Connect:
    ``DataFrame.toArrow`` asks the server for the schema first (an analysis of its own), though the
    answer carries it; here the answer's schema gives the same types ``toArrow`` would (the pyspark
    pinned in pyproject.toml has ``_to_table``; another falls back to ``toArrow``)."""
    frame = query_frame(spark, sql)
    if not is_connect(spark) or not hasattr(frame, "_to_table"):
        return frame.toArrow()
    from pyspark.sql.pandas.types import to_arrow_schema

    table, schema = frame._to_table()
    if schema is None:  # pragma: no cover - the server always sends it with the rows
        return frame.toArrow()
    return table.cast(to_arrow_schema(schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC"))


def functions(on: Any) -> Any:
    """pyspark's column functions for ``on`` (a session, DataFrame or Column): Spark Connect's or the
    classic ones. ``pyspark.sql.functions`` picks by a process-wide switch, and a process may hold
    both kinds of session (the tests do): a classic Column inside a Connect plan fails."""
    if is_connect(on):
        from pyspark.sql.connect import functions as connect_functions

        return connect_functions
    from pyspark.sql import functions as classic_functions

    return classic_functions


def apply_hadoop_conf(session: Any, conf: Mapping[str, str]) -> None:
    """Set ``conf`` on a classic session's Hadoop configuration (not on its command line)."""
    global _hadoop_applied
    if not conf or is_connect(session):
        return
    digest = hashlib.sha256(repr(sorted(conf.items())).encode()).hexdigest()
    with _lock:
        if _hadoop_applied == digest:
            return
        hc = session.sparkContext._jsc.hadoopConfiguration()
        for k, v in conf.items():
            hc.set(k, v)
        _hadoop_applied = digest


def get_remote_session(url: str, token: str = "") -> SparkSession:
    """A Spark Connect client of the server at ``url`` (one per URL per process, thread-safe)."""
    with _lock:
        hit = _remote.get(url)
        if hit is not None:
            return hit
        try:
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise InternalError("Spark Connect needs pyspark[connect]: pip install 'training-warehouse[spark]'") \
                from exc
        # The token goes into the channel's parameters, never into a URL that could be logged.
        full = url.rstrip("/") + "/" + (f";token={token}" if token else "")
        try:
            session = ConnectSession.builder.remote(full).create()
        except Exception as exc:
            raise InternalError(f"cannot reach the Spark Connect server ({type(exc).__name__})") from None
        _remote[url] = session
        return session


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


def get_session(master: str = "local[*]", conf: Mapping[str, str] | None = None, *,
                auth_secret: str = "") -> SparkSession:
    """The process's SparkSession with Delta Lake, created on first use.

    A second call with a different master or configuration is an error: one JVM per process.
    ``auth_secret``: a standalone cluster's ``spark.authenticate`` secret. pyspark puts every builder
    option on the JVM's command line (``spark-submit --conf k=v``), which any local user can read:
    so the JVM is launched first with the public options only (:func:`_launch_gateway`) and the
    secret reaches the SparkContext's configuration afterwards, over py4j.
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
        extra = {"spark.authenticate": "true"} if auth_secret else {}
        builder: Any = SparkSession.builder.master(master).appName("training-warehouse")
        for k, v in {**base_conf(), **extra, **(conf or {})}.items():
            builder = builder.config(k, v)
        jars = None if (conf or {}).get("spark.jars.packages") else _cached_jars()
        builder = builder.config("spark.jars", jars) if jars else configure_spark_with_delta_pip(builder)
        _launch_gateway(dict(builder._options))  # public options only: they are its command line
        if auth_secret:
            builder = builder.config("spark.authenticate.secret", auth_secret)
        session = builder.getOrCreate()
        if not jars:
            _record_jars(session)
        session.sparkContext.setLogLevel("ERROR")
        _session, _session_key = session, key
        return session


def _launch_gateway(options: Mapping[str, str]) -> None:
    """Start the py4j JVM with ``options`` as its spark-submit arguments (no secret among them)."""
    from pyspark import SparkConf, SparkContext

    if SparkContext._gateway is not None:
        return
    conf = SparkConf(loadDefaults=False)
    for k, v in options.items():
        conf.set(k, str(v))
    SparkContext._ensure_initialized(conf=conf)


def session_key(session: Any) -> tuple[str, ...]:
    """What identifies ``session``'s server-side state (its temp views) within this process: a
    Connect client's session id (a UUID the server keys its session on), or a classic session's
    identity in this process's current generation of sessions."""
    if is_connect(session):
        return ("connect", str(session.session_id))
    return ("classic", str(id(session)), str(_generation))


def stop_session() -> None:
    global _session, _session_key, _hadoop_applied, _generation
    with _lock:
        if _session is not None:
            _session.stop()
        _session, _session_key, _hadoop_applied = None, None, None
        _generation += 1


def stop_remote_sessions() -> None:
    """Close this process's Connect clients (the servers keep running)."""
    with _lock:
        sessions = list(_remote.values())
        _remote.clear()
    for s in sessions:
        try:
            s.stop()
        except Exception:  # noqa: BLE001 - a server already gone: nothing to close
            pass


if __name__ == "__main__":  # `python -m sandbox.engines.spark`: resolve the JARs once (make spark-jars)
    s = get_session("local[1]")
    print(f"delta-spark ready: Spark {s.version}; JARs cached in {ivy_dir()}")
    stop_session()
