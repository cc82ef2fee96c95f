"""Small warehouse homes for tests that run ``twh`` against one: users, demo datasets, an empty job.

    home = demo_home(tmp_path / "wh", users=[("analyst", "enterprise", "bank_a")],
                     datasets=[("enterprise_registry", "tax_steward")])
    job = empty_job(tmp_path / "job", ["enterprise_registry"])
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

DEMO_MANIFESTS = Path(__file__).resolve().parents[1] / "sandbox" / "demo" / "manifests"
#: the stewards of the demo datasets and the users most tests act as
USERS = (("tax_steward", "steward", "tax_bureau"), ("analyst", "enterprise", "bank_a"))


def demo_home(home: Path, *, users: Iterable[tuple[str, str, str]] = USERS,
              datasets: Iterable[tuple[str, str]] = (("enterprise_registry", "tax_steward"),)) -> Path:
    """A home with an admin, ``users`` (name, role, tenant) and the demo ``datasets`` (manifest
    name, the steward who registers it), closed again; ``home``."""
    from sandbox.datasets.manifest import load_manifest
    from sandbox.settings import Settings
    from sandbox.warehouse import Warehouse

    wh = Warehouse.open(Settings(home=home))
    try:
        wh.users.bootstrap_admin()
        admin = wh.users.principal("admin")
        for name, role, tenant in users:
            wh.users.add(admin, name, role, tenant)
        for manifest, steward in datasets:
            wh.datasets.register(wh.users.principal(steward), load_manifest(DEMO_MANIFESTS / f"{manifest}.yaml"))
    finally:
        wh.close()
    return home


def empty_job(folder: Path, datasets: Iterable[str]) -> Path:
    """A job folder whose code does nothing, for credit_risk over ``datasets``; ``folder``."""
    folder.mkdir()
    (folder / "job.yaml").write_text(f"name: empty\npurpose: credit_risk\ndatasets: [{', '.join(datasets)}]\n")
    (folder / "job.py").write_text("pass\n")
    return folder
