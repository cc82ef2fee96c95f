"""A pinned, read-only view of one dataset's Delta table at one version.

The broker never queries "the table": it queries a :class:`Snapshot`, and the audit record names
the snapshot's version. Built by :mod:`sandbox.tables.storage`, consumed by :mod:`sandbox.gate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .uris import ObjectStore


@dataclass(frozen=True)
class Snapshot:
    dataset: str
    #: the Delta table's root: a local path (``file://`` URIs are resolved to paths) or an ``s3://`` URI
    table_path: str
    version: int
    #: the Parquet data files live at ``version``: absolute local paths, or ``s3://`` URIs
    files: tuple[str, ...]
    #: True when the version uses table features a plain Parquet scan would get wrong
    #: (deletion vectors, column mapping, partition columns): the engine must read it
    #: through the delta-rs dataset instead of scanning ``files``.
    needs_delta_reader: bool = False
    #: declared column names in order (the Arrow schema of the table)
    columns: tuple[str, ...] = ()
    #: the object store of an ``s3://`` table (its credentials: never shown, never compared)
    store: ObjectStore | None = field(default=None, repr=False, compare=False)

    @property
    def is_local(self) -> bool:
        return "://" not in self.table_path
