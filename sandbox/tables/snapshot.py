"""A pinned, read-only view of one dataset's Delta table at one version.

The broker never queries "the table": it queries a :class:`Snapshot`, and the audit record names
the snapshot's version. Built by :mod:`sandbox.tables.storage`, consumed by :mod:`sandbox.gate`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    dataset: str
    #: local filesystem path of the Delta table's root (``file://`` URIs are resolved to paths)
    table_path: str
    version: int
    #: absolute paths of the Parquet data files live at ``version``
    files: tuple[str, ...]
    #: True when the version uses table features a plain Parquet scan would get wrong
    #: (deletion vectors, column mapping, partition columns): the engine must read it
    #: through the delta-rs dataset instead of scanning ``files``.
    needs_delta_reader: bool = False
    #: declared column names in order (the Arrow schema of the table)
    columns: tuple[str, ...] = ()
