"""``twh dataset list`` in local mode reads the catalog with sqlite3 (no SQLAlchemy, no facade):
it must list exactly what the facade lists, and step aside whenever opening the warehouse would
change or record something (a home others can enter, a catalog to migrate, another database)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from demo_homes import USERS, demo_home
from typer.testing import CliRunner

from sandbox.catalog.readonly import open_readonly, user
from sandbox.datasets.summary import list_readonly
from sandbox.errors import NotFound
from sandbox.interfaces.cli.main import app
from sandbox.settings import Settings
from sandbox.warehouse import Warehouse


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return demo_home(tmp_path / "wh", users=[*USERS, ("tax_chief", "steward", "tax_bureau"),
                                             ("bank_steward", "steward", "bank_a")],
                     datasets=[("tax_payments", "tax_steward"), ("enterprise_registry", "tax_steward"),
                               ("bank_loans", "bank_steward")])


def _facade(home: Path, who: str) -> list:
    wh = Warehouse.open(Settings(home=home))
    try:
        return wh.datasets.list(wh.users.principal(who))
    finally:
        wh.close()


def test_the_quick_read_lists_what_the_facade_lists(home: Path) -> None:
    conn = open_readonly(home, None)
    assert conn is not None
    try:
        for who in ("admin", "tax_steward", "analyst"):
            user(conn, who)
            assert list_readonly(conn) == _facade(home, who)
        with pytest.raises(NotFound, match="user 'nobody' does not exist"):
            user(conn, "nobody")
    finally:
        conn.close()
    r = CliRunner().invoke(app, ["--home", str(home), "--as", "analyst", "--json", "dataset", "list"])
    assert r.exit_code == 0 and json.loads(r.output) == _facade(home, "analyst")


def test_the_quick_read_cannot_write(home: Path) -> None:
    conn = open_readonly(home, None)
    assert conn is not None
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("DELETE FROM datasets")
    conn.close()


def test_a_home_others_can_enter_goes_through_the_facade_which_fixes_and_records_it(home: Path) -> None:
    home.chmod(0o755)
    assert open_readonly(home, None) is None
    r = CliRunner().invoke(app, ["--home", str(home), "--as", "analyst", "--json", "dataset", "list"])
    assert r.exit_code == 0 and len(json.loads(r.output)) == 3
    assert home.stat().st_mode & 0o777 == 0o700
    wh = Warehouse.open(Settings(home=home))
    try:
        audit = wh.audit_records(wh.users.principal("admin"), action="warehouse.home_mode_fixed")
    finally:
        wh.close()
    assert [a["details"]["mode_was"] for a in audit] == ["755"]


def test_a_catalog_behind_the_code_goes_through_the_facade(home: Path) -> None:
    with sqlite3.connect(home / "catalog.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '0004'")
    assert open_readonly(home, None) is None


def test_another_catalog_database_goes_through_the_facade(home: Path) -> None:
    assert open_readonly(home, "postgresql://somewhere/twh") is None
    assert open_readonly(home.parent / "no-such-home", None) is None


def test_an_unknown_user_gets_the_facade_s_error(home: Path) -> None:
    r = CliRunner().invoke(app, ["--home", str(home), "--as", "nobody", "dataset", "list"])
    assert r.exit_code == 2 and "error [not_found]: user 'nobody' does not exist" in r.output
