"""Shared fixtures: a fresh warehouse per test, and users of every role."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The catalog backend (SQLite, or PostgreSQL with `--database postgres` / TWH_TEST_DATABASE=postgres):
from pg import add_option, catalog_url, pg_cluster, pg_template, pg_url, select_catalog_tests  # noqa: E402,F401

# Object storage (s3proxy on loopback), one server per run:
from s3server import s3_server  # noqa: E402,F401

# A Spark standalone cluster and a Spark Connect server, one each per run (tests/spark_cluster.py):
from spark_cluster import AUTH_ENV, MASTER_ENV, spark_cluster, spark_connect  # noqa: E402,F401
from spark_cluster import SPARK_TEST_MASTER as _SPARK_TEST_MASTER  # noqa: E402

# Local mode's warm per-home server (sandbox.interfaces.cli.local_server) is off in the tests: a
# CLI test runs in its own process as before and none leaves a server behind. The tests of that
# server turn it on; TWH_TEST_LOCAL_SERVER=auto runs every CLI test through it.
os.environ["TWH_LOCAL_SERVER"] = os.environ.get("TWH_TEST_LOCAL_SERVER", "off")

from sandbox.auth import Principal, Role  # noqa: E402
from sandbox.settings import Settings  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    add_option(parser)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    select_catalog_tests(config, items)


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str) -> Settings:
    return Settings(home=tmp_path / "wh", database_url=catalog_url, job_wall_seconds=30, job_cpu_seconds=30)


@pytest.fixture
def wh(settings: Settings):
    from sandbox.warehouse import Warehouse  # imported late: collecting leaf-library tests stays light

    w = Warehouse.open(settings)
    yield w
    w.close()


@pytest.fixture
def admin(wh) -> Principal:
    wh.users.bootstrap_admin()
    return wh.users.principal("admin")


@pytest.fixture
def people(wh, admin: Principal) -> dict[str, Principal]:
    """A steward per demo dataset, two enterprise tenants and an auditor."""
    for name, role, tenant in [
        ("tax_steward", "steward", "tax_bureau"),
        ("hrss_steward", "steward", "hrss"),
        ("bank_steward", "steward", "bank_a"),
        ("analyst", "enterprise", "bank_a"),
        ("rival", "enterprise", "bank_b"),
        ("auditor", "auditor", "regulator"),
    ]:
        wh.users.add(admin, name, role, tenant)
    return {n: wh.users.principal(n) for n in
            ("admin", "tax_steward", "hrss_steward", "bank_steward", "analyst", "rival", "auditor")}


@pytest.fixture
def enterprise() -> Principal:
    return Principal("analyst", Role.ENTERPRISE, "bank_a")


#: see tests/spark_cluster.py (import it from there: several conftest modules exist)
SPARK_TEST_MASTER = _SPARK_TEST_MASTER


@pytest.fixture(scope="session")
def spark():
    """One SparkSession with Delta Lake for the whole pytest run (pyspark + delta-spark required)."""
    try:
        import delta  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError:
        pytest.skip("pyspark/delta-spark not installed: pip install 'training-warehouse[spark]'")
    from sandbox.engines.spark import get_session, stop_session

    session = get_session(SPARK_TEST_MASTER, auth_secret=os.environ.get(AUTH_ENV, ""))
    yield session
    stop_session()
