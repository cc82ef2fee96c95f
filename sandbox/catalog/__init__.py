"""The catalog database: what the warehouse knows about itself, in SQLAlchemy 2 models.

    db = Database(settings.catalog_url)
    schema.prepare(db)                       # Alembic to the head (SQLite or PostgreSQL)
    with db.transaction() as s: ...          # one unit of work; ``db.read()`` for reads

Modules: :mod:`.db` (models, engine, sessions), :mod:`.products` (the feature library, model
catalog, verification products, authorisations and per-subject uses), :mod:`.schema` (migrations; ``migrations/``
holds the revisions), :mod:`.states` (the allowed values and transitions of the jobs' and
exports' state columns), :mod:`.keys` (secret keys kept beside the catalog, never in it), :mod:`.readonly` (quick
read-only SQLite access for the CLI, without SQLAlchemy).
Errors: ``SchemaOutOfDate``, ``InvalidTransition``.

May import: :mod:`sandbox.errors` only. Everything that persists imports this wing; it imports
none of them.
"""

__all__ = ["db", "keys", "products", "readonly", "schema", "states"]
