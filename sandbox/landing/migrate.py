"""Schema migration: the one way a dataset's declared schema changes (``twh dataset migrate``).

Ingest refuses schema drift (added, missing, renamed, retyped columns). A steward of the dataset
(or an admin) approves the new schema by migrating to a new manifest:

* the new manifest keeps the dataset's name and zone; renames are given explicitly
  (``--rename old=new``), never guessed;
* every existing row is rewritten into the new schema in ONE Delta commit
  (``schema_mode=overwrite``): kept columns are converted with the strict rules (a value that
  does not convert refuses the migration, naming the column), added columns must be nullable
  and are null, removed columns are dropped; older versions stay readable for replay;
* the catalog takes the new manifest and version in the same transaction as the audit record
  ``dataset.migrated`` (old and new manifest hashes, the column diff).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa
from sqlalchemy import select

from connectors.schema import arrow_schema, cast_column

from ..audit.log import canonical
from ..auth import Principal, Role
from ..catalog.db import Dataset, DatasetVersion, User
from ..context import Context, get_dataset, stewards_of
from ..datasets.declared import column_specs
from ..datasets.manifest import DatasetManifest, parse_manifest
from ..errors import Conflict, Forbidden, InvalidInput, ManifestInvalid
from ..tables import storage
from ..tables.record_keys import RECORD_KEY, fresh_keys, keyed_schema
from ..tables.uris import Location
from .staging import stage


def column_diff(old: DatasetManifest, new: DatasetManifest, renames: Mapping[str, str]) -> dict[str, Any]:
    old_cols = {c.name: c for c in old.columns}
    new_cols = {c.name: c for c in new.columns}
    for a, b in renames.items():
        if a not in old_cols:
            raise InvalidInput(f"rename {a}={b}: {a!r} is not a column of the current schema")
        if b not in new_cols:
            raise InvalidInput(f"rename {a}={b}: {b!r} is not a column of the new manifest")
    sources = {b: a for a, b in renames.items()}
    kept = [n for n in new_cols if n in old_cols and n not in sources]
    added = [n for n in new_cols if n not in old_cols and n not in sources]
    removed = [n for n in old_cols if n not in new_cols and n not in renames]
    retyped = {n: [old_cols[sources.get(n, n)].type, new_cols[n].type] for n in new_cols
               if sources.get(n, n) in old_cols and old_cols[sources.get(n, n)].type != new_cols[n].type}
    not_null_added = [n for n in added if not new_cols[n].nullable]
    if not_null_added:
        raise InvalidInput(f"added column(s) {not_null_added} must be nullable: existing rows have no value")
    return {"kept": kept, "added": added, "removed": removed, "renamed": dict(renames), "retyped": retyped}


def migrate(ctx: Context, principal: Principal, name: str, new: DatasetManifest, renames: Mapping[str, str],
            on_change: Callable[[], None] | None = None,
            check: Callable[[DatasetManifest, DatasetManifest], Any] | None = None) -> dict[str, Any]:
    """Rewrite ``name`` into ``new``'s schema; ``check(new, old)`` may refuse the new manifest first
    (the facade passes the grade check: a migration may not weaken the policy or lower the grade)."""
    with ctx.db.read() as s:
        ds = get_dataset(s, name)
        if principal.role is not Role.ADMIN and not (principal.role is Role.STEWARD
                                                     and principal.name in stewards_of(s, ds.id)):
            raise Forbidden(f"only a steward of {name} (or an admin) may migrate its schema")
        old = parse_manifest(ds.manifest, source=name)
        table = ctx.table(ds.table_path)
        known = {r[0]: r[1] for r in s.execute(select(User.name, User.role).where(User.name.in_(new.stewards)))}
    if new.name != old.name or new.provider_kind != old.provider_kind:
        raise ManifestInvalid("a migration keeps the dataset's name and provider_kind", details={"field": "name"})
    for steward in new.stewards:
        if known.get(steward) != Role.STEWARD.value:
            raise ManifestInvalid(f"stewards: {steward!r} is not a user with the steward role")
    if check is not None:
        check(new, old)
    diff = column_diff(old, new, renames)
    old_json = old.model_dump(mode="json", by_alias=True)
    new_json = new.model_dump(mode="json", by_alias=True)
    old_sha = hashlib.sha256(canonical(old_json)).hexdigest()
    new_sha = hashlib.sha256(canonical(new_json)).hexdigest()
    if old_sha == new_sha:
        raise Conflict(f"{name}: the new manifest is the current one; nothing to migrate")
    specs = column_specs(new)
    schema = keyed_schema(arrow_schema(specs))
    load_id = "mg_" + hashlib.sha256(f"{name}\0{old_sha}\0{new_sha}".encode()).hexdigest()[:24]
    # Object storage: the table's commit lock from reading the base version to the commit, so no load
    # lands in between (the overwrite would drop it).
    with ctx.commit_lock(table):
        base, version, count = _rewrite(table, specs, schema, renames, load_id, name, new_sha, ctx)
    rows = [count]
    lineage = {"source": {"operation": "migrate"}, "connector": None, "load_id": load_id, "mode": "migrate",
               "rows_in": rows[0], "rows_out": rows[0], "rows_quarantined": 0, "rows": rows[0],
               "migration": {"from_manifest_sha256": old_sha, "to_manifest_sha256": new_sha, "from_version": base,
                             **diff}}
    with ctx.recorded(principal, "dataset.migrated", "dataset", name,
                      {"version": version, "from_version": base, "from_manifest_sha256": old_sha,
                       "manifest_sha256": new_sha, "rows": rows[0], "diff": diff}) as s:
        row = s.execute(select(Dataset).where(Dataset.name == name).with_for_update()).scalar_one()
        row.manifest = new_json
        row.current_version = max(row.current_version, version)
        s.add(DatasetVersion(dataset_id=row.id, version=version, load_id=load_id, rows=rows[0], lineage=lineage))
    if on_change is not None:
        on_change()
    return {"status": "migrated", "dataset": name, "version": version, "from_version": base, "rows": rows[0],
            "diff": diff, "manifest_sha256": new_sha}


def _rewrite(table: Location, specs: list, schema: pa.Schema, renames: Mapping[str, str], load_id: str, name: str,
             new_sha: str, ctx: Context) -> tuple[int, int, int]:
    """The latest version rewritten into ``schema``, committed as one overwrite: (base, version, rows)."""
    base = storage.latest_version(table)
    sources = {b: a for a, b in renames.items()}
    rows = [0]

    def rewritten() -> Iterator[pa.RecordBatch]:
        for batch in storage.table_rows(table, base):
            arrays = []
            for spec in specs:
                src = sources.get(spec.name, spec.name)
                if src in batch.schema.names:
                    values, problems = cast_column(batch.column(src), spec, row_offset=rows[0])
                    if problems:
                        raise InvalidInput(f"existing rows do not convert to the new schema: {problems[0].message}",
                                           details={"column": spec.name})
                    arrays.append(values)
                else:
                    arrays.append(pa.nulls(batch.num_rows, spec.arrow_type))
            # rows keep their record keys (a table landed before keys existed gets fresh ones)
            arrays.append(batch.column(RECORD_KEY) if RECORD_KEY in batch.schema.names
                          else fresh_keys(batch.num_rows))
            rows[0] += batch.num_rows
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    # Always a new version, even for an empty table or an unchanged column list: the version
    # marks where the new manifest (contract, policy, nullability) starts to apply.
    # Staged first: delta-rs cannot read the table from inside its own writer's runtime.
    staged = stage(ctx.settings.home / "staging" / name, schema, rewritten())
    try:
        version = storage.write_batches(table, staged.batches(), schema, mode="overwrite", schema_mode="overwrite",
                                        metadata={"twh.load_id": load_id, "twh.dataset": name,
                                                  "twh.operation": "migrate", "twh.mode": "migrate",
                                                  "twh.manifest_sha256": new_sha})
    finally:
        staged.remove()
    return base, version, rows[0]
