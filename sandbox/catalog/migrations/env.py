"""Alembic environment: the catalog's metadata, and the connection :mod:`sandbox.catalog.schema` hands in.

Run through ``twh db upgrade`` (or :func:`sandbox.catalog.schema.upgrade`), never through the
``alembic`` command line: the connection (and its lock) comes from the application.
To add a revision after changing :mod:`sandbox.catalog.db`::

    .venv/bin/python -m sandbox.catalog.schema revision -m "what changed"
"""

from __future__ import annotations

from alembic import context

from sandbox.catalog.schema import target_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=target_metadata(),
    # SQLite cannot ALTER most things: batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
