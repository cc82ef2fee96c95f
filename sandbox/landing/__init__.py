"""Landing: source → declared schema → data contract → one atomic Delta commit → catalog.

    wh.ingest.ingest(steward, "tax_payments", Path("tax.csv"))     # Ingest (.ingest)
    lineage.history(ctx, auditor, "tax_payments")                  # what each version is made of
    migrate.migrate(ctx, steward, name, new_manifest, renames, on_change)

Modules: :mod:`.plan` (a load's plan and idempotency key), :mod:`.staging` (spool to local Arrow
IPC), :mod:`.loads` (load modes → one commit), :mod:`.ingest` (the streaming path),
:mod:`.spark` (the Spark path for big CSV/Parquet files), :mod:`.migrate`, :mod:`.lineage`.
Errors: ``ValidationFailed`` (quarantined, nothing committed), ``InvalidInput``, ``Conflict``.

May import: datasets, context, auth, audit, catalog, tables, engines and the :mod:`connectors`
library; never the gate, jobs or the interfaces.
"""

__all__ = ["ingest", "lineage", "loads", "migrate", "plan", "spark", "staging"]
