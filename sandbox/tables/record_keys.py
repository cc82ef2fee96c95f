"""Record keys: a secret random number on every row, assigned when the row lands.

    schema = keyed_schema(declared)          # the declared columns + RECORD_KEY
    batch = with_record_keys(batch)          # each row gets a fresh key from the OS CSPRNG

The cell-key method (:mod:`sandbox.gate.cellkey`) derives each released cell's perturbation from
the keys of the rows in it, so the same rows always get the same noise and two populations that
differ by a few rows get unrelated noise. The key column is never declared, so no query can name
it (the gate resolves columns against the manifest), no view a job reads exposes it, and no mock,
synthetic table or export carries it. Keys are uniform 32-bit integers, stored as Delta ``integer``
(signed: Delta has no unsigned type; sums modulo 2^k are the same either way). Four bytes a row
rather than eight: the cell key's sum is the one column every sdc query reads besides its own.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa

#: the column every warehouse table carries besides its declared ones
RECORD_KEY = "__twh_rkey"
KEY_BITS = 32


def keyed_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the record-key column appended (unchanged when it is already there)."""
    if RECORD_KEY in schema.names:
        return schema
    return schema.append(pa.field(RECORD_KEY, pa.int32(), nullable=False))


def fresh_keys(n: int) -> pa.Array:
    """``n`` keys from the operating system's CSPRNG (never a seeded generator: a job author must
    not be able to predict them)."""
    return pa.array(np.frombuffer(os.urandom(4 * n), dtype=np.int32), type=pa.int32())


def with_record_keys(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with fresh keys appended (a batch that already has keys keeps them)."""
    if RECORD_KEY in batch.schema.names:
        return batch
    return pa.RecordBatch.from_arrays([*batch.columns, fresh_keys(batch.num_rows)],
                                      schema=keyed_schema(batch.schema))


def declared_only(schema: pa.Schema) -> pa.Schema:
    """``schema`` without the record-key column."""
    return pa.schema([f for f in schema if f.name != RECORD_KEY], metadata=schema.metadata)
