"""How trusted code reads one pinned snapshot: exactly its files, or delta-rs pinned at its version.

    source, files = snapshot_source(con, snap, "__twh_src_0")   # a FROM clause and the files it reads
    con.execute(f"CREATE VIEW v AS SELECT {cols} FROM {source}")

Every reader of warehouse data (the gate's views, DP bounding, the differencing guard's unit
dictionary, the synthesiser) goes through :func:`snapshot_source`. Errors: ``InternalError``
(a snapshot that cannot be opened, or lacks a declared column); no message names a host path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InternalError, QueryRefused
from ..tables.record_keys import RECORD_KEY
from ..tables.snapshot import Snapshot

if TYPE_CHECKING:
    import duckdb

    from .plan import QueryPlan

_GLOB_CHARS = set("*?[]{}")


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    # DuckDB string literals: standard SQL, backslashes are not escapes.
    return "'" + text.replace("'", "''") + "'"


def plain_files(snapshot: Snapshot) -> bool:
    """Whether read_parquet can take the snapshot's file list verbatim.

    read_parquet expands globs and URL schemes; a path with such characters is read through
    delta-rs instead, so that the engine reads exactly the pinned files.
    """
    return bool(snapshot.files) and all(
        f.startswith("/") and "://" not in f and "\x00" not in f and not (_GLOB_CHARS & set(f))
        for f in snapshot.files
    )


def columns_for(plan: QueryPlan, snapshot: Snapshot) -> tuple[str, ...]:
    wanted = plan.columns_of(snapshot.dataset)
    if snapshot.columns:
        present = {c.casefold() for c in snapshot.columns}
        missing = [c for c in wanted if c.casefold() not in present]
        if missing == [RECORD_KEY]:  # landed before record keys existed: no cell key, no release
            raise QueryRefused(
                f"the table version of {snapshot.dataset!r} (version {snapshot.version}) has no record keys; a "
                "steward re-lands it or migrates the dataset (`twh dataset migrate`) to add them",
                details={"rule": "record_keys", "dataset": snapshot.dataset, "version": snapshot.version})
        if missing:  # catalog and storage disagree: a bug or a schema change to look at
            raise InternalError(
                f"the snapshot of {snapshot.dataset!r} (version {snapshot.version}) lacks declared columns",
                details={"dataset": snapshot.dataset, "version": snapshot.version, "columns": missing},
            )
    # COUNT(*) with no column read still needs a relation with rows: keep one column.
    return wanted or (snapshot.columns[:1] if snapshot.columns else ())


def snapshot_source(con: duckdb.DuckDBPyConnection, snap: Snapshot, alias: str) -> tuple[str, tuple[str, ...]]:
    """A FROM source reading exactly ``snap``, and the files it reads.

    The fast path scans the pinned version's own Parquet files; otherwise the delta-rs dataset is
    registered on ``con`` as ``alias`` — always for ``s3://`` tables: DuckDB is never given a
    remote file or the store's credentials (its httpfs extension is neither installed nor loaded),
    delta-rs reads the objects with the credentials of ``Settings``. Trusted callers (the gate's views, DP bounding, the
    synthesiser) all read snapshots through this one function.
    """
    if not snap.needs_delta_reader and plain_files(snap):
        files = ", ".join(quote_str(f) for f in snap.files)
        return f"read_parquet([{files}], union_by_name = true, hive_partitioning = false)", tuple(snap.files)
    con.register(alias, delta_dataset(snap))
    return quote_ident(alias), ()


def delta_dataset(snap: Snapshot) -> Any:
    import deltalake  # imported here: only the slow path needs it

    try:
        options = snap.store.delta_options() if snap.store is not None else None
        return deltalake.DeltaTable(snap.table_path, version=snap.version, storage_options=options).to_pyarrow_dataset()
    except Exception:
        # delta-rs messages name host paths: keep them out of the response.
        raise InternalError(
            f"the snapshot of {snap.dataset!r} at version {snap.version} could not be opened",
            details={"dataset": snap.dataset, "version": snap.version},
        ) from None
