"""Shared fixtures: a fresh warehouse per test, and users of every role."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.auth import Principal, Role
from sandbox.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "wh", job_wall_seconds=30, job_cpu_seconds=30)


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
