"""File modes: everything under the warehouse home is private to the user the warehouse runs as.

The raw tables, the incoming files, the catalog (export bytes, token hashes), the job folders,
the audit anchors: a world-readable home gave them to every local user. The entry points set
umask 077 (``sandbox.settings.use_private_umask``, through ``Settings.from_env`` and the facade),
and opening the warehouse makes a home that others can enter private, with an audit record.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def _open_to_others(root: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = Path(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & 0o077:
                found.append(f"{path.relative_to(root)} {stat.filemode(mode)}")
    return found


@pytest.mark.slow
def test_a_demo_warehouse_keeps_every_file_and_folder_private(tmp_path: Path) -> None:
    from sandbox.demo.scenario import JOBS, build_warehouse
    from sandbox.isolation.runner import check_sandbox_available

    check_sandbox_available()
    os.umask(0o022)  # what a shell gives: the warehouse must not depend on its caller's umask
    home = tmp_path / "wh"
    wh, c = build_warehouse(home, n_enterprises=300, say=lambda *a: None)  # register + ingest
    try:
        job = c["analyst"].submit_job(JOBS / "default_rate")  # a sandboxed job, its queries, an export
        job = c["tax_steward"].get_job(job["id"])  # the stewards' view (the analyst's is awaiting_review)
        assert job["state"] == "awaiting_approval", job["reason"]
        for steward in ("tax_steward", "bank_steward"):
            c[steward].decide_export(job["export"]["id"], "approve", "aggregates only")
        downloads = c["analyst"].download_export(job["export"]["id"], tmp_path / "downloads")
        c["auditor"].audit_verify()
    finally:
        wh.close()
    assert {p.name for p in home.iterdir()} >= {"catalog.db", "tables", "jobs", "incoming", "secrets"}
    assert len(list(home.rglob("*.parquet"))) >= 4 and list((home / "jobs").rglob("stdout.log"))
    assert _open_to_others(home) == []
    assert downloads and all(os.stat(p).st_mode & 0o077 == 0 for p in downloads)


def test_a_home_open_to_others_is_made_private_and_the_fix_is_audited(tmp_path: Path) -> None:
    from sandbox.warehouse import Warehouse

    home = tmp_path / "wh"
    home.mkdir()
    home.chmod(0o755)  # as a warehouse created before this rule was
    (home / "incoming").mkdir()
    wh = Warehouse.open(Settings(home=home))
    try:
        assert home.stat().st_mode & 0o777 == 0o700
        wh.users.bootstrap_admin()
        admin = wh.users.principal("admin")
        fixed = wh.audit_records(admin, action="warehouse.home_mode_fixed")
        assert [(r["object_id"], r["details"]) for r in fixed] == [("home", {"mode_was": "755", "mode_now": "700"})]
    finally:
        wh.close()
    wh = Warehouse.open(Settings(home=home))  # already private: nothing to fix, nothing recorded
    try:
        assert len(wh.audit_records(wh.users.principal("admin"), action="warehouse.home_mode_fixed")) == 1
    finally:
        wh.close()


def test_the_cli_creates_a_private_home_and_catalog(tmp_path: Path) -> None:
    # `twh db upgrade` does not open the facade: the entry point's settings set the umask.
    home = tmp_path / "wh"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(["/bin/sh", "-c", f'umask 022; exec "{sys.executable}" -m sandbox.interfaces.cli.main '
                           f'--home "{home}" db upgrade'], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "catalog.db").stat().st_mode & 0o777 == 0o600


def test_entry_point_settings_set_the_private_umask() -> None:
    code = ("import os; os.umask(0o022)\n"
            "from sandbox.settings import Settings\n"
            "Settings.from_env({'TWH_HOME': '/nonexistent-twh'})\n"
            "print(oct(os.umask(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout
    assert out.strip() == "0o77"
