"""One landed warehouse per module (firms + loans, as in the e2e tests: landing is the slow part),
and per test a Syft data owner / data scientist pair over syft-rds's own in-process mock Drive
transport (no network)."""

from __future__ import annotations

import contextlib
import io

import pytest
from e2e.conftest import FIRMS, LOANS, write_data

DO_EMAIL = "warehouse@twh.test"
DS_EMAIL = "alice@bank-a.test"

__all__ = ["DO_EMAIL", "DS_EMAIL", "write_data"]


@pytest.fixture(scope="module")
def _landed_module(tmp_path_factory):
    from sandbox.datasets.manifest import parse_manifest
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    root = tmp_path_factory.mktemp("bridge")
    wh = Warehouse.open(Settings(home=root / "wh", job_wall_seconds=30, job_cpu_seconds=30))
    wh.users.bootstrap_admin()
    admin = wh.users.principal("admin")
    for name, role, tenant in [("tax_steward", "steward", "tax_bureau"), ("bank_steward", "steward", "bank_a"),
                               ("analyst", "enterprise", "bank_a"), ("rival", "enterprise", "bank_b"),
                               ("auditor", "auditor", "regulator")]:
        wh.users.add(admin, name, role, tenant)
    people = {n: wh.users.principal(n) for n in ("admin", "tax_steward", "bank_steward", "analyst", "rival", "auditor")}
    (root / "data").mkdir()
    firms, loans = write_data(root / "data")
    # Without expectations: Great Expectations (the slow part of landing) is not what is tested here.
    wh.datasets.register(people["tax_steward"], parse_manifest({**FIRMS, "expectations": []}))
    wh.datasets.register(people["bank_steward"], parse_manifest({**LOANS, "expectations": []}))
    wh.ingest.ingest(people["tax_steward"], "firms", firms)
    wh.ingest.ingest(people["bank_steward"], "loans", loans)
    yield wh, people
    wh.close()


@pytest.fixture
def landed(_landed_module):
    return _landed_module[0]


@pytest.fixture
def people(_landed_module):
    return _landed_module[1]


@pytest.fixture
def syft_home(tmp_path):
    """This test's data-owner side (datasite, syft's event cache, the bridge's ledger)."""
    return tmp_path / "warehouse-syft"


@pytest.fixture
def syft_pair(syft_home, tmp_path):
    """(ds, do): syft-rds clients sharing one mock Drive."""
    rds = pytest.importorskip("syft_rds")
    with contextlib.redirect_stdout(io.StringIO()):
        ds, do = rds.SyftRDSClient.pair_with_mock_drive_service_connection(
            email1=DO_EMAIL, email2=DS_EMAIL, base_path1=syft_home / "datasite",
            base_path2=tmp_path / "alice" / "SyftBox", use_in_memory_cache=False, sync_automatically=False)
    return ds, do
