"""The catalog's tables for models and verification as products (``sandbox/products/``) and the data
subjects' authorisations (``sandbox/access/authorisations.py``).

* ``feature_definitions`` — the feature library: steward-published, versioned SQL over declared
  datasets, one value per privacy unit; immutable once published (a change is a new version);
* ``catalog_models`` — approved DP model exports published for inference: the weights and card as
  approved, the features they were trained on, and who may use them for what;
* ``verification_products`` — yes/no or banded claims about one subject over one library feature,
  with their thresholds fixed by the steward;
* ``authorisations`` — a subject's consent: tenant, purpose, datasets, validity, the SHA-256 of the
  consent document; revocable, never deleted;
* ``product_runs`` — one row per answered request (a score call, a batch, a verification) with its
  per-subject rows (refusals included) as Parquet, whose SHA-256 the audit record of the same
  transaction holds; ``subject_uses`` indexes those rows by subject (the subject's view and the
  distinct-claims limit read it);
* ``subject_quotas`` — subjects asked about per (dataset, tenant, UTC day): locked and counted in
  the request's transaction, so concurrent requests never overrun a policy's daily limit.
"""

from __future__ import annotations

from datetime import datetime
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
)
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, utcnow


class FeatureDefinition(Base):
    __tablename__ = "feature_definitions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: numeric | categorical
    kind: Mapped[str] = mapped_column(String(16))
    #: the privacy-unit column the value is keyed by (the datasets' policy ``privacy_unit``)
    privacy_unit: Mapped[str] = mapped_column(String(64))
    sql: Mapped[str] = mapped_column(Text)
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    #: dataset -> the declared columns the SQL reads (lineage)
    columns_read: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: dataset -> its current Delta version when the definition was published
    versions_at_publish: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: SHA-256 of the canonical definition (name, version, kind, unit, SQL): what a model binds to
    sha256: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CatalogModel(Base):
    __tablename__ = "catalog_models"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    #: the approved training export the weights and card come from (one catalog model per export)
    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id"), unique=True)
    job_id: Mapped[str] = mapped_column(String(40))
    owner_tenant: Mapped[str] = mapped_column(String(64))
    #: library feature refs (``name@version``) the model was trained on
    features: Mapped[list[Any]] = mapped_column(JSON)
    #: model inputs the tenant supplies per subject (its own columns), never computed here
    tenant_inputs: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: the training config (``dp.training.TrainConfig.to_dict``): declared encodings and the model spec
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    weights: Mapped[bytes] = mapped_column(LargeBinary)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    #: a custom model's checked graph (``twh-graph/1``), None for declarative models
    graph: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    certified_epsilon: Mapped[str] = mapped_column(String(40))
    #: datasets the model's features read: a steward of each approves the publication
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    allowed_tenants: Mapped[list[Any]] = mapped_column(JSON)
    allowed_purposes: Mapped[list[Any]] = mapped_column(JSON)
    #: how many reason codes (feature names) come back with a score; 0: none
    reason_codes: Mapped[int] = mapped_column(Integer, default=0)
    #: decimals a score is rounded to
    score_digits: Mapped[int] = mapped_column(Integer, default=2)
    #: distinct tenant-input vectors per subject, tenant and month (probing the model's surface)
    max_distinct_inputs: Mapped[int] = mapped_column(Integer, default=1)
    #: SHA-256 of everything an approval agrees to (the terms above, the weights, the features)
    terms_sha256: Mapped[str] = mapped_column(String(64))
    #: dataset -> the steward who approved these terms for it
    approvals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: proposed | published
    state: Mapped[str] = mapped_column(String(16))
    proposed_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class VerificationProduct(Base):
    __tablename__ = "verification_products"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text, default="")
    #: the library feature (``name@version``) the claim is about
    feature: Mapped[str] = mapped_column(String(80))
    #: at_least | at_most | one_of | bands
    kind: Mapped[str] = mapped_column(String(16))
    #: the fixed claims: thresholds (at_least/at_most), values (one_of), or band edges and labels
    claims: Mapped[dict[str, Any]] = mapped_column(JSON)
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    allowed_tenants: Mapped[list[Any]] = mapped_column(JSON)
    allowed_purposes: Mapped[list[Any]] = mapped_column(JSON)
    #: distinct claims one tenant may ask about one subject per period
    max_distinct_claims: Mapped[int] = mapped_column(Integer, default=1)
    period: Mapped[str] = mapped_column(String(8), default="month")
    published_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Authorisation(Base):
    __tablename__ = "authorisations"
    #: scope: one tenant's authorisations of one subject; cover: everything a batch's coverage reads,
    #: so that read never touches the table
    __table_args__ = (Index("ix_authorisations_scope", "tenant", "purpose", "subject"),
                      Index("ix_authorisations_cover", "tenant", "purpose", "revoked_at", "subject", "id", "datasets",
                            "valid_from", "valid_until"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: the privacy-unit value of the subject (a firm's unified social credit code)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    tenant: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    #: the datasets named, sorted, as ",a,b," (a lookup for many subjects tests each with LIKE)
    datasets: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: SHA-256 of the consent document (the document itself stays with whoever holds it)
    consent_sha256: Mapped[str] = mapped_column(String(64))
    registered_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: a steward's bulk import this row came with (its audit record holds the SHA-256 over the rows)
    import_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)


class AuthorisationHead(Base):
    """A version per (tenant, purpose), bumped in the same transaction as every grant, import and
    revocation: a process that cached the tenant's authorisations knows when its copy is stale."""

    __tablename__ = "authorisation_heads"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, default=0)


class ProductRun(Base):
    """One answered request: a decision-flow score, a batch, a verification. Its per-subject rows
    (subject, claim, outcome, authorisations) are ``rows`` — Parquet written by the service — whose
    SHA-256 the audit record of the same transaction holds; ``subject_uses`` indexes them by subject
    (at once for small runs, on first read for a batch: the index is derived from ``rows``)."""

    __tablename__ = "product_runs"
    __table_args__ = (Index("ix_product_runs_scope", "tenant", "product", "created_at"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    #: decision | batch | verification
    flow: Mapped[str] = mapped_column(String(16))
    tenant: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    #: model | verification
    product_kind: Mapped[str] = mapped_column(String(16))
    #: ``name@version``
    product: Mapped[str] = mapped_column(String(80))
    #: the audit record written in the same transaction
    audit_seq: Mapped[int] = mapped_column(BigInteger)
    subjects: Mapped[int] = mapped_column(Integer)
    rows: Mapped[bytes] = mapped_column(LargeBinary)
    rows_sha256: Mapped[str] = mapped_column(String(64))
    #: whether ``subject_uses`` holds this run's rows yet
    indexed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SubjectUse(Base):
    """A subject's row of a run, by subject (derived from ``product_runs.rows``)."""

    __tablename__ = "subject_uses"
    __table_args__ = (Index("ix_subject_uses_subject", "subject", "run_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("product_runs.id"))
    subject: Mapped[str] = mapped_column(String(128))
    #: what was asked beyond the subject (a verification's threshold or value, a digest of the
    #: tenant's inputs); "" when the product takes nothing
    claim: Mapped[str] = mapped_column(String(80), default="")
    #: answered | refused
    outcome: Mapped[str] = mapped_column(String(16))
    #: the authorisation ids it was answered under, comma-separated ("" when refused)
    authorisations: Mapped[str] = mapped_column(Text, default="")


class SubjectQuota(Base):
    __tablename__ = "subject_quotas"
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
