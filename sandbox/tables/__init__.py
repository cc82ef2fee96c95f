"""Delta tables: one per dataset, one atomic commit per load, snapshots pinned by version.

    storage.create_table(path, schema)
    snap = storage.pin_snapshot(path, dataset, version)      # what a query reads, exactly
    uris.to_uri(path)                                        # locations are URIs in the catalog

Modules: :mod:`.storage` (delta-rs reads and writes), :mod:`.staged` (a load in two steps: its
parts in no version, then one commit), :mod:`.objects` (whole small objects
machines share: keys, the unit dictionary), :mod:`.snapshot` (the pinned, read-only view
every reader is given), :mod:`.uris` (storage locations). Errors: ``InvalidInput``, ``Conflict``,
``InternalError`` (delta-rs errors are translated here, without host paths).

May import: :mod:`sandbox.errors`. Never the catalog: the catalog says which version is current.
"""

__all__ = ["objects", "snapshot", "staged", "storage", "uris"]
