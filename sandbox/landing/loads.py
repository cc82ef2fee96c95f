"""Load modes: how a validated stream of batches becomes one Delta commit.

===========  ==========================================================================
append       add the rows (the default)
overwrite    replace every row of the table in one commit (stewards and admins only,
             like every load; older versions stay readable for replay until vacuum)
merge        upsert on ``load.keys`` (deltalake merge): matching rows are updated, new rows
             inserted; a key twice in one load, or a null key, is refused
incremental  only rows whose ``load.watermark`` column is above the last committed
             watermark land; the new watermark is recorded in the commit metadata
             (``twh.watermark``, ``twh.watermark_column``)
===========  ==========================================================================

Every mode writes exactly one commit carrying the load id (``twh.load_id``) and a Delta
application transaction, so a load can never land twice. Append and overwrite can also go in two
steps (:meth:`LoadWriter.stage`, then :meth:`LoadWriter.commit`; :mod:`sandbox.tables.staged`),
for a load whose id is known only once its last row was read.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..datasets.sources import LoadBlock, LoadMode
from ..errors import InvalidInput
from ..tables import staged as two_step
from ..tables import storage
from ..tables.record_keys import keyed_schema, with_record_keys
from ..tables.uris import Location
from .staging import Staged


class NothingToLoad(Exception):
    """The source had no rows to land (an empty file, or an overwrite with nothing)."""


@dataclass
class WriteResult:
    version: int
    lineage: dict[str, Any] = field(default_factory=dict)


def _encode(value: Any) -> str:
    """A watermark value as stored in the commit metadata (ISO text for dates and times)."""
    return value.isoformat() if hasattr(value, "isoformat") else repr(value) if isinstance(value, float) else str(value)


def _decode(text: str, t: pa.DataType) -> pa.Scalar:
    if pa.types.is_timestamp(t):
        return pa.scalar(datetime.fromisoformat(text), t)
    if pa.types.is_date(t):
        return pa.scalar(date.fromisoformat(text), t)
    if pa.types.is_floating(t):
        return pa.scalar(float(text), t)
    return pa.scalar(int(text), t)


#: batches read, converted and validated ahead of the Delta writer (each is one CSV block)
PREFETCH_DEPTH = 2
#: Parquet file size the Delta writer aims at; it buffers about one file, so this (not the size
#: of the load) bounds its memory
TARGET_FILE_SIZE = 64 << 20
_END = object()


def _with_keys(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Each batch with fresh record keys; closing this closes ``batches`` (see :func:`prefetched`)."""
    try:
        for b in batches:
            yield with_record_keys(b)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def prefetched(batches: Iterator[pa.RecordBatch], depth: int = PREFETCH_DEPTH) -> Iterator[pa.RecordBatch]:
    """``batches`` produced in a thread, at most ``depth`` ahead of the consumer.

    Reading, converting and validating (pyarrow's CSV parser and compute kernels release the GIL)
    overlap with the Delta writer encoding Parquet, and memory stays bounded by the queue. An
    exception in the producer is re-raised, unchanged, in the consumer; when the consumer stops
    early the producer is told to stop and the source generator is closed in its own thread."""
    q: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put((batch, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put((None, exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="twh-load-reader", daemon=True)
    worker.start()
    try:
        while True:
            batch, error = q.get()
            if error is not None:
                raise error
            if batch is _END:
                return
            yield batch
    finally:
        stop.set()
        worker.join()


class LoadWriter:
    """Writes one load in one mode; for incremental loads also filters rows by the watermark."""

    def __init__(self, table: Location, mode: LoadMode, load: LoadBlock) -> None:
        self.table = table
        self.mode = mode
        self.load = load
        self.previous_watermark: str | None = None
        self.new_watermark: Any = None
        if mode is LoadMode.INCREMENTAL:
            self.previous_watermark = storage.last_watermark(table, load.watermark or "")

    def incremental_filter(self) -> Callable[[pa.RecordBatch], pa.RecordBatch] | None:
        """For incremental loads: keep rows above the last watermark, tracking the new maximum."""
        if self.mode is not LoadMode.INCREMENTAL:
            return None
        column = self.load.watermark or ""

        def keep(batch: pa.RecordBatch) -> pa.RecordBatch:
            values = batch.column(column)
            if values.null_count:
                raise InvalidInput(f"the watermark column {column!r} has empty values: an incremental load cannot "
                                   "place them; nothing was committed", details={"column": column})
            if self.previous_watermark is not None:
                batch = batch.filter(pc.greater(values, _decode(self.previous_watermark, values.type)))
            if batch.num_rows:
                top = pc.max(batch.column(column)).as_py()
                if self.new_watermark is None or top > self.new_watermark:
                    self.new_watermark = top
            return batch

        return keep

    @staticmethod
    def _keyed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """The batches, read ahead in a thread, each row with a fresh secret record key.

        The keys are drawn in the read-ahead thread: the thread that pulls from here is the Delta
        writer's, which is the load's critical path (it is busy from its start to the end of the
        load, while the reader finishes early; ARCHITECTURE.md, "The writer is now the critical
        path")."""
        rows = 0
        for b in prefetched(_with_keys(batches), PREFETCH_DEPTH):
            rows += b.num_rows
            yield b
        if rows == 0:
            raise NothingToLoad("no data rows")

    def stage(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> two_step.StagedParts:
        """Append or overwrite, step one: the Parquet parts, in no version (see :meth:`commit`)."""
        if self.mode not in (LoadMode.APPEND, LoadMode.OVERWRITE):
            raise InvalidInput(f"a {self.mode.value} load cannot be staged")
        return two_step.stage(self.table, self._keyed(batches), keyed_schema(schema),
                            target_file_size=TARGET_FILE_SIZE)

    def commit(self, parts: two_step.StagedParts, metadata: dict[str, str]) -> WriteResult:
        """Step two: one commit adding the staged parts under ``metadata`` (the load id)."""
        mode = "overwrite" if self.mode is LoadMode.OVERWRITE else "append"
        return WriteResult(two_step.commit(self.table, parts, metadata=metadata, mode=mode))

    def write(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema, metadata: dict[str, str], *,
              staged: Staged | None = None) -> WriteResult:
        schema = keyed_schema(schema)  # every row lands with a fresh secret record key

        def counted() -> Iterator[pa.RecordBatch]:
            return self._keyed(batches)

        meta = dict(metadata)
        lineage: dict[str, Any] = {}
        if self.mode is LoadMode.INCREMENTAL:
            if self.new_watermark is None:
                raise NothingToLoad("no rows above the last watermark")
            meta["twh.watermark_column"] = self.load.watermark or ""
            meta[storage.WATERMARK_KEY] = _encode(self.new_watermark)
            lineage["watermark"] = {"column": self.load.watermark, "previous": self.previous_watermark,
                                    "new": meta[storage.WATERMARK_KEY]}
        if self.mode is LoadMode.MERGE:
            version, counts = storage.merge_batches(self.table, counted(), schema, keys=list(self.load.keys),
                                                    metadata=meta)
            lineage["merge"] = {"keys": list(self.load.keys), **counts}
            return WriteResult(version, lineage)
        mode = "overwrite" if self.mode is LoadMode.OVERWRITE else "append"
        version = storage.write_batches(self.table, counted(), schema, metadata=meta, mode=mode,
                                        target_file_size=TARGET_FILE_SIZE)
        return WriteResult(version, lineage)
