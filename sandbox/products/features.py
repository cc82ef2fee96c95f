"""The feature library (特征库): steward-published, versioned feature definitions.

    f = wh.products.features.publish(steward, {"name": "avg_vat", "kind": "numeric", "labels": ["tax"],
                                                "description": "mean monthly VAT, 元",
                                                "sql": "SELECT AVG(t.vat_paid) AS avg_vat FROM tax_payments t GROUP BY t.uscc"})
    wh.products.features.resolve("avg_vat@1")      # -> NamedFeature (training and inference read the same)

A definition is checked by the training planner (:func:`sandbox.training.library.check_definition`):
declared columns by role, unit-only joins, one column named as the feature, ``GROUP BY`` the
privacy unit. It is published by a steward of every dataset it reads, gets the next version of
its name and never changes afterwards (a new definition is a new version); its SHA-256 binds
what a model was trained on. Lineage: the datasets and columns it reads, their versions when it
was published and now, and the catalog models and training jobs that use it. Anyone signed in
reads the library (definitions are SQL over declared columns: no data).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from ..auth import Principal, Role
from ..catalog.db import Dataset, Job
from ..catalog.products import CatalogModel, FeatureDefinition
from ..context import Context, require_role, stewarded_by
from ..errors import Forbidden, InvalidInput, NotFound
from ..gate import TableInfo
from ..training.library import KINDS, NamedFeature, check_definition
from ..training.spec import FEATURE_REF

__all__ = ["FeatureLibrary", "definition_sha256", "feature_dict", "parse_ref"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LABEL = re.compile(r"^[\w .:-]{1,40}$")


def parse_ref(ref: Any, what: str = "feature") -> tuple[str, int | None]:
    """``name@version`` -> (name, version); a bare ``name`` -> (name, None): the latest."""
    if isinstance(ref, str) and FEATURE_REF.match(ref):
        name, version = ref.split("@")
        return name, int(version)
    if isinstance(ref, str) and _NAME.match(ref):
        return ref, None
    raise InvalidInput(f"{what}: {str(ref)[:80]!r} is not name or name@version", details={"field": what})


def definition_sha256(name: str, version: int, kind: str, unit: str, sql: str) -> str:
    body = json.dumps({"name": name, "version": version, "kind": kind, "privacy_unit": unit, "sql": sql},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def feature_dict(f: FeatureDefinition) -> dict[str, Any]:
    return {"name": f.name, "version": f.version, "ref": f"{f.name}@{f.version}", "kind": f.kind,
            "description": f.description, "labels": list(f.labels), "privacy_unit": f.privacy_unit, "sql": f.sql,
            "datasets": list(f.datasets), "columns_read": dict(f.columns_read),
            "versions_at_publish": dict(f.versions_at_publish), "sha256": f.sha256, "published_by": f.published_by,
            "created_at": f.created_at.isoformat() if f.created_at else None}


def _named(f: FeatureDefinition) -> NamedFeature:
    return NamedFeature(f"{f.name}@{f.version}", f.name, f.version, f.kind, f.sql, f.sha256, tuple(f.datasets))


class FeatureLibrary:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any]) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self._resolved: dict[str, NamedFeature] = {}  # definitions never change once published

    def lookup(self, name: str) -> TableInfo:
        """Any registered dataset, as the planner reads it (unknown: not found)."""
        with self.ctx.db.read() as s:
            if s.execute(select(Dataset.id).where(Dataset.name == name)).first() is None:
                raise NotFound(f"dataset {str(name)[:64]!r} does not exist", details={"dataset": name})
        m = self._manifests(name)
        return TableInfo(name=name, policy=m.build_policy(), columns=tuple(c.name for c in m.columns))

    def publish(self, principal: Principal, definition: dict[str, Any]) -> dict[str, Any]:
        """Check ``definition`` (name, kind, sql; description, labels) and publish it as the next
        version of its name. The steward must steward every dataset the SQL reads."""
        require_role(principal, Role.STEWARD)
        if not isinstance(definition, dict):
            raise InvalidInput("a feature definition is a mapping", details={"field": "definition"})
        unknown = sorted(set(definition) - {"name", "kind", "sql", "description", "labels"})
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)[:120]}", details={"field": unknown[0]})
        name, kind, sql = definition.get("name"), definition.get("kind"), definition.get("sql")
        description = definition.get("description") or ""
        labels = definition.get("labels") or []
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput("name: lower-case letters, digits and _ (a column name), e.g. avg_vat",
                               details={"field": "name"})
        if kind not in KINDS:
            raise InvalidInput(f"kind: one of {', '.join(KINDS)}", details={"field": "kind"})
        if not isinstance(sql, str) or not 1 <= len(sql) <= 20_000:
            raise InvalidInput("sql: the feature query (at most 20000 characters)", details={"field": "sql"})
        if not isinstance(description, str) or len(description) > 2000:
            raise InvalidInput("description: text of at most 2000 characters", details={"field": "description"})
        if (not isinstance(labels, list) or len(labels) > 20
                or not all(isinstance(x, str) and _LABEL.match(x) for x in labels)):
            raise InvalidInput("labels: at most 20 short words", details={"field": "labels"})
        plan = check_definition(name, sql, self.lookup)
        with self.ctx.db.read() as s:
            mine = stewarded_by(s, principal.name)
        missing = [t for t in plan.tables if t not in mine]
        if missing:
            raise Forbidden(f"{principal.name} does not steward {', '.join(missing)}: a feature is published by a "
                            "steward of every dataset it reads", details={"datasets": missing})
        unit = self.lookup(plan.tables[0]).policy.privacy_unit or ""
        with self.ctx.db.transaction() as s:
            version = (s.execute(select(func.max(FeatureDefinition.version)).where(FeatureDefinition.name == name))
                       .scalar() or 0) + 1
            versions = {n: v for n, v in s.execute(select(Dataset.name, Dataset.current_version)
                                                    .where(Dataset.name.in_(plan.tables)))}
            row = FeatureDefinition(name=name, version=version, description=description, labels=list(labels),
                                    kind=kind, privacy_unit=unit, sql=sql, datasets=list(plan.tables),
                                    columns_read={t: list(c) for t, c in plan.columns_read},
                                    versions_at_publish=versions,
                                    sha256=definition_sha256(name, version, kind, unit, sql),
                                    published_by=principal.name)
            s.add(row)
            s.flush()
            out = feature_dict(row)
            self.ctx.audit.append(s, principal.actor, "feature.published", "feature", out["ref"],
                                  {"sha256": row.sha256, "kind": kind, "datasets": row.datasets,
                                   "versions": versions, "sql": sql})
            return out

    def _row(self, s: Any, ref: Any) -> FeatureDefinition:
        name, version = parse_ref(ref)
        q = select(FeatureDefinition).where(FeatureDefinition.name == name)
        q = q.where(FeatureDefinition.version == version) if version is not None else q.order_by(
            FeatureDefinition.version.desc()).limit(1)
        row = s.execute(q).scalars().first()
        if row is None:
            raise NotFound(f"feature {str(ref)[:80]!r} does not exist", details={"feature": str(ref)[:80]})
        return row

    def resolve(self, ref: str) -> NamedFeature:
        """The definition ``name@version`` (trusted callers: training, inference)."""
        if ref not in self._resolved:
            name, version = parse_ref(ref)
            if version is None:
                raise InvalidInput(f"{ref}: name the version (name@version): a model binds one definition")
            with self.ctx.db.read() as s:
                self._resolved[ref] = _named(self._row(s, ref))
        return self._resolved[ref]

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            rows = s.execute(select(FeatureDefinition).order_by(FeatureDefinition.name,
                                                                FeatureDefinition.version)).scalars()
            return [feature_dict(f) for f in rows]

    def show(self, principal: Principal, ref: str) -> dict[str, Any]:
        """A definition with its lineage: datasets → columns → versions (at publication, now), and
        who uses it (catalog models; training jobs that named it)."""
        with self.ctx.db.read() as s:
            f = self._row(s, ref)
            out = feature_dict(f)
            current = {n: v for n, v in s.execute(select(Dataset.name, Dataset.current_version)
                                                   .where(Dataset.name.in_(f.datasets)))}
            out["lineage"] = [{"dataset": d, "columns": f.columns_read.get(d, []),
                               "version_at_publish": f.versions_at_publish.get(d), "current_version": current.get(d)}
                              for d in f.datasets]
            ref_ = out["ref"]
            out["models"] = [f"{m.name}@{m.version}" for m in s.execute(select(CatalogModel)).scalars()
                             if ref_ in (m.features or [])]
            jobs = s.execute(select(Job.id, Job.spec, Job.tenant).where(Job.kind == "analysis")).all()
            visible = principal.role in (Role.ADMIN, Role.AUDITOR, Role.STEWARD)
            out["training_jobs"] = [j for j, spec, tenant in jobs if _names(spec, ref_) and (
                visible or (principal.role is Role.ENTERPRISE and tenant == principal.tenant))]
            return out


def _names(spec: dict[str, Any], ref: str) -> bool:
    """Whether a job's spec names ``ref`` among its library features."""
    feats = (spec.get("train") or {}).get("features") if isinstance(spec, dict) else None
    return isinstance(feats, list) and ref in feats
