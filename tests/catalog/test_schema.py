"""The catalog schema is what the Alembic migrations make, on SQLite and on PostgreSQL.

If this file fails after you changed ``sandbox/catalog/db.py``: add a revision
(``.venv/bin/python -m sandbox.catalog.schema revision -m "what changed"``) and review it.
"""

from __future__ import annotations

import threading

import pytest
from alembic import command
from sqlalchemy import inspect, text

from sandbox.catalog import schema
from sandbox.catalog.db import Database, make_engine
from sandbox.errors import SchemaOutOfDate
from sandbox.warehouse import Warehouse


@pytest.fixture
def fresh_url(tmp_path, catalog_url, pg_cluster_if_used) -> str:
    """An empty database of the backend under test (the warehouse fixture's is already migrated)."""
    if pg_cluster_if_used is None:
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"fresh_{tmp_path.name[-20:].replace('-', '_')}"
    url = pg_cluster_if_used.create_database(name)
    yield url
    pg_cluster_if_used.drop_database(name)


@pytest.fixture
def pg_cluster_if_used(request, catalog_url):
    return request.getfixturevalue("pg_cluster") if catalog_url else None


def test_models_and_migration_head_agree(fresh_url):
    engine = make_engine(fresh_url)
    try:
        assert schema.upgrade(engine) == schema.head()
        diff = schema.differences(engine)
        assert diff == [], f"sandbox/catalog/db.py and the migrations differ; add a revision: {diff}"
    finally:
        engine.dispose()


def test_a_model_change_without_a_revision_is_found(fresh_url, monkeypatch):
    """The check above can fail: a column only the models have shows up."""
    from sqlalchemy import Column, Integer

    from sandbox.catalog.db import Base

    engine = make_engine(fresh_url)
    try:
        schema.upgrade(engine)
        extra = Column("twh_test_extra", Integer, nullable=True)
        Base.metadata.tables["users"].append_column(extra)
        try:
            diff = schema.differences(engine)
        finally:
            Base.metadata.tables["users"]._columns.remove(extra)
        assert any(d[0] == "add_column" and d[3].name == "twh_test_extra" for d in diff)
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_seeds_the_audit_head(fresh_url):
    engine = make_engine(fresh_url)
    try:
        assert schema.upgrade(engine) == schema.upgrade(engine) == schema.head()
        with engine.connect() as conn:
            assert conn.execute(text("SELECT seq, hash FROM audit_head WHERE id = 1")).one() == (0, "0" * 64)
    finally:
        engine.dispose()


def test_concurrent_upgrades_do_not_race(fresh_url):
    """Workers and the API may open a new catalog at the same moment."""
    errors: list[BaseException] = []

    def go() -> None:
        engine = make_engine(fresh_url)
        try:
            schema.upgrade(engine)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    engine = make_engine(fresh_url)
    assert schema.current(engine) == schema.head()
    engine.dispose()


def test_an_old_schema_is_refused_without_auto_migrate_and_upgraded_with_it(settings, fresh_url):
    engine = make_engine(fresh_url)
    with engine.begin() as conn:
        command.upgrade(schema._config(conn), "0001")
    engine.dispose()
    st = settings.model_copy(update={"database_url": fresh_url, "auto_migrate": False})
    with pytest.raises(SchemaOutOfDate):
        Warehouse.open(st)
    wh = Warehouse.open(st.model_copy(update={"auto_migrate": True}))
    try:
        assert schema.current(wh.db.engine) == schema.head()
        assert "kind" in {c["name"] for c in inspect(wh.db.engine).get_columns("jobs")}
    finally:
        wh.close()


def test_a_catalog_made_before_migrations_is_adopted(fresh_url):
    db = Database(fresh_url)
    try:
        db.create_all()  # how the foundation made catalogs
        schema.prepare(db)
        assert schema.current(db.engine) == schema.head()
        assert schema.differences(db.engine) == []
    finally:
        db.dispose()


def test_the_fast_head_check_agrees_with_alembic(fresh_url):
    """Opening a warehouse skips Alembic when the file names say the catalog is at the head."""
    assert schema._head_from_files() == schema.head()
    engine = make_engine(fresh_url)
    try:
        assert not schema.is_current(engine)  # empty database
        schema.upgrade(engine, "0001")
        assert not schema.is_current(engine)
        schema.upgrade(engine)
        assert schema.is_current(engine)
    finally:
        engine.dispose()
