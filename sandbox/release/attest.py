"""The provenance statement of an export, gathered from the catalog in the approval's transaction.

Called where an export becomes ``approved`` — the last steward's decision
(:meth:`sandbox.release.exports.Exports.decide`), or the export's creation when no dataset needs
approval (:meth:`sandbox.jobs.service.Jobs._create_export`) — inside that transaction, so the
statement, its signature and the audit record that names its digest commit together or not at
all. What it states is read from rows already written: the job, its pinned versions, its
``query.*`` audit records, its budget charges and the approvals. Nothing here reads a data value.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.grading import Grade, default_release_mode

from ..audit.log import canonical as audit_canonical
from ..catalog.db import Approval, AuditRecord, BudgetCharge, Dataset, Export, ExportFile, Job, ReleaseCharge, utcnow
from ..catalog.keys import load_or_create_signing_key
from ..context import Context, grade_allowances
from ..errors import InternalError
from . import provenance

#: the warehouse's Ed25519 key, in its secrets folder (0600)
KEY_FILE = "provenance_ed25519.pem"


def signing_key(ctx: Context) -> bytes:
    return load_or_create_signing_key(ctx.settings.secrets_dir / KEY_FILE)


def public_key(ctx: Context) -> dict[str, str]:
    """The public half, as published at ``GET /v1/provenance/key``."""
    return provenance.public_key_info(signing_key(ctx))


def _plain(value: Any) -> Any:
    """JSON-native (what is signed must read back the same)."""
    return json.loads(json.dumps(value, default=str))


def _frac(text: str) -> Fraction:
    return Fraction(str(text))


def gate_digest(s: Session, job_id: str) -> dict[str, Any]:
    """A digest of the gate's decisions on a job: SHA-256 over ``seq:hash`` lines of its ``query.*``
    audit records in order. An auditor recomputes it from the audit export (``twh audit export``)."""
    rows = s.execute(select(AuditRecord.seq, AuditRecord.hash, AuditRecord.action)
                     .where(AuditRecord.object_type == "job", AuditRecord.object_id == job_id,
                            AuditRecord.action.like("query.%")).order_by(AuditRecord.seq)).all()
    body = "".join(f"{seq}:{h}\n" for seq, h, _ in rows)
    return {"records": len(rows), "released": sum(1 for r in rows if r[2] == "query.released"),
            "refused": sum(1 for r in rows if r[2] == "query.refused"),
            "first_seq": rows[0][0] if rows else None, "last_seq": rows[-1][0] if rows else None,
            "digest": {"sha256": hashlib.sha256(body.encode()).hexdigest()},
            "method": "sha256 over '<seq>:<hash>\\n' of the job's query.* audit records, in seq order"}


def predicate(ctx: Context, s: Session, e: Export, job: Job) -> dict[str, Any]:
    """What the statement says about the export (sandbox/release/provenance.md)."""
    names = sorted(job.pinned or {}) or sorted(job.datasets)
    datasets = []
    modes: dict[str, str] = {}
    for name in names:
        ds = s.execute(select(Dataset).where(Dataset.name == name)).scalar_one_or_none()
        if ds is None:
            raise InternalError(f"the job read {name!r}, which the catalog no longer holds")
        m = ds.manifest
        policy = m.get("policy") or {}
        cls = m.get("classification") or {}
        # the grade's default when the manifest declares none (policies.grading)
        grade = Grade(cls["grade"]) if cls.get("grade") else None
        modes[name] = policy.get("release_mode") or default_release_mode(grade) or "sdc"
        datasets.append({"name": name, "delta_version": (job.pinned or {}).get(name),
                         "provider_kind": ds.provider_kind, "grade": cls.get("grade") or "unclassified",
                         "category": cls.get("category"), "release_mode": modes[name],
                         "manifest_sha256": hashlib.sha256(audit_canonical(m)).hexdigest(),
                         "allowances": sorted(grade_allowances(s, name))})
    eps: dict[str, Fraction] = {}
    delta: dict[str, Fraction] = {}
    for c in s.execute(select(BudgetCharge).where(BudgetCharge.job_id == job.id)).scalars():
        eps[c.dataset] = eps.get(c.dataset, Fraction(0)) + _frac(c.epsilon)
        delta[c.dataset] = delta.get(c.dataset, Fraction(0)) + _frac(c.delta)
    populations: dict[str, int] = {}
    for (ds_name,) in s.execute(select(ReleaseCharge.dataset).where(ReleaseCharge.job_id == job.id)):
        populations[ds_name] = populations.get(ds_name, 0) + 1
    approvals = s.execute(select(Approval).where(Approval.export_id == e.id).order_by(Approval.id)).scalars().all()
    return _plain({
        "export": {"id": e.id, "kind": e.kind, "bundle_sha256": e.bundle_sha256, "approved_at": utcnow().isoformat(),
                   "needs_approval_from": list(e.needs_approval_from or [])},
        "job": {"id": job.id, "name": (job.spec or {}).get("name"), "purpose": job.purpose, "tenant": job.tenant,
                "submitted_by": job.submitted_by, "submitted_at": job.created_at.isoformat() if job.created_at else None,
                "code_sha256": job.code_sha256, "spec": job.spec},
        "datasets": datasets,
        "gate": gate_digest(s, job.id),
        "privacy": {"release_modes": modes,
                    "epsilon_spent": {k: str(v) for k, v in sorted(eps.items())},
                    "delta_spent": {k: str(v) for k, v in sorted(delta.items())},
                    "epsilon_spent_total": str(sum(eps.values(), Fraction(0))),
                    "sdc_populations_released": dict(sorted(populations.items()))},
        "approvals": [{"dataset": a.dataset, "steward": a.steward, "decision": a.decision, "reason": a.reason,
                       "bundle_sha256": a.bundle_sha256, "at": a.created_at.isoformat() if a.created_at else None}
                      for a in approvals],
        "warehouse": {"keyid": public_key(ctx)["keyid"]},
    })


def attest(ctx: Context, s: Session, e: Export, job: Job) -> dict[str, str]:
    """Sign the export's statement and store it on the row (same transaction); returns the
    digests the approval's audit record names."""
    s.flush()
    files = s.execute(select(ExportFile).where(ExportFile.export_id == e.id).order_by(ExportFile.name)).scalars().all()
    if any(f.name == provenance.FILE_NAME for f in files):  # gate_outputs lets only .csv/.json out; never trust it
        raise InternalError(f"an export file is named {provenance.FILE_NAME}, which is the provenance's own")
    stmt = provenance.statement([(f.name, f.sha256) for f in files], predicate(ctx, s, e, job))
    envelope = provenance.sign(stmt, signing_key(ctx))
    e.provenance = envelope
    e.provenance_sha256 = hashlib.sha256(envelope).hexdigest()
    return {"provenance_sha256": e.provenance_sha256,
            "statement_sha256": hashlib.sha256(provenance.canonical(stmt)).hexdigest()}
