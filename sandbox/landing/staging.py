"""Staging: a source's converted batches spooled to a local Arrow IPC file before they land.

Used for sources that are not a local file (``sql``, ``http``: their content is only known once
read, so the load id — a hash of the content — can be computed before the commit, and a source
that changes while it is read fails before anything is written) and for incremental loads (the
new watermark must be known before the commit that records it). Memory stays bounded: batches
are written as they come and read back memory-mapped.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc


@dataclass
class Staged:
    path: Path
    schema: pa.Schema
    sha256: str
    rows: int

    def batches(self) -> Iterator[pa.RecordBatch]:
        with pa.memory_map(str(self.path)) as source:
            reader = ipc.open_file(source)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def stage(directory: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch],
          transform: Callable[[pa.RecordBatch], pa.RecordBatch] | None = None) -> Staged:
    """Write ``batches`` (optionally transformed, e.g. filtered) to an IPC file; hash what was kept."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="stage-", suffix=".arrow", dir=directory)
    os.close(fd)
    path = Path(name)
    rows = 0
    try:
        with pa.OSFile(str(path), "wb") as sink, ipc.new_file(sink, schema) as writer:
            for batch in batches:
                if transform is not None:
                    batch = transform(batch)
                if batch.num_rows:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        h = hashlib.sha256()
        # the content hash covers the rows kept, not the file's framing
        for batch in Staged(path, schema, "", rows).batches():
            sink_buf = pa.BufferOutputStream()
            with ipc.new_stream(sink_buf, schema) as w:
                w.write_batch(batch)
            h.update(sink_buf.getvalue().to_pybytes())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Staged(path, schema, h.hexdigest(), rows)
