"""The catalog database: SQLAlchemy 2 models and session handling.

SQLite is the embedded default; any SQLAlchemy URL (PostgreSQL for the service deployment)
works through ``Settings.database_url``. Every write that must be recorded happens inside
:func:`transaction`, together with its audit record (see :mod:`sandbox.audit.log`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    true,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    tenant: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the language the user's pages are shown in (``en``, ``zh-CN``); None: the browser's choice
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    #: a ``subject`` user's privacy-unit value (the firm it speaks for); None for every other role
    subject_id: Mapped[str | None] = mapped_column(String(128), nullable=True)



class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    #: SHA-256 of the token; the token itself is shown once and never stored
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: set at issue (created + the policy's ttl, or sooner); rows from before 0004 have none and
    #: expire by the policy alone (``sandbox.access.users.token_expiry``)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: written at most once a minute per token, so authenticating stays a read
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: what the operator called it ("laptop", "ci"): never the token
    label: Mapped[str | None] = mapped_column(String(64), nullable=True)


class WebSessionRow(Base):
    """A signed-in browser (``sandbox/interfaces/web/sessions.py``), shared by every service process.

    Holds neither the session id (only its SHA-256) nor the bearer token (only which token row
    signed in, re-checked on every request: revoking the token ends the session)."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    provider_kind: Mapped[str] = mapped_column(String(16))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    table_path: Mapped[str] = mapped_column(Text)
    #: the version queries pin: only versions the catalog recorded are ever read
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    registered_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetSteward(Base):
    __tablename__ = "dataset_stewards"
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"), primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64), primary_key=True)


class GradeOverride(Base):
    """An admin's audited allowance for a dataset to be weaker than its grade (policies.grading.ALLOWANCES).

    Keyed by dataset name, not id: it is recorded before the manifest that needs it is registered."""

    __tablename__ = "grade_overrides"
    __table_args__ = (UniqueConstraint("dataset", "allow"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    allow: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text)
    admin: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"), UniqueConstraint("dataset_id", "load_id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    version: Mapped[int] = mapped_column(Integer)
    load_id: Mapped[str] = mapped_column(String(80))
    rows: Mapped[int] = mapped_column(BigInteger)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Quarantine(Base):
    __tablename__ = "quarantines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    load_id: Mapped[str] = mapped_column(String(80))
    #: steward-only report; may hold example failing values, so it is never put in the audit log
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    #: the durable queue: workers scan queued jobs oldest first, the reaper scans running ones
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    submitted_by: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    #: dataset -> Delta version pinned when the job started
    pinned: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str] = mapped_column(Text, default="")
    code_sha256: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: what kind of work this is: decides what a lost lease does (``sandbox.jobs.leases.ON_LOST_LEASE``)
    kind: Mapped[str] = mapped_column(String(24), default="analysis", server_default="analysis")
    #: the worker running the job and until when it holds it (renewed by its heartbeat); the
    #: worker's transitions are fenced on ``worker_id``, so a reaped worker cannot finish the job
    worker_id: Mapped[str | None] = mapped_column(String(120), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: a dataset read requires a steward's review: until a steward acts, the submitter sees one
    #: state ("awaiting_review") whatever the job did (sandbox.jobs.public)
    review_required: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class JobQuery(Base):
    __tablename__ = "job_queries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    sql: Mapped[str] = mapped_column(Text)
    sql_sha256: Mapped[str] = mapped_column(String(64))
    versions: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str] = mapped_column(String(16))  # released | refused
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Export(Base):
    __tablename__ = "exports"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    tenant: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(24))
    #: SHA-256 over the sorted (name, sha256) list: what an approval is bound to
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    #: datasets whose stewards must approve (empty when no policy requires approval)
    needs_approval_from: Mapped[list[Any]] = mapped_column(JSON)
    #: ``outputs`` (the job's files) or ``notice`` (the one-line outcome of a job that failed or wrote
    #: nothing: released to the submitter only by the same approvals)
    kind: Mapped[str] = mapped_column(String(16), default="outputs", server_default="outputs")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: the signed in-toto statement (a DSSE envelope, one JSON line) made when the export was
    #: approved (sandbox.release.provenance), and the SHA-256 of those bytes (in the audit record)
    provenance: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    provenance_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ExportFile(Base):
    __tablename__ = "export_files"
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("export_id", "dataset"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id"))
    dataset: Mapped[str] = mapped_column(String(64))
    steward: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(8))  # approve | deny
    reason: Mapped[str] = mapped_column(Text)
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditRecord(Base):
    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    object_type: Mapped[str] = mapped_column(String(24))
    object_id: Mapped[str] = mapped_column(String(80))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: HMAC-SHA256 of ``hash`` under the warehouse's audit key: a whole rewrite needs the key
    seal: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last seq and hash. Updating it serialises appenders (row lock)."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    #: HMAC-SHA256 of "head:<seq>:<hash>" under the audit key: deleting the tail and rewriting
    #: this row needs the key (``sandbox.audit.log``); NULL only in catalogs from before 0004
    seal: Mapped[str | None] = mapped_column(String(64), nullable=True)


class BudgetHead(Base):
    """What one budget scope has spent: (dataset, period, scope) -> exact ε and δ as "p/q" text.

    Reservations lock this row (``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on
    SQLite), so concurrent reservations are serialised and never overspend.
    """

    __tablename__ = "dp_budget_heads"
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(16), primary_key=True)
    #: a tenant with its own share, or "*" for the shared pool
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    spent_epsilon: Mapped[str] = mapped_column(String(200), default="0")
    spent_delta: Mapped[str] = mapped_column(String(200), default="0")


class BudgetCharge(Base):
    """One reservation against a dataset's DP budget. Never deleted, never refunded."""

    __tablename__ = "dp_budget_charges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    period: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # query | synthetic
    epsilon: Mapped[str] = mapped_column(String(200))
    delta: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the engine SQL, versions and ε: an exact repeat returns ``result``, not new noise
    query_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UnitId(Base):
    """Legacy, kept empty: the differencing guard's first dictionary (unit value -> dense id).

    The dictionary now lives in files under the warehouse home, keyed by HMAC
    (:mod:`sandbox.gate.unit_dictionary`); on first use the guard moves any rows here there,
    under the same ids, and deletes them, so no unit value stays in the catalog.
    """

    __tablename__ = "unit_ids"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    value: Mapped[str] = mapped_column(Text, unique=True)


class DifferencingHead(Base):
    """One row per dataset (and ``"*"`` for the unit dictionary, whose ``populations`` counts
    the unit ids handed out): locking it serialises the
    differencing check and the record of what was released (``FOR UPDATE`` / ``BEGIN IMMEDIATE``)."""

    __tablename__ = "differencing_heads"
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    populations: Mapped[int] = mapped_column(BigInteger, default=0)


class ReleasedPopulation(Base):
    """A set of privacy units whose aggregate left, as a portable roaring bitmap of unit ids.

    Across all tenants and versions; identical sets are stored once per dataset."""

    __tablename__ = "released_populations"
    __table_args__ = (UniqueConstraint("dataset", "digest"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), index=True)
    cardinality: Mapped[int] = mapped_column(BigInteger)
    #: SHA-256 of ``bitmap``
    digest: Mapped[str] = mapped_column(String(64))
    bitmap: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReleaseCharge(Base):
    """One distinct population (a released cell's rows) charged to a dataset's sdc release budget,
    per tenant and period; a repeat of the same rows is not charged again."""

    __tablename__ = "release_charges"
    __table_args__ = (UniqueConstraint("dataset", "tenant", "period", "identity"),
                      Index("ix_release_charges_scope", "dataset", "period", "tenant"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64))
    tenant: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(16))
    #: a digest of the cell's rows (sandbox.gate.release.cell_identity): no data value
    identity: Mapped[str] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReleasedAnswer(Base):
    """An sdc result already released, by canonical fingerprint (engine SQL + pinned versions):
    an exact repeat, by anyone, gets these bytes back instead of a new run."""

    __tablename__ = "released_answers"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let pysqlite not issue its own BEGIN; we issue BEGIN IMMEDIATE ourselves (see below), so
    # writers take the write lock up front and concurrent audit appends queue instead of forking.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front; readers use a deferred BEGIN and never block writers.
    readonly = conn.get_execution_options().get("twh_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._readers = sessionmaker(self.engine.execution_options(twh_readonly=True), expire_on_commit=False)

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together, or not at all."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (on SQLite it does not take the write lock)."""
        with self._readers() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
