"""A throwaway PostgreSQL cluster for the tests: ``initdb`` in a temporary folder, unix socket only.

    with PgCluster.start() as pg:
        url = pg.create_database("t1")                 # empty database
        url = pg.create_database("t2", template="tpl")  # a copy of a migrated template (fast)

The cluster listens on no TCP port (``listen_addresses = ''``): its socket lives in its own
folder, so parallel runs never collide. Durability is switched off (``fsync``,
``synchronous_commit``, ``full_page_writes``): the cluster is deleted at the end anyway.
When run as root the server runs as user ``postgres`` (PostgreSQL refuses to run as root).

The binaries come from the Debian package ``postgresql`` (``.ci/run`` installs it when missing);
``TWH_TEST_PG_BIN`` points elsewhere.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVER_SETTINGS = {
    "listen_addresses": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


def find_bin_dir() -> Path | None:
    explicit = os.environ.get("TWH_TEST_PG_BIN")
    if explicit:
        return Path(explicit)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class PgCluster:
    def __init__(self, bin_dir: Path, root: Path, user: str | None) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.socket_dir = root / "sock"
        self._user = user  # run the server as this OS user (None: as ourselves)

    # -- lifecycle ------------------------------------------------------------------------
    @classmethod
    @contextmanager
    def start(cls) -> Iterator[PgCluster]:
        bin_dir = find_bin_dir()
        if bin_dir is None or not (bin_dir / "initdb").exists():
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql, or set TWH_TEST_PG_BIN)")
        root = Path(tempfile.mkdtemp(prefix="twh-pg-"))
        user = "postgres" if os.geteuid() == 0 else None
        cluster = cls(bin_dir, root, user)
        try:
            cluster._init()
            yield cluster
        finally:
            cluster._stop()
            shutil.rmtree(root, ignore_errors=True)

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def _run(self, argv: list[str]) -> None:
        proc = subprocess.run(self._as_user(argv), capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")

    def _init(self) -> None:
        self.socket_dir.mkdir()
        os.chmod(self.root, 0o755)  # the test process (root) and the server (postgres) both use it
        if self._user:
            pw = pwd.getpwnam(self._user)
            for p in (self.root, self.socket_dir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"])
        opts = " ".join(f"-c {k}={v}" for k, v in SERVER_SETTINGS.items())
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", "-s",
                   "-l", str(self.root / "server.log"),
                   "-o", f"-k {self.socket_dir} {opts}", "start"])
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.execute("SELECT 1")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(self._as_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                          "-s", "stop"]), capture_output=True)

    # -- use ------------------------------------------------------------------------------
    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg  # imported here: SQLite-only runs never need it

        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname=database, autocommit=True) as con:
            con.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        tpl = f" TEMPLATE {_ident(template)}" if template else ""
        self.execute(f"CREATE DATABASE {_ident(name)}{tpl}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")


def _ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"unsafe database name {name!r}")
    return '"' + name + '"'


# -- pytest fixtures (imported by tests/conftest.py) --------------------------------------------
import itertools  # noqa: E402

import pytest  # noqa: E402

#: the catalog backend the suite runs against: ``sqlite`` (default) or ``postgres``
#: (``--database postgres`` or ``TWH_TEST_DATABASE=postgres``)
DATABASE_OPTION = "--database"
TEMPLATE = "twh_template"
_names = itertools.count(1)


def add_option(parser: pytest.Parser) -> None:
    parser.addoption(DATABASE_OPTION, choices=("sqlite", "postgres"),
                     default=os.environ.get("TWH_TEST_DATABASE", "sqlite"),
                     help="catalog database the tests use (default: $TWH_TEST_DATABASE or sqlite)")


def backend(config: pytest.Config) -> str:
    return config.getoption(DATABASE_OPTION)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the whole session (fails, never skips, when missing)."""
    with PgCluster.start() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database with the catalog schema at the migration head: per-test databases copy it."""
    from sandbox.catalog import schema
    from sandbox.catalog.db import Database

    db = Database(pg_cluster.create_database(TEMPLATE))
    try:
        schema.prepare(db)
    finally:
        db.dispose()
    return TEMPLATE


@pytest.fixture
def pg_url(pg_cluster: PgCluster, pg_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database holding the migrated catalog schema, dropped after the test."""
    name = f"t{os.getpid()}_{next(_names)}"
    url = pg_cluster.create_database(name, template=pg_template)
    yield url
    pg_cluster.drop_database(name)


@pytest.fixture
def catalog_url(request: pytest.FixtureRequest) -> str:
    """The catalog URL tests should use: '' (SQLite in the warehouse home) or a fresh PG database."""
    if backend(request.config) == "postgres":
        return request.getfixturevalue("pg_url")
    return ""


def select_catalog_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, run only the tests that use the catalog (the rest would just
    repeat the SQLite pass), less those marked ``sqlite_pass`` (minutes of Spark for a catalog use
    that other tests of the pass already make)."""
    if backend(config) != "postgres":
        return
    def kept(i: pytest.Item) -> bool:
        return "catalog_url" in getattr(i, "fixturenames", ()) and i.get_closest_marker("sqlite_pass") is None

    keep = [i for i in items if kept(i)]
    drop = [i for i in items if not kept(i)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
