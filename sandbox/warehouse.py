"""The facade: one object every entry point (API, CLI, broker, notebook) goes through.

    wh = Warehouse.open(Settings.from_env())
    wh.datasets.register(principal, manifest)      # steward / admin
    wh.ingest.ingest(principal, "tax_payments", path)
    job = wh.jobs.submit(principal, job_dir)       # enterprise
    wh.jobs.run(job["id"])                          # the runner: sandbox → broker → gate → audit
    wh.exports.decide(steward, export_id, "approve", reason, bundle_sha256)
    wh.exports.download(principal, export_id)
    wh.audit_verify(auditor)
    wh.products.inference.score(principal, "default_risk@1", subjects, "credit_decision")  # authorised subjects

Each service checks the caller's role and writes its audit record in the same transaction as
its action; the query path (policy → plan → run → gate → audit) exists only in
:class:`sandbox.broker.queries.Queries`, which only the job broker calls.
"""

from __future__ import annotations

import functools
from typing import IO, Any

from connectors import ConfigError

from .access.authorisations import Authorisations
from .access.users import Users
from .audit import search as auditsearch
from .audit.log import AuditLog, VerifyResult
from .audit.search import AuditFilter
from .auth import SYSTEM, Principal, Role
from .broker.queries import Queries
from .catalog import schema
from .catalog.db import Database
from .context import Context, require_role
from .datasets.declared import contract_of
from .datasets.manifest import DatasetManifest
from .datasets.service import Datasets
from .datasets.synthetic import Synthetics
from .errors import InvalidInput, ManifestInvalid
from .jobs.service import Jobs
from .landing import lineage, migrate
from .landing.ingest import Ingest
from .products.service import Products
from .release.exports import Exports
from .settings import Settings


class Warehouse:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # Private files from here on (umask 077), and a home no other user can enter.
        fixed_mode = settings.secure_home()
        for d in (settings.home, settings.tables_dir, settings.jobs_dir, settings.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        settings.secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.db = Database(settings.catalog_url)
        schema.prepare(self.db, migrate=settings.auto_migrate)  # Alembic, on SQLite and PostgreSQL alike
        if settings.shared_root is not None:  # workers on several machines: one set of keys
            _share_keys(settings, self.db)
        self.audit = AuditLog(self.db, settings.secrets_dir, settings.anchors_path, syslog=settings.audit_syslog,
                              refusals_per_job=settings.audit_refusals_per_job)
        self.ctx = Context(settings, self.db, self.audit)
        self.users = Users(self.ctx)
        self.datasets = Datasets(self.ctx)
        self.ingest = Ingest(self.ctx)
        self.queries = Queries(self.ctx, self.manifest)
        self.budgets = self.queries.budgets
        # models and verification as products (sandbox.products); training jobs read its feature library
        self.products = Products(self.ctx, self.manifest)
        self.authorisations = Authorisations(self.ctx)
        self.jobs = Jobs(self.ctx, self.queries, self.manifest, self.products.resolve_feature)
        self.synthetic = Synthetics(self.ctx, self.manifest, self.budgets)  # DP synthetic development data
        self.exports = Exports(self.ctx)
        if fixed_mode is not None:
            self.ctx.record(SYSTEM, "warehouse.home_mode_fixed", "warehouse", "home",
                            {"mode_was": f"{fixed_mode:o}", "mode_now": "700"})
        if settings.engine == "spark":  # gated queries run there; the session starts on the first one
            from .gate import spark_engine

            spark_engine.configure(settings.spark_target)

    @classmethod
    def open(cls, settings: Settings) -> Warehouse:
        return cls(settings)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - manifests are immutable once registered
    def manifest(self, name: str) -> DatasetManifest:
        return self.datasets.manifest(name)

    # -- lineage and schema migration (sandbox.landing) -----------------------------------
    def dataset_history(self, principal: Principal, name: str) -> dict[str, Any]:
        """Every Delta version of ``name`` with its lineage."""
        return lineage.history(self.ctx, principal, name)

    def migrate_dataset(self, principal: Principal, name: str, manifest: DatasetManifest,
                        renames: dict[str, str] | None = None) -> dict[str, Any]:
        """Approve a new schema (steward of the dataset, or admin): rewrite the table into it, audited."""
        if manifest.expectations:
            try:
                contract_of(manifest)
            except ConfigError as exc:
                raise ManifestInvalid(f"expectations: {exc}", details={"field": "expectations"}) from exc
        return migrate.migrate(self.ctx, principal, name, manifest, renames or {}, type(self).manifest.cache_clear,
                               check=lambda new, old: self.datasets.check_grade(principal, new, previous=old))

    # -- audit ----------------------------------------------------------------------------
    def audit_verify(self, principal: Principal) -> VerifyResult:
        require_role(principal, Role.AUDITOR, Role.ADMIN)
        result = self.audit.verify()
        self.ctx.record(principal, "audit.verified", "audit", "chain", result.to_dict())
        return result

    def audit_export(self, principal: Principal, out: IO[str], *, flt: AuditFilter | None = None,
                     fmt: str = "jsonl") -> int:
        """The whole chain as JSON lines (default), or the records matching ``flt`` as JSON lines or CSV."""
        require_role(principal, Role.AUDITOR, Role.ADMIN)
        if flt is None and fmt == "jsonl":
            self.ctx.record(principal, "audit.exported", "audit", "chain")
            return self.audit.export_jsonl(out)
        flt = flt or AuditFilter()
        if fmt not in ("jsonl", "csv"):
            raise InvalidInput("format must be 'jsonl' or 'csv'", details={"field": "format"})
        self.ctx.record(principal, "audit.exported", "audit", "chain", {"format": fmt, "filter": flt.to_dict()})
        with self.db.read() as s:
            return auditsearch.write(auditsearch.iter_matching(s, flt), out, fmt)

    def audit_search(self, principal: Principal, flt: AuditFilter, *, offset: int = 0, limit: int = 100,
                     newest_first: bool = False) -> tuple[list[dict[str, Any]], int]:
        """A page of the records matching ``flt`` and how many match in all (see :mod:`sandbox.audit.search`)."""
        require_role(principal, Role.AUDITOR, Role.ADMIN)
        with self.db.read() as s:
            return auditsearch.search(s, flt, offset=offset, limit=limit, newest_first=newest_first)

    def audit_records(self, principal: Principal, *, action: str | None = None, actor: str | None = None,
                      object_id: str | None = None, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from .audit.log import record_dict
        from .catalog.db import AuditRecord

        require_role(principal, Role.AUDITOR, Role.ADMIN)
        q = select(AuditRecord).where(AuditRecord.seq > after).order_by(AuditRecord.seq).limit(max(1, min(limit, 1000)))
        if action:
            q = q.where(AuditRecord.action.like(action.replace("*", "%")))
        if actor:
            q = q.where(AuditRecord.actor == actor)
        if object_id:
            q = q.where(AuditRecord.object_id == object_id)
        with self.db.read() as s:
            return [record_dict(r) for r in s.execute(q).scalars()]

    def close(self) -> None:
        self.db.dispose()


def _share_keys(settings: Settings, db: Database) -> None:
    """Copy the warehouse's keys from its shared storage into this home (creating them there first
    when this is the first machine): see :func:`sandbox.catalog.keys.share_keys`."""
    from .catalog.keys import load_or_create_key, load_or_create_signing_key, share_keys
    from .catalog.locks import commit_lock
    from .release.attest import KEY_FILE
    from .tables import objects

    root = settings.shared_root
    assert root is not None
    folder = root.child("secrets")
    creators = {"audit.key": load_or_create_key, "units.key": load_or_create_key,
                "web_session.key": load_or_create_key, KEY_FILE: load_or_create_signing_key}
    share_keys(settings.secrets_dir, creators, lambda name: objects.read(folder.child(name)),
               lambda name, data: objects.write(folder.child(name), data), commit_lock(db, folder.uri))
