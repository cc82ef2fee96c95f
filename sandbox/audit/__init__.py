"""The audit log: an append-only, hash-chained, sealed record, and the auditor's search over it.

    log = AuditLog(db, secrets_dir, anchors_path)
    log.append(session, actor, "job.submitted", "job", job_id, details)   # inside the action's transaction
    log.verify()                                                          # -> VerifyResult

Modules: :mod:`.log` (append, seal, verify, export), :mod:`.search` (filters, pages, CSV/JSON lines).
Errors: ``AuditWriteFailed`` (the action's transaction fails with it).

May import: :mod:`sandbox.catalog`, :mod:`sandbox.errors`.
"""

__all__ = ["log", "search"]
