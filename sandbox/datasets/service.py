"""The catalog: registering datasets, and what anyone may read about them.

A manifest's policy is compared with its GB/T 43697 grade when it is registered (or migrated):
weaker than the grade allows is refused (``policy_invalid``, rule ``grade_minimum``) unless an
admin has recorded the allowance for that dataset (:meth:`Datasets.override`, audited as
``dataset.override_recorded``). The rules are :mod:`policies.grading`'s.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from connectors import ConfigError
from connectors.schema import arrow_schema
from policies.grading import ALLOWANCES, Grade, policy_shortfalls

from ..audit.log import canonical
from ..auth import Principal, Role
from ..catalog.db import Dataset, DatasetSteward, DatasetVersion, GradeOverride, Quarantine, User
from ..context import Context, get_dataset, grade_allowances, require_role, stewarded_by, stewards_of
from ..errors import Conflict, Forbidden, InvalidInput, ManifestInvalid, PolicyInvalid
from ..tables import storage
from ..tables.record_keys import keyed_schema
from .declared import column_specs, contract_of
from .manifest import NAME_RE, DatasetManifest, parse_manifest
from .summary import summary


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
        allowed = self.check_grade(principal, manifest)
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
                                    "columns": len(manifest.columns), "stewards": manifest.stewards,
                                    "grade": manifest.labels()["grade"], "category": manifest.labels()["category"],
                                    "allowances": sorted(allowed)}) as s:
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

    def check_grade(self, principal: Principal, manifest: DatasetManifest,
                    previous: DatasetManifest | None = None) -> frozenset[str]:
        """Refuse a manifest whose policy is weaker than its grade allows (without an admin's
        allowance), or — when it replaces ``previous`` — that lowers the grade. The refusal is
        audited (``dataset.register_refused``); returns the allowances that applied."""
        if manifest.classification is None and self.ctx.settings.require_classification:
            raise ManifestInvalid("classification: this warehouse requires every dataset to be classified "
                                  "(category and grade, GB/T 43697-2024)", details={"field": "classification"})
        with self.ctx.db.read() as s:
            allowed = grade_allowances(s, manifest.name)
        problems = []
        if previous is not None and previous.grade is not None and (
                manifest.grade is None or manifest.grade.rank < previous.grade.rank):
            problems.append(f"classification.grade: {manifest.name} is graded {previous.grade.value}; a new manifest "
                            "may not lower its grade")
        if manifest.grade is not None:
            problems += [d.reason for d in policy_shortfalls(dict(manifest.policy), manifest.build_policy(),
                                                             manifest.grade, allowed,
                                                             has_senior=bool(manifest.senior_stewards))]
        if problems:
            self.ctx.record(principal, "dataset.register_refused", "dataset", manifest.name,
                            {"rule": "grade_minimum", "grade": manifest.labels()["grade"], "problems": problems,
                             "allowances": sorted(allowed)})
            raise PolicyInvalid(problems[0], details={"rule": "grade_minimum", "field": problems[0].split(":")[0],
                                                       "problems": problems})
        return allowed

    def override(self, principal: Principal, name: str, allow: str, reason: str) -> dict[str, Any]:
        """An admin allows ``name`` (registered or not yet) one thing beyond its grade, audited.
        Stewards never can: whoever stewards the data may not loosen its own floor."""
        require_role(principal, Role.ADMIN)
        if allow not in ALLOWANCES:
            raise InvalidInput(f"allow: {allow!r} is not an allowance; use one of {sorted(ALLOWANCES)}",
                               details={"field": "allow"})
        reason = (reason or "").strip()
        if not reason or len(reason) > 2000:
            raise InvalidInput("a reason (1-2000 characters) is required", details={"field": "reason"})
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise InvalidInput(f"name: a dataset name must match {NAME_RE.pattern}", details={"field": "name"})
        with self.ctx.db.read() as s:
            if allow in grade_allowances(s, name):
                raise Conflict(f"{name} already has the allowance {allow!r}")
            ds = s.execute(select(Dataset).where(Dataset.name == name)).scalar_one_or_none()
            grade = (ds.manifest.get("classification") or {}).get("grade") if ds is not None else None
        with self.ctx.recorded(principal, "dataset.override_recorded", "dataset", name,
                               {"allow": allow, "reason": reason, "grade": grade, "meaning": ALLOWANCES[allow],
                                "registered": ds is not None}) as s:
            s.add(GradeOverride(dataset=name, allow=allow, reason=reason, admin=principal.name))
        return {"dataset": name, "allow": allow, "reason": reason, "admin": principal.name, "grade": grade,
                "meaning": ALLOWANCES[allow]}

    def overrides(self, name: str) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            rows = s.execute(select(GradeOverride).where(GradeOverride.dataset == name)
                             .order_by(GradeOverride.id)).scalars().all()
            return [{"allow": o.allow, "reason": o.reason, "admin": o.admin, "meaning": ALLOWANCES.get(o.allow, ""),
                     "at": o.created_at.isoformat()} for o in rows]

    def manifest(self, name: str) -> DatasetManifest:
        with self.ctx.db.read() as s:
            return parse_manifest(get_dataset(s, name).manifest, source=name)

    def list(self, principal: Principal, grade: str | None = None) -> list[dict[str, Any]]:
        """The catalog, optionally only the datasets of one grade (``core``, ``important``,
        ``general`` or ``unclassified``)."""
        if grade is not None and grade not in (*(g.value for g in Grade), "unclassified"):
            raise InvalidInput(f"grade: {grade!r} is not a grade; use core, important, general or unclassified",
                               details={"field": "grade"})
        with self.ctx.db.read() as s:
            rows = s.execute(select(Dataset).order_by(Dataset.name)).scalars().all()
            out = [self._summary(s, d) for d in rows]
        return [d for d in out if grade is None or d["classification"]["grade"] == grade]

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
            out["overrides"] = self.overrides(name)
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
        return summary(ds.name, ds.provider_kind, ds.manifest, stewards_of(s, ds.id), ds.current_version)


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

