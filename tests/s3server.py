"""A throwaway S3-compatible server for the tests: s3proxy (Apache-2.0) on loopback, filesystem backend.

    with S3Server.start() as s3:
        bucket = s3.bucket("twh-t1")                 # a fresh, empty bucket
        settings = Settings(home=..., **s3.settings(bucket))

The JAR (``org.gaul:s3proxy:2.6.0``, ``jar-with-dependencies``) is fetched once by ``make spark-jars``
into ``<venv>/share/twh-jars``; nothing is downloaded here. Its credentials are random per run and
live in a 0600 properties file (never on the command line). s3proxy does not honour
``If-None-Match: *`` (tests/tables/test_object_storage.py shows it): the warehouse's commit lock
serialises Delta writers instead. One server serves a whole pytest session (a JVM start is ~3 s).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

S3PROXY_JAR = "s3proxy-2.6.0-jar-with-dependencies.jar"


def jar_path() -> Path:
    from sandbox.engines.spark import jars_dir

    return jars_dir() / S3PROXY_JAR


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    def __init__(self, root: Path, endpoint: str, access_key: str, secret_key: str, proc: subprocess.Popen) -> None:
        self.root = root
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.proc = proc
        self._n = 0

    @classmethod
    @contextmanager
    def start(cls, timeout: float = 120.0) -> Iterator[S3Server]:
        jar = jar_path()
        if shutil.which("java") is None:
            pytest.skip("object-storage tests need Java (apt-get install openjdk-17-jre-headless)")
        if not jar.is_file():
            raise RuntimeError(f"{jar} is missing: run `make spark-jars` (it fetches s3proxy from Maven Central)")
        root = Path(tempfile.mkdtemp(prefix="twh-s3-"))
        data = root / "data"
        data.mkdir()
        port = _port()
        key, secret = "twh" + secrets.token_hex(6), secrets.token_urlsafe(24)
        props = root / "s3proxy.properties"
        fd = os.open(props, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"s3proxy.endpoint=http://127.0.0.1:{port}\ns3proxy.authorization=aws-v2-or-v4\n"
                     f"s3proxy.identity={key}\ns3proxy.credential={secret}\njclouds.provider=filesystem\n"
                     f"jclouds.filesystem.basedir={data}\n")
        log = open(root / "s3proxy.log", "wb")
        proc = subprocess.Popen(["java", "-Xmx192m", "-XX:+UseSerialGC", "-jar", str(jar), "--properties", str(props)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        server = cls(root, f"http://127.0.0.1:{port}", key, secret, proc)
        try:
            deadline = time.monotonic() + timeout
            while b"Started Server" not in (root / "s3proxy.log").read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("s3proxy did not start: " + (root / "s3proxy.log").read_text()[-2000:])
                time.sleep(0.1)
            yield server
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            log.close()
            shutil.rmtree(root, ignore_errors=True)

    def bucket(self, prefix: str = "twh") -> str:
        """A fresh, empty bucket (the filesystem backend keeps one folder per bucket)."""
        self._n += 1
        name = f"{prefix}-{os.getpid()}-{self._n}-{secrets.token_hex(3)}"
        (self.root / "data" / name).mkdir()
        return name

    def store(self) -> Any:
        from sandbox.tables.uris import ObjectStore

        return ObjectStore(access_key_id=self.access_key, secret_access_key=self.secret_key, endpoint=self.endpoint)

    def settings(self, bucket: str, prefix: str = "wh") -> dict[str, Any]:
        """Settings fields for a warehouse whose tables live in ``bucket``."""
        return {"storage_uri": f"s3://{bucket}/{prefix}", "s3_endpoint": self.endpoint,
                "s3_access_key_id": self.access_key, "s3_secret_access_key": self.secret_key}

    def env(self, bucket: str, prefix: str = "wh") -> dict[str, str]:
        """The same as environment variables (for `twh` processes)."""
        return {"TWH_STORAGE_URI": f"s3://{bucket}/{prefix}", "TWH_S3_ENDPOINT": self.endpoint,
                "TWH_S3_ACCESS_KEY_ID": self.access_key, "TWH_S3_SECRET_ACCESS_KEY": self.secret_key}

    def objects(self, bucket: str) -> list[str]:
        base = self.root / "data" / bucket
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server for the pytest run (JVM start ~3 s)."""
    with S3Server.start() as server:
        yield server
