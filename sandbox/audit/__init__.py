"""The audit log: an append-only, hash-chained, sealed record, and the auditor's search over it.

    log = AuditLog(db, secrets_dir, anchors_path, syslog="/dev/log", refusals_per_job=50)
    log.append(session, actor, "job.submitted", "job", job_id, details)   # inside the action's transaction
    log.verify()                                                          # -> VerifyResult (every problem)

Modules: :mod:`.log` (append, seal records and head, anchor, verify, export), :mod:`.caps` (per-job
caps on audited refusals), :mod:`.search` (filters, pages, CSV/JSON lines).
Errors: ``AuditWriteFailed`` (the action's transaction fails with it).

May import: :mod:`sandbox.catalog`, :mod:`sandbox.errors`.
"""

__all__ = ["caps", "log", "search"]
