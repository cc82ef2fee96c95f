"""A Spark standalone cluster and a Spark Connect server, started from pyspark's own launcher.

    cluster = StandaloneCluster.start(root, workers=2)       # master + workers, separate JVMs
    server = ConnectServer.start(root, master=cluster.master_url, hadoop=store.hadoop_conf())
    ...
    server.stop(); cluster.stop()

No Spark distribution is needed: the pip package ships ``bin/spark-class`` and ``bin/spark-submit``
and every JAR (``spark-connect_2.13`` included). Everything listens on loopback; used by the tests
(one cluster, one server per test session), by ``make spark-cluster-up`` / ``spark-connect-up``
(``twh spark ...``) and by the bench.

* The master, the workers and the executors they launch log through :data:`LOG4J2`: warnings
  only, and the loggers that quote a failed task's exception (which can hold a row value) off.
* The Connect server's configuration — the object store's credentials and its bearer token
  included — is a properties file private to the user (0600), never a command-line argument:
  any local user can read another process's command line.
* The server requires the token (``spark.connect.authenticate.token``): a local user who can
  reach the port still cannot read a table. Clients connect to ``sc://localhost:PORT`` (gRPC's
  local credentials carry the token without TLS on loopback).
* The master/worker RPC of the standalone cluster is authenticated with a shared secret
  (``spark.authenticate``): the daemons read it from their environment (``_SPARK_AUTH_SECRET``,
  readable only by this user), drivers from their configuration (the Connect server's private
  properties file; a classic driver over py4j, :func:`sandbox.engines.spark.get_session`), so no
  other user can run code on the cluster.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InternalError
from .spark import _DEFAULT_CONF, _cached_jars, ivy_dir, s3a_classpath

#: quiet logging for every JVM we start: no INFO chatter, no task-failure messages (they quote values)
LOG4J2 = """\
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yy/MM/dd HH:mm:ss} %p %c{1}: %m%n%ex{short.className}
logger.executor.name = org.apache.spark.executor.Executor
logger.executor.level = off
logger.tasks.name = org.apache.spark.scheduler.TaskSetManager
logger.tasks.level = off
logger.connect_errors.name = org.apache.spark.sql.connect.utils.ErrorUtils
logger.connect_errors.level = off
logger.connect_exec.name = org.apache.spark.sql.connect.execution
logger.connect_exec.level = off
logger.started.name = org.apache.spark.sql.connect.service.SparkConnectServer
logger.started.level = info
logger.master.name = org.apache.spark.deploy.master.Master
logger.master.level = info
logger.worker.name = org.apache.spark.deploy.worker.Worker
logger.worker.level = info
"""


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _private_file(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def _properties(conf: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace("=", "\\=").replace(":", "\\:")

    return "".join(f"{k}={esc(str(v))}\n" for k, v in sorted(conf.items()))


@dataclass
class _Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        try:
            return self.log.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is not None:
            return
        try:  # the process group is ours (start_new_session): a worker's executors go with it
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _env(root: Path, auth_secret: str | None) -> dict[str, str]:
    conf_dir = root / "conf"
    if not (conf_dir / "log4j2.properties").exists():
        _private_file(conf_dir / "log4j2.properties", LOG4J2)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYSPARK_", "SPARK_", "_SPARK_"))}
    env.update(SPARK_HOME=str(spark_home()), SPARK_CONF_DIR=str(conf_dir), SPARK_LOCAL_IP="127.0.0.1",
               SPARK_LOG_DIR=str(root / "logs"), SPARK_DAEMON_MEMORY="256m", SPARK_NO_DAEMONIZE="1")
    if auth_secret:
        env["_SPARK_AUTH_SECRET"] = auth_secret
    return env


def _launch(root: Path, name: str, argv: list[str], env: dict[str, str]) -> _Daemon:
    log = root / "logs" / f"{name}.log"
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=root, start_new_session=True)
    return _Daemon(name, proc, log)


def _wait_for(daemons: list[_Daemon], marker: str, count: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if sum(d.text().count(marker) for d in daemons) >= count:
            return
        dead = [d for d in daemons if d.proc.poll() is not None]
        if dead or time.monotonic() > deadline:
            tail = "\n".join(d.text()[-1500:] for d in daemons)
            raise InternalError(f"{what} did not start ({'exited' if dead else 'timed out'}): {tail[-3000:]}")
        time.sleep(0.2)


@dataclass
class StandaloneCluster:
    """A standalone master and its workers, each its own JVM, on loopback."""

    root: Path
    master_url: str
    auth_secret: str = field(repr=False)
    daemons: list[_Daemon] = field(default_factory=list, repr=False)

    @classmethod
    def start(cls, root: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g",
              timeout: float = 180.0) -> StandaloneCluster:
        root = Path(root)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        secret = secrets.token_hex(24)
        env = _env(root, secret)
        props = root / "conf" / "daemon.properties"
        _private_file(props, _properties({"spark.authenticate": "true", "spark.master.rest.enabled": "false",
                                          "spark.ui.enabled": "false", "spark.worker.cleanup.enabled": "true"}))
        port = free_port()
        cls_ = str(spark_home() / "bin" / "spark-class")
        master = _launch(root, "master", [cls_, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                          "--port", str(port), "--webui-port", str(free_port()),
                                          "--properties-file", str(props)], env)
        cluster = cls(root, f"spark://127.0.0.1:{port}", secret, [master])
        try:
            _wait_for([master], "Starting Spark master at", 1, timeout, "the Spark master")
            for i in range(workers):
                work = root / f"worker-{i}"
                work.mkdir(mode=0o700, exist_ok=True)
                cluster.daemons.append(_launch(root, f"worker-{i}", [
                    cls_, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
                    "--memory", memory, "--work-dir", str(work), "--webui-port", str(free_port()),
                    "--properties-file", str(props), cluster.master_url], env))
            _wait_for(cluster.daemons[:1], "Registering worker", workers, timeout, "the Spark workers")
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def driver_conf(self) -> dict[str, str]:
        """Configuration of a driver sharing this cluster: one 1-core, 512 MB executor per worker
        (the secret is not here)."""
        workers = max(1, len(self.daemons) - 1)
        return {"spark.authenticate": "true", "spark.executor.memory": "512m", "spark.executor.cores": "1",
                "spark.cores.max": str(workers)}

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()


@dataclass
class ConnectServer:
    """A long-lived Spark Connect server (one JVM driver; its master local or a cluster)."""

    root: Path
    url: str
    token: str = field(repr=False)
    daemon: _Daemon | None = field(default=None, repr=False)

    @classmethod
    def start(cls, root: Path, *, master: str = "local[2]", conf: Mapping[str, str] | None = None,
              hadoop: Mapping[str, str] | None = None, auth_secret: str | None = None, port: int | None = None,
              token: str | None = None, driver_memory: str = "1g", timeout: float = 240.0) -> ConnectServer:
        """``hadoop``: Hadoop keys (S3A, credentials) written as ``spark.hadoop.*`` into the private
        properties file; ``auth_secret``: the standalone cluster's secret when ``master`` is one."""
        root = Path(root)
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        port = port or free_port()
        token = token or secrets.token_urlsafe(32)
        full: dict[str, str] = {**_DEFAULT_CONF, "spark.jars.ivy": str(ivy_dir()), "spark.master": master,
                                "spark.app.name": "twh-connect", "spark.driver.memory": driver_memory,
                                "spark.connect.grpc.binding.address": "127.0.0.1",
                                "spark.connect.grpc.binding.port": str(port),
                                "spark.connect.authenticate.token": token}
        jars = _cached_jars()
        if not jars:
            raise InternalError("delta-spark's JARs are not resolved yet: run `make spark-jars`")
        full["spark.jars"] = jars
        s3a = s3a_classpath()
        if s3a:
            full["spark.driver.extraClassPath"] = s3a
            full["spark.executor.extraClassPath"] = s3a
            full["spark.hadoop.fs.s3.impl"] = "org.apache.hadoop.fs.s3a.S3AFileSystem"
        if auth_secret:
            full["spark.authenticate"] = "true"
            full["spark.authenticate.secret"] = auth_secret
        full.update(conf or {})
        full.update({f"spark.hadoop.{k}": v for k, v in (hadoop or {}).items()})
        props = root / "conf" / "connect.properties"
        env = _env(root, auth_secret)
        env["SPARK_DAEMON_MEMORY"] = driver_memory  # spark-submit sizes a Connect server as a daemon
        _private_file(props, _properties(full))
        argv = [str(spark_home() / "bin" / "spark-submit"), "--class",
                "org.apache.spark.sql.connect.service.SparkConnectServer", "--properties-file", str(props),
                "spark-internal"]
        server = cls(root, f"sc://localhost:{port}", token, _launch(root, "connect", argv, env))
        try:
            _wait_for([server.daemon], "Spark Connect server started", 1, timeout, "the Spark Connect server")
        except BaseException:
            server.stop()
            raise
        return server

    def stop(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()


# -- `make spark-cluster` / `make spark-cluster-stop`: a cluster for people, outliving this process ----
#: what ``up`` writes into its folder: the settings a warehouse needs to use the cluster (0600, the
#: secret is in it) and the daemons' process groups, for ``down``
ENV_FILE, PIDS_FILE, MASTER_FILE = "cluster.env", "pids", "master-url"


def _ours(pid: int) -> bool:
    """The process is still a Spark daemon (a recycled pid is never signalled)."""
    try:
        return b"org.apache.spark" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def down(root: Path) -> int:
    """Stop the daemons ``up`` started in ``root``; returns how many were running."""
    pids_file = Path(root) / PIDS_FILE
    pids = [int(p) for p in pids_file.read_text().split()] if pids_file.exists() else []
    live = [p for p in pids if _ours(p)]
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
        for pid in live:
            try:
                os.killpg(pid, sig)  # its own session (start_new_session): a worker's executors go too
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while any(_ours(p) for p in live) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not any(_ours(p) for p in live):
            break
    for name in (PIDS_FILE, ENV_FILE, MASTER_FILE):
        (Path(root) / name).unlink(missing_ok=True)
    return len(live)


def up(root: Path, *, workers: int = 2, connect: bool = False) -> dict[str, str]:
    """Start a standalone cluster (and, with ``connect``, a Connect server on it) that keeps running
    after this process exits; write its settings to ``root/cluster.env`` and its URL to ``root/master-url``."""
    root = Path(root).absolute()
    if (root / PIDS_FILE).exists() and any(_ours(int(p)) for p in (root / PIDS_FILE).read_text().split()):
        raise InternalError(f"a cluster started in {root} is still running: stop it first (make spark-cluster-stop)")
    cluster = StandaloneCluster.start(root, workers=workers)
    daemons = list(cluster.daemons)
    env = {"TWH_SPARK_MASTER": cluster.master_url, "TWH_SPARK_AUTH_SECRET": cluster.auth_secret}
    try:
        if connect:
            server = ConnectServer.start(root / "connect", master=cluster.master_url, conf=cluster.driver_conf(),
                                         auth_secret=cluster.auth_secret)
            assert server.daemon is not None
            daemons.append(server.daemon)
            env.update(TWH_SPARK_REMOTE=server.url, TWH_SPARK_CONNECT_TOKEN=server.token)
    except BaseException:
        cluster.stop()
        raise
    _private_file(root / PIDS_FILE, "".join(f"{d.proc.pid}\n" for d in daemons))
    _private_file(root / ENV_FILE, "".join(f"{k}={v}\n" for k, v in env.items()))
    _private_file(root / MASTER_FILE, cluster.master_url + "\n")
    return env


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sandbox.engines.spark_cluster",
                                     description="Start or stop a local Spark standalone cluster (loopback).")
    parser.add_argument("action", choices=("up", "down"))
    parser.add_argument("--root", type=Path, default=Path("var/spark-cluster"), help="its folder (logs, settings)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connect", action="store_true", help="also a Spark Connect server on it")
    args = parser.parse_args(argv)
    os.umask(0o077)
    if args.action == "down":
        n = down(args.root)
        print(f"stopped {n} Spark daemon(s) of {args.root}" if n else f"no Spark daemon of {args.root} was running")
        return 0
    env = up(args.root, workers=args.workers, connect=args.connect)
    print(f"Spark master at {env['TWH_SPARK_MASTER']} ({args.workers} workers); settings in {args.root / ENV_FILE}")
    if "TWH_SPARK_REMOTE" in env:
        print(f"Spark Connect server at {env['TWH_SPARK_REMOTE']} (token in {args.root / ENV_FILE})")
    print(f"use it: make demo ENGINE=spark TWH_SPARK_MASTER={env['TWH_SPARK_MASTER']}  "
          f"(or: set -a; . {args.root / ENV_FILE}; set +a)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
