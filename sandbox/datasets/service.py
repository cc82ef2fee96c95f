"""The catalog: registering datasets, and what anyone may read about them."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from connectors import ConfigError
from connectors.schema import arrow_schema

from ..audit.log import canonical
from ..auth import Principal, Role
from ..catalog.db import Dataset, DatasetSteward, DatasetVersion, Quarantine, User
from ..context import Context, get_dataset, require_role, stewarded_by, stewards_of
from ..errors import Conflict, Forbidden, ManifestInvalid
from ..tables import storage
from ..tables.record_keys import keyed_schema
from .declared import column_specs, contract_of
from .manifest import DatasetManifest, parse_manifest


class Datasets:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def register(self, principal: Principal, manifest: DatasetManifest) -> dict[str, Any]:
        require_role(principal, Role.ADMIN, Role.STEWARD)
        if principal.role is Role.STEWARD and principal.name not in manifest.stewards:
            raise Forbidden(f"{principal.name} may register only datasets they steward (add them to stewards)")
        # New tables go to the warehouse's table storage: the home, or object storage (TWH_STORAGE_URI).
        path = storage.table_location(self.ctx.settings.storage_root, manifest.provider_kind.value, manifest.name)
        with self.ctx.db.read() as s:
            if s.execute(select(Dataset.id).where(Dataset.name == manifest.name)).first() is not None:
                raise Conflict(f"dataset {manifest.name!r} is already registered")
            known = {r[0]: r[1] for r in s.execute(select(User.name, User.role).where(User.name.in_(manifest.stewards)))}
        for steward in manifest.stewards:
            if known.get(steward) != Role.STEWARD.value:
                raise ManifestInvalid(f"stewards: {steward!r} is not a user with the steward role",
                                      details={"field": "stewards"})
        if manifest.expectations:
            try:
                contract_of(manifest)
            except ConfigError as exc:
                raise ManifestInvalid(f"expectations: {exc}", details={"field": "expectations"}) from exc
        manifest_json = manifest.model_dump(mode="json", by_alias=True)
        digest = hashlib.sha256(canonical(manifest_json)).hexdigest()
        with self.ctx.commit_lock(path):
            if storage.table_exists(path):
                raise Conflict(f"a table already exists at tables/{manifest.provider_kind.value}/{manifest.name}; "
                               "refusing to share it")
            storage.create_table(path, keyed_schema(arrow_schema(column_specs(manifest))))
        try:
            with self.ctx.recorded(principal, "dataset.registered", "dataset", manifest.name,
                                   {"provider_kind": manifest.provider_kind.value, "manifest_sha256": digest,
                                    "columns": len(manifest.columns), "stewards": manifest.stewards}) as s:
                ds = Dataset(name=manifest.name, provider_kind=manifest.provider_kind.value, manifest=manifest_json,
                             table_path=path.uri, current_version=0, registered_by=principal.name)
                s.add(ds)
                s.flush()
                for steward in manifest.stewards:
                    s.add(DatasetSteward(dataset_id=ds.id, user_name=steward))
        except BaseException:
            storage.drop_table(path)  # nothing half-written: no table without a catalog entry
            raise
        return self.show(principal, manifest.name)

    def manifest(self, name: str) -> DatasetManifest:
        with self.ctx.db.read() as s:
            return parse_manifest(get_dataset(s, name).manifest, source=name)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            rows = s.execute(select(Dataset).order_by(Dataset.name)).scalars().all()
            return [self._summary(s, d) for d in rows]

    def show(self, principal: Principal, name: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            ds = get_dataset(s, name)
            out = self._summary(s, ds)
            out["schema"] = ds.manifest["schema"]
            out["policy"] = ds.manifest["policy"]
            out["expectations"] = ds.manifest.get("expectations", [])
            if ds.manifest.get("source"):
                from .sources import SourceBlock

                out["source"] = SourceBlock.model_validate(ds.manifest["source"]).describe()
            out["load"] = ds.manifest.get("load") or {"mode": "append"}
            versions = s.execute(
                select(DatasetVersion).where(DatasetVersion.dataset_id == ds.id).order_by(DatasetVersion.version)
            ).scalars().all()
            out["versions"] = [
                {"version": v.version, "load_id": v.load_id, "rows": v.rows, "lineage": v.lineage,
                 "created_at": v.created_at.isoformat()} for v in versions
            ]
            # Quarantine reports may carry example failing values: stewards of the dataset only.
            if principal.role is Role.ADMIN or principal.name in stewards_of(s, ds.id):
                qs = s.execute(select(Quarantine).where(Quarantine.dataset_id == ds.id).order_by(Quarantine.id))
                out["quarantine"] = [{"load_id": q.load_id, "report": q.report, "created_at": q.created_at.isoformat()}
                                     for q in qs.scalars()]
            return out

    def _summary(self, s: Any, ds: Dataset) -> dict[str, Any]:
        return {
            "name": ds.name,
            "provider_kind": ds.provider_kind,
            "title": ds.manifest.get("title", ""),
            "stewards": sorted(stewards_of(s, ds.id)),
            "current_version": ds.current_version,
            "columns": [{"name": c["name"], "type": c["type"], "role": c["role"]} for c in ds.manifest["schema"]],
        }

    def stewarded_by(self, user: str) -> set[str]:
        with self.ctx.db.read() as s:
            return stewarded_by(s, user)

    def mock(self, principal: Principal, name: str, *, rows: int = 1000, seed: int = 0, fmt: str = "csv") -> bytes:
        """A schema-identical mock table generated from the manifest (no real values); anyone signed in."""
        from .mock import mock_bytes

        manifest = self.manifest(name)
        data = mock_bytes(manifest, rows, seed, fmt)
        self.ctx.record(principal, "dataset.mock_downloaded", "dataset", name,
                        {"rows": rows, "seed": seed, "format": fmt, "sha256": hashlib.sha256(data).hexdigest()})
        return data

