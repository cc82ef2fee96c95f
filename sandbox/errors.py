"""The one error tree of the application.

Every error the warehouse raises on purpose derives from :class:`TwhError` and carries a stable
string ``code``. The API maps ``code`` to an HTTP status, the client maps it back to the same
class, and the CLI prints it. Errors of libraries (deltalake, DuckDB, Great Expectations,
SQLAlchemy, sqlglot) are translated at the boundary with ``raise Ours(...) from exc``.

    TwhError                       code
    ├── InvalidInput               invalid_input        bad manifest, policy, file, query text, id
    │   ├── ManifestInvalid        manifest_invalid
    │   ├── PolicyInvalid          policy_invalid
    │   └── JobSpecInvalid         job_spec_invalid
    ├── NotFound                   not_found            also: another tenant's object (never 403)
    ├── Conflict                   conflict             already exists, wrong state for a transition
    │   └── InvalidTransition      invalid_transition
    ├── AuthError                  unauthenticated      missing/unknown/revoked token
    ├── Forbidden                  forbidden            role or stewardship does not allow the action
    ├── Refused                    refused              the policy or the gate said no (reason attached)
    │   ├── AccessRefused          access_refused       tenant/purpose not allowed on a dataset
    │   ├── QueryRefused           query_refused        the gate refused a query
    │   │   └── BudgetExhausted    budget_exhausted     the DP budget cannot pay for it (query, synthetic data)
    │   ├── TrainingRefused        training_refused     a training job's model, features or weights failed a check
    │   ├── QuotaExceeded          quota_exceeded       a policy's per-tenant limit (e.g. jobs per day) is reached
    │   └── Tampered               tampered             stored bytes no longer match their recorded hash: not served
    ├── RateLimited                rate_limited         too many failed sign-ins or bad tokens from one source
    ├── PayloadTooLarge            payload_too_large    the request body is larger than the service accepts
    ├── ValidationFailed           validation_failed    a batch failed its data contract (quarantined)
    ├── SandboxError               sandbox_error        the sandbox could not be set up (not the job's fault)
    ├── AuditWriteFailed           audit_write_failed   the audit record could not be written: action undone
    ├── SchemaOutOfDate            schema_out_of_date   the catalog database is not at the code's migration head
    └── InternalError              internal_error       a bug: please report it
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any, ClassVar


class TwhError(Exception):
    """Base of every error the warehouse raises on purpose."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details}


class InvalidInput(TwhError):
    code = "invalid_input"
    http_status = 422


class ManifestInvalid(InvalidInput):
    code = "manifest_invalid"


class PolicyInvalid(InvalidInput):
    code = "policy_invalid"


class JobSpecInvalid(InvalidInput):
    code = "job_spec_invalid"


class NotFound(TwhError):
    code = "not_found"
    http_status = 404


class Conflict(TwhError):
    code = "conflict"
    http_status = 409


class InvalidTransition(Conflict):
    code = "invalid_transition"


class AuthError(TwhError):
    code = "unauthenticated"
    http_status = 401


class Forbidden(TwhError):
    code = "forbidden"
    http_status = 403


class Refused(TwhError):
    code = "refused"
    http_status = 403


class AccessRefused(Refused):
    code = "access_refused"


class QueryRefused(Refused):
    code = "query_refused"


class BudgetExhausted(QueryRefused):
    """The privacy budget of a dataset cannot pay for the charge (``details.rule == "dp_budget"``)."""

    code = "budget_exhausted"


class TrainingRefused(Refused):
    """A training job's model, features or weights failed a check; nothing is released."""

    code = "training_refused"


class QuotaExceeded(Refused):
    """A per-tenant limit of a policy is reached (``details.rule``, e.g. ``max_jobs_per_day``)."""

    code = "quota_exceeded"
    http_status = 429


class Tampered(Refused):
    """Stored bytes (an export file, a synthetic table) do not match the hash recorded when they
    were made: nothing is served, and the refusal is audited. Not a bug of the caller's request."""

    code = "tampered"
    http_status = 409


class RateLimited(TwhError):
    """Too many failed authentications from one source in the current window: try again later."""

    code = "rate_limited"
    http_status = 429


class PayloadTooLarge(TwhError):
    """The request body is larger than the service accepts for this route (``details.limit`` bytes)."""

    code = "payload_too_large"
    http_status = 413


class ValidationFailed(TwhError):
    code = "validation_failed"
    http_status = 422


class SandboxError(TwhError):
    code = "sandbox_error"
    http_status = 500


class AuditWriteFailed(TwhError):
    code = "audit_write_failed"
    http_status = 503


class SchemaOutOfDate(TwhError):
    code = "schema_out_of_date"
    http_status = 503


class InternalError(TwhError):
    code = "internal_error"
    http_status = 500


def _all_subclasses(cls: type[TwhError]) -> list[type[TwhError]]:
    out: list[type[TwhError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


#: code -> class, so the client can raise the same class the server raised.
ERRORS_BY_CODE: dict[str, type[TwhError]] = {c.code: c for c in [TwhError, *_all_subclasses(TwhError)]}


def from_dict(payload: dict[str, Any]) -> TwhError:
    """Rebuild an error from its wire form (``{"code", "message", "details"}``)."""
    cls = ERRORS_BY_CODE.get(str(payload.get("code")), TwhError)
    return cls(str(payload.get("message", "")), details=payload.get("details") or {})
