"""The catalog's schema, managed by Alembic migrations (``sandbox/catalog/migrations/versions``).

Both backends go the same way: :func:`upgrade` runs the migrations up to the head, holding a
lock so that several processes opening the warehouse at once (workers, the API) never race
(``pg_advisory_xact_lock`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite). PostgreSQL runs the
whole upgrade in one transaction (transactional DDL).

    twh db upgrade      # what `Warehouse.open` does unless `auto_migrate` is off
    twh db current      # the revision the database is at, and the code's head

A catalog created before migrations existed (tables but no ``alembic_version``) is adopted:
missing tables are created and it is stamped at the head.

Changing :mod:`sandbox.catalog.db` needs a revision (``tests/catalog/test_schema.py`` fails until one
exists)::

    .venv/bin/python -m sandbox.catalog.schema revision -m "add the X table"
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..errors import SchemaOutOfDate
from . import products as _products  # noqa: F401 - the product tables join Base.metadata
from .db import Base, Database
from .readonly import head_from_files as _head_from_files

MIGRATIONS = Path(__file__).parent / "migrations"
#: arbitrary constant: the advisory lock key of schema upgrades on PostgreSQL
_PG_LOCK_KEY = 0x7477_6864_6200  # "twhdb"


def target_metadata() -> MetaData:
    return Base.metadata  # the models of sandbox.catalog.db and sandbox.catalog.products


def prepare(db: Database, *, migrate: bool = True) -> None:
    """Bring the catalog to the migration head (``migrate``), or check that it is there."""
    if is_current(db.engine):
        return
    if migrate:
        upgrade(db.engine)
    else:
        verify(db.engine)


def _config(connection: Connection | None = None) -> Any:
    from alembic.config import Config  # Alembic is imported only when a migration check is needed

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(_config()).get_heads()
    if len(heads) != 1:  # two revisions with the same parent: someone must merge them
        raise SchemaOutOfDate(f"the migrations have {len(heads)} heads; merge them (alembic merge)")
    return heads[0]


def current(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    # SQLite: engine.begin() already took the write lock (BEGIN IMMEDIATE, see sandbox.catalog.db).


def upgrade(engine: Engine, revision: str = "head") -> str:
    """Migrate the catalog to ``revision`` (default: the head); returns the revision reached."""
    try:
        return _upgrade(engine, revision)
    except SQLAlchemyError as exc:
        raise SchemaOutOfDate(f"the catalog database could not be migrated ({type(exc).__name__})") from exc


def _upgrade(engine: Engine, revision: str) -> str:
    from alembic import command
    from alembic.migration import MigrationContext

    with engine.begin() as conn:
        _lock(conn)
        ctx = MigrationContext.configure(conn)
        if ctx.get_current_revision() is None and inspect(conn).has_table("audit_log"):
            # A catalog made by create_all before migrations existed: adopt it.
            target_metadata().create_all(conn, checkfirst=True)
            command.stamp(_config(conn), "head")
        else:
            command.upgrade(_config(conn), revision)
        return MigrationContext.configure(conn).get_current_revision() or ""


def is_current(engine: Engine) -> bool:
    """Cheap check (no Alembic import, one SELECT) that the catalog is at the head: every CLI
    command opens the warehouse, so the common case must cost milliseconds."""
    want = _head_from_files()
    if want is None:
        return False
    try:
        with engine.execution_options(twh_readonly=True).connect() as conn:
            have = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except SQLAlchemyError:
        return False
    return have == [want]


def verify(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the database is at the code's head."""
    at, want = current(engine), head()
    if at != want:
        raise SchemaOutOfDate(f"the catalog database is at revision {at or 'none'}, the code needs {want}: "
                              "run `twh db upgrade`", details={"current": at, "head": want})


def differences(engine: Engine) -> list[Any]:
    """What autogenerate sees between the models and the database (empty: they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(ctx, target_metadata())


def _revision(message: str) -> None:
    """Autogenerate a revision against a scratch SQLite catalog at the current head."""
    from alembic import command
    from alembic.script import ScriptDirectory

    from .db import make_engine

    existing = list(ScriptDirectory.from_config(_config()).walk_revisions())
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/scratch.db")
        if existing:
            upgrade(engine)
        with engine.begin() as conn:  # revision ids count up: 0001, 0002, ...
            command.revision(_config(conn), message=message, autogenerate=True, rev_id=f"{len(existing) + 1:04d}")
        engine.dispose()


if __name__ == "__main__":  # python -m sandbox.catalog.schema revision -m "message"
    if len(sys.argv) == 4 and sys.argv[1] == "revision" and sys.argv[2] == "-m":
        _revision(sys.argv[3])
    else:
        sys.exit('usage: python -m sandbox.catalog.schema revision -m "what changed"')
