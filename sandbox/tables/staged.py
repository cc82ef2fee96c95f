"""A load written in two steps: its Parquet parts first, in the table's location but in no
version, then ONE commit that adds them. The commit can then carry what is known only once the
last row was read: the load id that a one-pass source's hash gives (:mod:`connectors.csv`,
``hash_first=False``), so the file is read once instead of hashed first and parsed after.

    parts = staged.stage(table, batches, schema, target_file_size=...)     # no version names them
    version = staged.commit(table, parts, metadata={...}, mode="append")   # or staged.discard(table, parts)

How: delta-rs writes the parts into a fresh folder ``load-<random hex>/`` under the table, as a
small Delta table of its own. The files, their statistics and the writer's settings are thus
exactly those of a direct ``write_deltalake``. :func:`commit` then adds the same files, by their
paths under the table, with ``DeltaTable.create_write_transaction``. This is the same single atomic
commit as :func:`storage.write_batches`, with the same ``commitInfo`` metadata, the same
application transaction (a load lands once) and the operation metrics the staging write counted.
The folder's own ``_delta_log`` is removed after the commit.

Until the commit no version names the parts. A crash leaves orphans that ``vacuum`` removes, as a
crash inside ``write_deltalake`` does, and :func:`discard` removes them at once (local tables; see
:func:`_remove`). The folder name is random, never derived from data or from a user's text.
"""

from __future__ import annotations

import itertools
import json
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
from deltalake import CommitProperties, Transaction, write_deltalake
from deltalake.transaction import AddAction

from ..errors import InternalError
from . import objects
from .storage import (
    LOAD_ID_KEY,
    Where,
    _Batches,
    _check_schema,
    _committed,
    _loc,
    _open,
    _prepare,
    _target,
    _translate_write_error,
    _writer_properties,
)
from .uris import Location

#: the staged folder's name: this prefix and 16 random hex digits
STAGE_PREFIX = "load-"
_FIRST_COMMIT = "00000000000000000000.json"


@dataclass(frozen=True)
class StagedParts:
    """Parquet parts written under a table's location, in no version of it yet."""

    #: the folder under the table's root holding them
    folder: str
    actions: tuple[AddAction, ...]
    #: the staging write's own metrics (rows and files added)
    metrics: Mapping[str, int]

    @property
    def rows(self) -> int:
        return int(self.metrics.get("num_added_rows", 0))


def _remove(folder: Location) -> None:
    """Local folders only. On object storage the parts stay as orphans that no version names
    (vacuum removes them), as after a failed ``write_deltalake``: delta-rs deletes objects with
    S3's multi-object delete, which the test store (s3proxy 2.6) refuses, so a removal here
    could not be tested; the warehouse stages loads only into local tables for now."""
    if folder.is_local:
        shutil.rmtree(folder.path, ignore_errors=True)


def stage(path: Where, batches: Iterable[pa.RecordBatch], schema: pa.Schema, *,
          target_file_size: int | None = None) -> StagedParts:
    """Write all batches as Parquet parts under the table, in no version. An exception raised by
    the batches (a connector's ``SourceError``, a failed contract) propagates unchanged, and
    whatever was written is removed."""
    loc = _loc(path)
    _check_schema(_open(loc), schema)
    name = STAGE_PREFIX + secrets.token_hex(8)
    folder = loc.child(name)
    feed = _Batches(batches, schema)
    try:
        rest = iter(feed)
        first = next(rest, None)  # the writer's settings look at the first batch (storage._writer_properties)
        reader = pa.RecordBatchReader.from_batches(schema, rest if first is None else itertools.chain([first], rest))
        write_deltalake(_target(folder), reader, mode="error", target_file_size=target_file_size,
                        writer_properties=_writer_properties(schema, first), storage_options=loc.delta_options())
        log = objects.read(folder.child("_delta_log", _FIRST_COMMIT))
        if log is None:
            raise InternalError("the staged parts' log was not written")
        actions, metrics = _parse_log(log, name)
    except BaseException as exc:
        _remove(folder)
        translated = _translate_write_error(exc, feed, "(staged)")
        if translated is exc:
            raise
        raise translated from (None if feed.error is not None else exc)
    return StagedParts(folder=name, actions=actions, metrics=metrics)


def _parse_log(log: bytes, folder: str) -> tuple[tuple[AddAction, ...], dict[str, int]]:
    actions: list[AddAction] = []
    metrics: dict[str, int] = {}
    for line in log.decode().splitlines():
        entry = json.loads(line) if line.strip() else {}
        if "add" in entry:
            add = entry["add"]
            actions.append(AddAction(path=f"{folder}/{add['path']}", size=int(add["size"]),
                                     partition_values=add.get("partitionValues") or {},
                                     modification_time=int(add["modificationTime"]), data_change=True,
                                     stats=add.get("stats") or ""))
        elif "commitInfo" in entry:
            found = entry["commitInfo"].get("operationMetrics") or {}
            metrics = {k: int(found[k]) for k in ("num_added_files", "num_added_rows") if k in found}
    return tuple(actions), metrics


def commit(path: Where, parts: StagedParts, *, metadata: Mapping[str, str], mode: str = "append") -> int:
    """Commit the staged parts as ONE Delta commit carrying ``metadata`` (it must hold
    ``twh.load_id``) and the load's application transaction; its version. A load id already
    committed raises :class:`Conflict`, as :func:`storage.write_batches` does. Whenever the commit
    did not land, the parts are discarded before the error propagates."""
    if mode not in ("append", "overwrite"):
        raise InternalError(f"unknown write mode {mode!r}")
    loc = _loc(path)
    try:
        dt, meta, app_id = _prepare(loc, None, metadata)
    except BaseException:
        discard(loc, parts)  # nothing was attempted: the load id is already in the table, or the table is gone
        raise
    load_id = meta[LOAD_ID_KEY]
    removed = len(dt.file_uris()) if mode == "overwrite" else 0
    metrics = {"num_added_files": len(parts.actions), "num_removed_files": removed, **parts.metrics}
    properties = CommitProperties(custom_metadata={**meta, "operationMetrics": metrics},
                                  app_transactions=[Transaction(app_id=app_id, version=1)])
    try:
        dt.create_write_transaction(list(parts.actions), mode=mode, schema=dt.schema(), commit_properties=properties)
    except BaseException as exc:
        landed = _landed(loc, parts)  # an answer lost after the commit landed: it stands, files and all
        if landed is not True:
            if landed is False:
                discard(loc, parts)
            translated = _translate_write_error(exc, None, load_id)
            if translated is exc:
                raise
            raise translated from exc
    _remove(loc.child(parts.folder, "_delta_log"))
    return _committed(loc, load_id)


def _landed(loc: Location, parts: StagedParts) -> bool | None:
    """Whether the latest version names the parts; None when the table cannot be read (then the
    parts are kept: vacuum removes them if they are orphans)."""
    try:
        live = _open(loc).get_add_actions(flatten=True).column("path").to_pylist()
        return bool(parts.actions) and parts.actions[0].path in set(live)
    except Exception:  # noqa: BLE001 - cannot tell
        return None


def discard(path: Where, parts: StagedParts) -> None:
    """Remove staged parts that will not be committed (the load was already in the table)."""
    _remove(_loc(path).child(parts.folder))
