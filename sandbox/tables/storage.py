"""Delta storage: one table per dataset, one atomic commit per load, snapshots pinned by version.

Layout under the warehouse root::

    <root>/tables/<provider_kind>/<dataset>/        a Delta table (zones: government, market)
    <root>/quarantine/<dataset>/<load_id>.json      the report of a load that failed its contract

A load is one ``write_deltalake(mode="append")`` fed by a ``pyarrow.RecordBatchReader`` over the
batches: delta-rs writes the Parquet parts while it streams and only then writes the single
commit file ``_delta_log/<version>.json`` (put-if-absent). A crash at any point before that
leaves the previous version intact — the parts already written are orphans that no version
references (``vacuum`` removes them) — and a crash after it leaves the whole load committed.

A load whose id is known only after its last row (a CSV read in one pass) is written in two
steps instead (:mod:`.staged`): the parts first, in no version, then one commit adding them.

Each commit carries our metadata in its ``commitInfo`` (``twh.load_id``, ``twh.source_sha256``,
...) and a Delta *application transaction* ``txn(appId="twh.load:<load_id>")``. The txn makes
:func:`find_load` cheap and turns two concurrent commits of the same load into a conflict for
the second (delta-rs's conflict checker refuses a commit whose appId a concurrent winner already
used), so a load can never land twice. Expired-log cleanup is disabled on our tables so that the
history an auditor replays is never truncated.

deltalake's exceptions are translated here (``CommitFailedError`` -> :class:`Conflict`, ...);
an exception raised by the batches themselves (a connector's ``SourceError``, a failed contract)
is re-raised as it was, with nothing committed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import ColumnProperties, CommitProperties, DeltaTable, Transaction, WriterProperties, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError, SchemaMismatchError, TableNotFoundError

from ..errors import Conflict, InternalError, InvalidInput, NotFound
from .record_keys import RECORD_KEY
from .snapshot import Snapshot
from .uris import Location, to_location

#: a table: a local path, a ``file://`` URI, or a :class:`Location` (``s3://`` needs its store)
Where = str | Path | Location

ZONES = ("government", "market")
LOAD_ID_KEY = "twh.load_id"
SOURCE_SHA256_KEY = "twh.source_sha256"
_TXN_PREFIX = "twh.load:"
#: the application-transaction id prefix of a load (delta-spark writes it as ``txnAppId``)
TXN_PREFIX = _TXN_PREFIX
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # the manifest's dataset-name rule
_LOAD_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
#: table properties of every table we create
TABLE_CONFIGURATION = {"delta.enableExpiredLogCleanup": "false"}
#: reader features a plain scan of the live Parquet files still reads correctly
_PLAIN_SCAN_READER_FEATURES = frozenset({"timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"})


# --- layout -----------------------------------------------------------------------------------


def table_path(root: str | Path, provider_kind: str, name: str) -> Path:
    """``<root>/tables/<provider_kind>/<name>``: the one table of one dataset."""
    kind = str(getattr(provider_kind, "value", provider_kind))
    if kind not in ZONES:
        raise InvalidInput(f"provider_kind {kind[:30]!r} must be one of {list(ZONES)}",
                           details={"field": "provider_kind"})
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(f"dataset name {str(name)[:70]!r} must match {_NAME_RE.pattern}", details={"field": "name"})
    return Path(root).absolute() / "tables" / kind / name


def table_location(root: Location, provider_kind: str, name: str) -> Location:
    """``<root>/tables/<provider_kind>/<name>`` on the warehouse's table storage (local or ``s3://``)."""
    if root.is_local:
        return Location(table_path(root.path, provider_kind, name).as_uri())
    local = table_path("/", provider_kind, name)  # the same name rules
    return root.child("tables", local.parent.name, local.name)


def quarantine_path(root: str | Path, dataset: str, load_id: str) -> Path:
    """``<root>/quarantine/<dataset>/<load_id>.json``."""
    if not isinstance(dataset, str) or not _NAME_RE.match(dataset):
        raise InvalidInput(f"dataset name {str(dataset)[:70]!r} must match {_NAME_RE.pattern}")
    _check_load_id(load_id)
    return Path(root).absolute() / "quarantine" / dataset / f"{load_id}.json"


def write_quarantine_report(root: str | Path, dataset: str, load_id: str, report: Mapping[str, Any]) -> Path:
    """Write a quarantine report atomically (a reader never sees half a file)."""
    path = quarantine_path(root, dataset, load_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(dict(report), f, ensure_ascii=False, indent=2, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _check_load_id(load_id: str) -> None:
    if not isinstance(load_id, str) or not _LOAD_ID_RE.match(load_id):
        raise InvalidInput("load id must be 1-128 characters of [A-Za-z0-9_.:-]")


# --- tables -----------------------------------------------------------------------------------


def _loc(path: Where) -> Location:
    return to_location(path)


def _target(loc: Location) -> str:
    """What delta-rs opens: the local path of a file:// table, else the URI."""
    return str(loc.path) if loc.is_local else loc.uri


def _open(path: Where, version: int | None = None) -> DeltaTable:
    loc = _loc(path)
    try:
        return DeltaTable(_target(loc), version=version, storage_options=loc.delta_options())
    except TableNotFoundError:
        raise NotFound(f"no Delta table at {loc.name!r}") from None
    except DeltaError as exc:
        if version is not None and "version" in str(exc).lower():
            raise NotFound(f"table {loc.name!r} has no version {version}") from None
        # `from None`: delta-rs messages name the store's URL and request details
        raise InternalError(f"cannot open Delta table {loc.name!r}: {type(exc).__name__}") from None
    except OSError as exc:  # the object store is unreachable or refused the credentials
        raise InternalError(f"cannot open Delta table {loc.name!r}: the storage is unavailable "
                            f"({type(exc).__name__})") from None


def _history(dt: DeltaTable) -> list[dict[str, Any]]:
    """``dt.history()`` (newest first) with delta-spark's commits read like delta-rs's: delta-spark
    keeps our commit metadata as one JSON object in ``userMetadata`` (see :mod:`sandbox.landing.spark`)
    and counts written rows as ``numOutputRows``."""
    out = []
    for entry in dt.history():
        user = entry.get("userMetadata")
        if isinstance(user, str) and user.startswith("{"):
            try:
                meta = json.loads(user)
            except ValueError:
                meta = {}
            if isinstance(meta, dict):
                entry = {**{k: v for k, v in meta.items() if isinstance(k, str) and k.startswith("twh.")
                            and isinstance(v, str)}, **entry}
        metrics = entry.get("operationMetrics") or {}
        if "num_added_rows" not in metrics and "numOutputRows" in metrics and entry.get("operation") == "WRITE":
            entry = {**entry, "operationMetrics": {**metrics, "num_added_rows": metrics["numOutputRows"]}}
        out.append(entry)
    return out


def _arrow_schema(dt: DeltaTable) -> pa.Schema:
    return pa.schema(dt.schema().to_arrow())


def table_exists(path: Where) -> bool:
    """Whether anything is stored at the location (a Delta table, or a local folder)."""
    loc = _loc(path)
    if loc.is_local:
        return loc.path.exists()
    try:
        return bool(DeltaTable.is_deltatable(loc.uri, storage_options=loc.delta_options()))
    except (DeltaError, OSError):
        raise InternalError(f"cannot reach the storage of {loc.name!r}") from None


def create_table(path: Where, schema: pa.Schema) -> int:
    """Create an empty Delta table (version 0) with the declared schema; refuse if one exists.
    On object storage the caller holds the table's commit lock (``Context.commit_lock``)."""
    loc = _loc(path)
    if DeltaTable.is_deltatable(_target(loc), storage_options=loc.delta_options()):
        raise Conflict(f"a Delta table already exists at {loc.name!r}")
    if loc.is_local:
        loc.path.mkdir(parents=True, exist_ok=True)
    try:
        dt = DeltaTable.create(_target(loc), schema, mode="error", configuration=TABLE_CONFIGURATION,
                               storage_options=loc.delta_options())
    except DeltaError as exc:
        if "exist" in str(exc).lower():
            raise Conflict(f"a Delta table already exists at {loc.name!r}") from None
        raise InternalError(f"cannot create Delta table {loc.name!r}: {type(exc).__name__}") from None
    return dt.version()


def drop_table(path: Where) -> None:
    """Remove a table that no catalog entry names (a registration that failed half-way); best effort."""
    loc = _loc(path)
    if loc.is_local:
        import shutil

        shutil.rmtree(loc.path, ignore_errors=True)
        return
    from urllib.parse import urlsplit

    import pyarrow.fs as pafs

    store = loc.store
    assert store is not None
    parts = urlsplit(loc.uri)
    endpoint = urlsplit(store.endpoint) if store.endpoint else None
    try:
        fs = pafs.S3FileSystem(access_key=store.access_key_id, secret_key=store.secret_access_key,
                               region=store.region, endpoint_override=endpoint.netloc if endpoint else None,
                               scheme=endpoint.scheme if endpoint else "https")
        fs.delete_dir(parts.netloc + parts.path)
    except OSError:
        pass  # an orphan no catalog entry names: never read, and a re-registration is refused, not mixed


def latest_version(path: Where) -> int:
    return _open(path).version()


class _Batches:
    """Feeds batches to the writer, checking their schema and keeping any exception they raise
    (it crosses the Arrow C stream as an opaque error otherwise)."""

    def __init__(self, batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> None:
        self._batches = batches
        self._schema = schema
        self.error: BaseException | None = None
        self.rows = 0

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._batches:
                if not batch.schema.equals(self._schema):
                    raise InvalidInput("a batch does not have the table's schema",
                                       details={"expected": self._schema.names, "got": batch.schema.names})
                self.rows += batch.num_rows
                yield batch
        except BaseException as exc:
            self.error = exc
            raise


def append_batches(path: Where, batches: Iterable[pa.RecordBatch], schema: pa.Schema, *,
                   metadata: Mapping[str, str], target_file_size: int | None = None) -> int:
    """Append all batches as ONE atomic Delta commit and return its version.

    ``metadata`` goes into the commit's ``commitInfo`` and must hold ``twh.load_id``; keys are
    strings starting with ``twh.``. A load id already committed raises :class:`Conflict`
    (``details["version"]`` names its version): check :func:`find_load` first to be idempotent.
    An exception raised while iterating ``batches`` propagates unchanged and nothing is committed.
    ``target_file_size`` (bytes) bounds the Parquet parts, hence the writer's buffer.
    """
    return write_batches(path, batches, schema, metadata=metadata, mode="append", target_file_size=target_file_size)


def _prepare(path: Where, schema: pa.Schema | None, metadata: Mapping[str, str]) -> tuple[DeltaTable, dict, str]:
    meta = dict(metadata)
    load_id = meta.get(LOAD_ID_KEY)
    _check_load_id(load_id)  # type: ignore[arg-type]
    for k, v in meta.items():
        if not (isinstance(k, str) and k.startswith("twh.") and isinstance(v, str)):
            raise InvalidInput("commit metadata keys must be strings starting with 'twh.' and values strings")
    dt = _open(path)
    if schema is not None:
        _check_schema(dt, schema)
    app_id = _TXN_PREFIX + load_id  # type: ignore[operator]
    if dt.transaction_version(app_id) is not None:
        raise Conflict(f"load {load_id} is already committed", details={"version": find_load(path, load_id)})
    return dt, meta, app_id


def _check_schema(dt: DeltaTable, schema: pa.Schema) -> None:
    table_schema = _arrow_schema(dt)
    if not table_schema.equals(schema):
        raise Conflict("the batches' schema differs from the table's (schema drift)",
                       details={"table": [f"{f.name}:{f.type}" for f in table_schema],
                                "batches": [f"{f.name}:{f.type}" for f in schema]})


def _translate_write_error(exc: BaseException, feed: _Batches | None, load_id: str) -> BaseException:
    if feed is not None and feed.error is not None:
        return feed.error
    if isinstance(exc, CommitFailedError):
        return Conflict(f"load {load_id} conflicted with a concurrent commit and was not committed; "
                        "retry (it may have been committed by the other writer)", details={"load_id": load_id})
    if isinstance(exc, SchemaMismatchError):
        return Conflict("the batches do not fit the table's schema", details={"load_id": load_id})
    if isinstance(exc, DeltaError):
        # delta-rs reports a null in a non-nullable column as an invariant/schema error
        return InvalidInput(f"Delta refused the batches ({type(exc).__name__}); nothing was committed",
                            details={"load_id": load_id})
    return exc


#: a column whose first rows (at most :data:`_SAMPLE_MAX` of the first batch) hold more distinct
#: values than this share of them is written without a dictionary (see :func:`_writer_properties`)
PLAIN_SHARE = 0.97
#: the first batch must have at least this many rows for its distinct count to decide anything
_SAMPLE_ROWS = 1000
#: ... and only its first this-many rows are counted: the count runs before the writer starts, and
#: on the bench's 27,380-row first batch it took 20-70 ms (a quarter of that on 8,192 rows). Over
#: fewer rows, columns with repeats look more distinct, hence the share of 97% (over the whole
#: batch it was 90%): on the bench's registry both pick the same three columns (codes, names,
#: addresses: 99-100% distinct in 8,192 rows; amounts and region codes 89-96% keep dictionaries).
_SAMPLE_MAX = 8192


def _mostly_distinct(values: pa.Array) -> bool:
    t = values.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t)
            or pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)):
        return False
    return pc.count_distinct(values, mode="all").as_py() > PLAIN_SHARE * len(values)


def _writer_properties(schema: pa.Schema, first: pa.RecordBatch | None = None) -> WriterProperties | None:
    """Parquet settings: delta-rs's defaults (Snappy, dictionaries, statistics), except for columns
    whose values are (nearly) all different, which are written without a dictionary:

    * the record-key column always: its values are uniformly random, so a dictionary never pays
      (its page came out larger than the plain values) and building it was ~10% of the writer's
      CPU time;
    * a declared column whose first batch (``first``, at least 1000 rows; its first 8,192 counted)
      has more distinct values than 97% of those rows: identifiers, names, addresses. The writer
      would build a dictionary page for it, find it does not pay and fall back to plain pages
      anyway (after 1 MB of dictionary); deciding up front spares that hashing (on the bench's 105 MB registry CSV:
      the writer's CPU time -4%, median of 8, and the file 41.7 MB instead of 41.9). Columns
      with repeated values (categories, dates, counts, amounts that recur over a file) keep
      their dictionaries: at a 50% threshold amounts and region codes lost theirs, +5% size.

    (Naming any property resets the compression, so Snappy is named again.)"""
    plain = [RECORD_KEY] if RECORD_KEY in schema.names else []
    if first is not None and first.num_rows >= _SAMPLE_ROWS:
        sample = first.slice(0, _SAMPLE_MAX)
        plain += [f.name for f in schema if f.name != RECORD_KEY and _mostly_distinct(sample.column(f.name))]
    if not plain:
        return None
    return WriterProperties(compression="SNAPPY",
                            column_properties={c: ColumnProperties(dictionary_enabled=False) for c in plain})


def write_batches(path: Where, batches: Iterable[pa.RecordBatch], schema: pa.Schema, *,
                  metadata: Mapping[str, str], mode: str = "append", target_file_size: int | None = None,
                  schema_mode: str | None = None) -> int:
    """Write all batches as ONE atomic Delta commit (``mode`` append or overwrite); its version.

    Overwrite replaces the table's rows in the same single commit (readers of older versions
    keep their files until vacuum). ``schema_mode="overwrite"`` (migrations only) replaces the
    table's schema too. See :func:`append_batches` for metadata, conflicts and errors."""
    if mode not in ("append", "overwrite"):
        raise InternalError(f"unknown write mode {mode!r}")
    dt, meta, app_id = _prepare(path, None if schema_mode else schema, metadata)
    load_id = meta[LOAD_ID_KEY]
    feed = _Batches(batches, schema)
    properties = CommitProperties(custom_metadata=meta, app_transactions=[Transaction(app_id=app_id, version=1)])
    try:
        rest = iter(feed)
        first = next(rest, None)  # the writer's settings look at the first batch (_writer_properties)
        reader = pa.RecordBatchReader.from_batches(schema, rest if first is None else itertools.chain([first], rest))
        write_deltalake(dt, reader, mode=mode, commit_properties=properties, target_file_size=target_file_size,
                        schema_mode=schema_mode,  # type: ignore[arg-type]
                        writer_properties=_writer_properties(schema, first))
    except BaseException as exc:
        translated = _translate_write_error(exc, feed, load_id)
        if translated is exc:
            raise
        raise translated from (None if feed.error is not None else exc)
    return _committed(path, load_id)


def merge_batches(path: Where, batches: Iterable[pa.RecordBatch], schema: pa.Schema, *, keys: list[str],
                  metadata: Mapping[str, str]) -> tuple[int, dict[str, int]]:
    """Upsert the batches on ``keys`` as ONE atomic Delta commit: rows whose keys exist are
    updated, others inserted. Returns (version, {"updated", "inserted"}).

    A key that appears twice in the batches is refused (which row should win is not ours to
    guess); so is a null key. Keys seen are kept in memory (only the keys, not the rows)."""
    dt, meta, app_id = _prepare(path, schema, metadata)
    load_id = meta[LOAD_ID_KEY]
    if not keys or any(k not in schema.names for k in keys):
        raise InvalidInput(f"merge keys {keys} must be declared columns")
    seen: set[tuple[Any, ...]] = set()

    def unique(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            cols = [b.column(k) for k in keys]
            if any(c.null_count for c in cols):
                raise InvalidInput(f"a merge key column {keys} has a null value; nothing was committed")
            for key in zip(*(c.to_pylist() for c in cols), strict=True):
                if key in seen:
                    raise InvalidInput(f"merge key {keys} appears more than once in the load; nothing was committed",
                                       details={"keys": keys})
                seen.add(key)
            yield b

    feed = _Batches(unique(batches), schema)
    reader = pa.RecordBatchReader.from_batches(schema, iter(feed))
    predicate = " AND ".join(f"t.{_quote_col(k)} = s.{_quote_col(k)}" for k in keys)
    properties = CommitProperties(custom_metadata=meta, app_transactions=[Transaction(app_id=app_id, version=1)])
    try:
        metrics = (dt.merge(reader, predicate, source_alias="s", target_alias="t", commit_properties=properties)
                   .when_matched_update_all().when_not_matched_insert_all().execute())
    except BaseException as exc:
        translated = _translate_write_error(exc, feed, load_id)
        if translated is exc:
            raise
        raise translated from (None if feed.error is not None else exc)
    counts = {"updated": int(metrics.get("num_target_rows_updated", 0)),
              "inserted": int(metrics.get("num_target_rows_inserted", 0))}
    return _committed(path, load_id), counts


def _quote_col(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _committed(path: Where, load_id: str) -> int:
    version = find_load(path, load_id)
    if version is None:
        raise InternalError(f"load {load_id} was written but its commit cannot be found")
    return version


WATERMARK_KEY = "twh.watermark"


def last_watermark(path: Where, column: str) -> str | None:
    """The watermark (as stored: text) of the newest commit that recorded one for ``column``."""
    for entry in _history(_open(path)):  # newest first
        if entry.get("twh.watermark_column") == column and entry.get(WATERMARK_KEY) is not None:
            return str(entry[WATERMARK_KEY])
        if entry.get("twh.operation") == "migrate" or entry.get("operation") in ("CREATE TABLE",):
            continue
    return None


def table_rows(path: Where, version: int | None = None) -> Iterator[pa.RecordBatch]:
    """The table's rows at ``version`` as batches (bounded memory)."""
    dt = _open(path, version)
    return iter(dt.to_pyarrow_dataset().to_batches())


def table_schema(path: Where) -> pa.Schema:
    return _arrow_schema(_open(path))


def find_load(path: Where, load_id: str) -> int | None:
    """The version that committed ``load_id``, or None if it was never committed."""
    _check_load_id(load_id)
    dt = _open(path)
    if dt.transaction_version(_TXN_PREFIX + load_id) is None:
        return None
    for entry in _history(dt):
        if entry.get(LOAD_ID_KEY) == load_id:
            return int(entry["version"])
    raise InternalError(f"load {load_id} is recorded in the table state but not in its history")


def _commit(path: Where, version: int) -> dict[str, Any]:
    dt = _open(path)
    if not 0 <= version <= dt.version():
        raise NotFound(f"table {_loc(path).name!r} has no version {version}")
    for entry in _history(dt):
        if int(entry["version"]) == version:
            return entry
    raise NotFound(f"the commit of version {version} is no longer in the log")


def rows_added(path: Where, version: int) -> int:
    """How many rows the commit of ``version`` added (from its operation metrics)."""
    metrics = _commit(path, version).get("operationMetrics") or {}
    return int(metrics.get("num_added_rows", 0))


def history(path: Where) -> list[dict[str, Any]]:
    """Commits, oldest first: version, timestamp (UTC ISO 8601), operation, rows added, our metadata."""
    out = []
    for entry in reversed(_history(_open(path))):
        ts = entry.get("timestamp")
        out.append({
            "version": int(entry["version"]),
            "timestamp": datetime.fromtimestamp(ts / 1000, tz=UTC).isoformat() if isinstance(ts, int) else None,
            "operation": entry.get("operation"),
            "rows_added": int((entry.get("operationMetrics") or {}).get("num_added_rows", 0)),
            "metadata": {k: v for k, v in entry.items() if k.startswith("twh.")},
            "metrics": {k: v for k, v in (entry.get("operationMetrics") or {}).items()
                        if k in ("num_added_rows", "num_removed_files", "num_target_rows_updated",
                                 "num_target_rows_inserted", "num_output_rows")},
        })
    return out


def needs_delta_reader(dt: DeltaTable) -> bool:
    """True when scanning the live Parquet files would not give the table's rows exactly."""
    protocol = dt.protocol()
    metadata = dt.metadata()
    config = metadata.configuration or {}
    if metadata.partition_columns:
        return True  # partition values live in the log, not in the files
    if protocol.min_reader_version == 2:
        return True  # reader version 2 exists for column mapping
    if set(protocol.reader_features or ()) - _PLAIN_SCAN_READER_FEATURES:
        return True  # deletion vectors, column mapping, type widening, ...: fail closed
    if str(config.get("delta.columnMapping.mode", "none")).lower() != "none":
        return True
    return str(config.get("delta.enableDeletionVectors", "false")).lower() == "true"


def _local_path(uri: str) -> str:
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return str(Path(uri).absolute())


def _file_name(loc: Location, uri: str) -> str:
    """A data file as the engines read it: a local path, or the object's URI on the table's store."""
    return _local_path(uri) if loc.is_local else uri


def pin_snapshot(path: Where, dataset: str, version: int | None = None) -> Snapshot:
    """A read-only view of the table at ``version`` (latest if None): its live files and columns."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool) or version < 0):
        raise InvalidInput("version must be a non-negative integer")
    loc = _loc(path)
    dt = _open(loc, version)
    if version is not None and dt.version() != version:
        raise NotFound(f"table {loc.name!r} has no version {version}")
    return Snapshot(
        dataset=dataset,
        table_path=str(loc.path) if loc.is_local else loc.uri,
        version=dt.version(),
        files=tuple(_file_name(loc, u) for u in dt.file_uris()),
        needs_delta_reader=needs_delta_reader(dt),
        columns=tuple(_arrow_schema(dt).names),
        store=loc.store,
    )
