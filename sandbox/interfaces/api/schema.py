"""What the HTTP API promises, for its OpenAPI document: response models, examples and error answers.

Every route of :mod:`sandbox.interfaces.api.app` declares a summary, a description (its docstring), a response
model with an example, and the error codes it can answer — each an ``ErrorOut`` whose ``code`` is
one of :data:`sandbox.errors.ERRORS_BY_CODE` under that code's HTTP status. Models allow fields
beyond the documented ones (``extra="allow"``): the services' dicts are the source of truth and
the models never drop what a client already reads. ``tests/e2e/test_api_conventions.py`` walks
``app.openapi()`` and fails for any route that breaks this.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import ERRORS_BY_CODE

#: request examples (``Body(openapi_examples=...)``) and non-JSON answers
PARQUET = "application/vnd.apache.parquet"
MOCK_CSV = '"uscc","period","vat_paid"\n"M00000000000004253","M00000000000001348",16527635.5285\n'
RECORD_LINE = '{"seq": 1, "action": "user.added", "actor": "system", "object_id": "admin", "hash": "fe89…"}\n'
USER_IN = {"analyst": {"summary": "an enterprise analyst",
                       "value": {"name": "bank_a_analyst", "role": "enterprise", "tenant": "bank_a"}}}
MANIFEST_IN = {"dataset": {"summary": "a steward's manifest (abridged)", "value": {
    "name": "tax_payments", "title": "Monthly tax payments", "provider_kind": "government",
    "stewards": ["tax_steward"],
    "schema": [{"name": "uscc", "type": "string", "role": "join_key"},
               {"name": "vat_paid", "type": "float64", "role": "measure"}],
    "policy": {"privacy_unit": "uscc", "tenants": ["bank_a"], "purposes": ["credit_risk"]}}}}
MIGRATE_IN = {"rename": {"summary": "rename a column", "value": {"manifest": MANIFEST_IN["dataset"]["value"],
                                                                 "renames": {"vat": "vat_paid"}}}}
JOB_IN = {"job": {"summary": "job.yaml and job.py, base64", "value": {"files": {
    "job.yaml": "bmFtZTogcmF0ZXMKcHVycG9zZTogY3JlZGl0X3Jpc2sKZGF0YXNldHM6IFtsb2Fuc10K",
    "job.py": "aW1wb3J0IHR3aF9qb2IK"}}}}
OVERRIDE_IN = {"sdc": {"summary": "allow sdc releases of important data", "value": {
    "allow": "sdc", "reason": "the regulator's written exemption no. 17 for aggregate statistics"}}}
TOKEN_IN = {"issue": {"summary": "a 30-day token for a CI job", "value": {"user": "bank_a_analyst", "days": 30,
                                                                        "label": "ci"}}}
DECISION_IN = {"approve": {"summary": "approve the reviewed bytes", "value": {
    "decision": "approve", "reason": "only aggregates over >= 10 firms", "bundle_sha256": "45b5ea18" * 8}}}
INGEST_EXAMPLES = {"requestBody": {"content": {"multipart/form-data": {"examples": {
    "csv": {"summary": "a CSV batch", "value": {"file": "(tax_payments.csv)", "encoding": "utf-8", "mode": "append"}},
    "source": {"summary": "no file: re-run the manifest's source block", "value": {}}}}}}}
SHA = "45b5ea1894070e36789b1fe06c012cfb40266a5d005631aface435f3994572e8"


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    code: str = Field(description="stable code (see the table in ARCHITECTURE.md, Errors)", examples=["not_found"])
    message: str = Field(description="for people; never holds data values", examples=["dataset 'x' does not exist"])
    details: dict[str, Any] = Field(default_factory=dict, description="machine-readable context, e.g. the rule")


class ErrorOut(BaseModel):
    """Every error of the API, whatever the route: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorBody


class PageOut(Out):
    total: int = Field(description="items matching, over all pages")
    offset: int = Field(description="index of the first item of this page")
    limit: int = Field(description="page size asked for (1..1000)")


class UserOut(Out):
    name: str
    role: str
    tenant: str


class UserCreatedOut(Out):
    user: UserOut
    token: str = Field(description="shown once; only its SHA-256 is stored")


class ColumnOut(Out):
    name: str
    type: str
    role: str


class TokenOut(Out):
    id: int
    user: str
    label: str | None
    fingerprint: str = Field(description="the first 12 hex digits of the token's SHA-256 (what the audit log names)")
    created_at: str
    expires_at: str
    last_used_at: str | None = Field(description="noted at most once a minute")
    revoked_at: str | None
    state: Literal["active", "expired", "revoked"]


class TokenIssuedOut(TokenOut):
    token: str = Field(description="shown once; only its SHA-256 is stored")


class TokenPage(PageOut):
    items: list[TokenOut]


class DatasetOut(Out):
    name: str
    provider_kind: str
    title: str
    stewards: list[str]
    current_version: int
    columns: list[ColumnOut]


class DatasetPage(PageOut):
    items: list[DatasetOut]


class BudgetOut(Out):
    dataset: str
    budget: dict[str, Any] | None = Field(description="the policy's DP budget; null when the dataset has none")
    scopes: list[dict[str, Any]]
    history: list[dict[str, Any]]


class IngestOut(Out):
    status: str = Field(description="committed | quarantined | unchanged")


class HistoryOut(Out):
    dataset: str
    current_version: int
    versions: list[dict[str, Any]]


class JobOut(Out):
    id: str
    name: str | None
    tenant: str
    submitted_by: str
    purpose: str
    datasets: list[str]
    state: str
    reason: str
    code_sha256: str
    created_at: str
    updated_at: str


class JobPage(PageOut):
    items: list[JobOut]


class LogsOut(Out):
    stdout: str
    stderr: str
    training_review: str = Field(
        default="", description="training jobs: the trainer's steward-only review (attack report, exact counts, "
                                "losses, timings) as JSON text; empty otherwise")


class ExportOut(Out):
    id: str
    job_id: str
    tenant: str
    state: str
    bundle_sha256: str | None = Field(description="null for the submitter until approved")
    needs_approval_from: list[str]
    files: list[dict[str, Any]] | None = Field(description="null for the submitter until approved")
    approvals: list[dict[str, Any]]
    created_at: str


class ExportPage(PageOut):
    items: list[ExportOut]


class FileOut(Out):
    name: str
    sha256: str
    size: int
    data_b64: str


class FilesOut(Out):
    """An export's whole bundle: its hash covers every file, so it is never paged."""

    files: list[FileOut]


class VerifyOut(Out):
    ok: bool
    records: int = Field(description="records present in the log")
    first_bad_seq: int | None
    problem: str = Field(description="the first problems, in one line")
    bad_records: int = Field(default=0, description="records that fail a check (undecodable, modified, unlinked, "
                                                    "unsealed, differing from their anchor)")
    missing: int = Field(default=0, description="seqs absent from the log (gaps, a removed tail)")
    bad_seqs: list[int] = Field(default_factory=list, description="the first 100 bad or missing seqs")
    problems: list[str] = Field(default_factory=list, description="every problem found (the first 100)")


class OverrideOut(Out):
    dataset: str
    allow: str = Field(description="sdc | dp | no_approval | any_steward")
    reason: str
    admin: str
    grade: str | None = Field(description="the dataset's grade when it is registered; null before")


class ProvenanceKeyOut(Out):
    algorithm: Literal["ed25519"]
    keyid: str = Field(description="SHA-256 of the raw 32-byte public key, hex (the DSSE signature's keyid)")
    public_key_pem: str
    public_key_b64: str = Field(description="the raw 32-byte public key, base64")


class AuditRecordOut(Out):
    seq: int
    ts: str
    actor: str
    tenant: str
    action: str
    object_type: str
    object_id: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    seal: str


class AuditPage(PageOut):
    items: list[AuditRecordOut]
    next_after: int | None = Field(description="pass as `after` for the next page (stable under appends)")


USER = {"name": "bank_a_analyst", "role": "enterprise", "tenant": "bank_a"}
DATASET = {"name": "tax_payments", "provider_kind": "government", "title": "Monthly tax payments",
           "stewards": ["tax_steward"], "current_version": 1,
           "classification": {"grade": "important", "category": "taxation", "basis": "",
                              "personal_information": False, "sensitive_personal_information": False,
                              "senior_stewards": ["tax_chief"]},
           "columns": [{"name": "uscc", "type": "string", "role": "join_key"},
                       {"name": "vat_paid", "type": "float64", "role": "measure"}]}
JOB = {"id": "job_bccf876c57938d4d", "name": "default-rate-by-industry-district", "tenant": "bank_a",
       "submitted_by": "analyst", "purpose": "credit_risk", "datasets": ["enterprise_registry", "bank_loans"],
       "pinned_versions": {"enterprise_registry": 1, "bank_loans": 1}, "state": "awaiting_approval",
       "reason": "waiting for the stewards of enterprise_registry, bank_loans", "code_sha256": SHA,
       "created_at": "2026-11-25T15:12:47.353111", "updated_at": "2026-11-25T15:12:50.501800",
       "export": {"id": "exp_0c058c737c707f52", "state": "pending"}}
EXPORT = {"id": "exp_0c058c737c707f52", "job_id": "job_bccf876c57938d4d", "tenant": "bank_a", "state": "pending",
          "bundle_sha256": SHA, "needs_approval_from": ["enterprise_registry", "bank_loans"],
          "files": [{"name": "default_rate.csv", "sha256": SHA, "size": 126}], "approvals": [],
          "created_at": "2026-11-25T15:12:50.515649"}
FILES = {"files": [{"name": "default_rate.csv", "sha256": SHA, "size": 18, "data_b64": "aW5kdXN0cnksbG9hbnMK"}]}
RECORD = {"seq": 7, "ts": "2026-11-25T15:12:21.511314+00:00", "actor": "analyst", "tenant": "bank_a",
          "action": "job.submitted", "object_type": "job", "object_id": "job_bccf876c57938d4d",
          "details": {"datasets": ["bank_loans"]}, "prev_hash": SHA, "hash": SHA, "seal": SHA}
BUDGET = {"dataset": "tax_payments", "budget": {"epsilon": "5.0", "delta": "0.000001", "period": "month"},
          "scopes": [{"scope": "*", "period": "2026-11", "spent": {"epsilon": "1/2", "delta": "0"}}],
          "history": [{"at": "2026-11-25T15:13:00+00:00", "epsilon": "1/2", "kind": "query", "job_id": "job_1"}]}
TOKEN = {"id": 7, "user": "bank_a_analyst", "label": "ci", "fingerprint": "3f2a9c61d0b4",
         "created_at": "2026-11-25T15:12:21.511314+00:00", "expires_at": "2026-12-25T15:12:21.511314+00:00",
         "last_used_at": None, "revoked_at": None, "state": "active"}
EXAMPLES: dict[str, Any] = {
    "me": USER, "user_created": {"user": USER, "token": "twh_… (shown once)"},
    "dataset": DATASET, "datasets": {"items": [DATASET], "total": 1, "offset": 0, "limit": 100},
    "budget": BUDGET, "ingest": {"status": "committed", "version": 2, "rows": 6944, "load_id": "ld_dd2bafd04c1c"},
    "history": {"dataset": "tax_payments", "current_version": 1,
                "versions": [{"version": 1, "operation": "WRITE", "load_id": "ld_dd2bafd04c1c", "current": True}]},
    "job": JOB, "jobs": {"items": [JOB], "total": 1, "offset": 0, "limit": 100},
    "logs": {"stdout": "2 groups released, 47 suppressed\n", "stderr": ""},
    "export": EXPORT, "exports": {"items": [EXPORT], "total": 1, "offset": 0, "limit": 100}, "files": FILES,
    "verify": {"ok": True, "records": 36, "first_bad_seq": None, "problem": "", "bad_records": 0, "missing": 0,
               "bad_seqs": [], "problems": []},
    "token": TOKEN, "token_issued": {**TOKEN, "token": "twh_… (shown once)"},
    "tokens": {"items": [TOKEN], "total": 1, "offset": 0, "limit": 100},
    "records": {"items": [RECORD], "total": 36, "offset": 0, "limit": 1, "next_after": 7},
    "override": {"dataset": "tax_payments", "allow": "sdc", "reason": OVERRIDE_IN["sdc"]["value"]["reason"],
                 "admin": "admin", "grade": "important",
                 "meaning": "release under disclosure control (release_mode sdc) although the grade asks for dp"},
    "provenance_key": {"algorithm": "ed25519", "keyid": SHA,
                       "public_key_pem": "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA…\n-----END PUBLIC KEY-----\n",
                       "public_key_b64": "4m0hX…"},
}


def ok(example: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The success answer's example (its schema is the route's ``response_model``)."""
    return {status: {"content": {"application/json": {"example": EXAMPLES[example]}}}}


def raw(media: dict[str, Any], description: str) -> dict[int | str, dict[str, Any]]:
    """A non-JSON success answer: media type -> example text (or None for binary)."""
    content = {mt: ({"example": ex, "schema": {"type": "string"}} if ex is not None
                    else {"schema": {"type": "string", "format": "binary"}, "example": "(binary)"})
               for mt, ex in media.items()}
    return {200: {"description": description, "content": content}}


def errors(*codes: str) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route: every route can answer ``unauthenticated``, ``invalid_input``,
    ``rate_limited`` (too many bad tokens from one address) and ``payload_too_large`` (body cap)."""
    by_status: dict[int, dict[str, Any]] = {}
    for code in ("unauthenticated", "invalid_input", "rate_limited", "payload_too_large", *codes):
        cls = ERRORS_BY_CODE[code]
        entry = by_status.setdefault(cls.http_status, {"model": ErrorOut, "description": "",
                                                        "content": {"application/json": {"examples": {}}}})
        entry["description"] = ", ".join(filter(None, [entry["description"], f"`{code}`"]))
        entry["content"]["application/json"]["examples"][code] = {
            "summary": (cls.__doc__ or cls.__name__).strip().splitlines()[0],
            "value": {"error": {"code": code, "message": _MESSAGES.get(code, code.replace("_", " ")), "details": {}}}}
    return dict(by_status)


_MESSAGES = {
    "unauthenticated": "unknown or revoked token", "invalid_input": "limit: must be between 1 and 1000",
    "not_found": "dataset 'nope' does not exist", "forbidden": "this action needs the role admin",
    "conflict": "user 'x' already exists",
    "budget_exhausted": "the privacy budget of 'tax_payments' has 0 epsilon left",
    "manifest_invalid": "schema: column 'uscc' declared twice", "job_spec_invalid": "job.yaml is missing",
    "policy_invalid": "release_mode: important data (重要数据) may be released only as dp, not 'sdc'",
    "validation_failed": "the batch failed its contract: quarantined",
    "invalid_transition": "export is already approved",
    "refused": "the policy does not allow DP synthetic data", "access_refused": "tenant bank_b may not use loans",
    "rate_limited": "too many failed authentications from this address; wait a minute",
    "payload_too_large": "the request body is larger than 33554432 bytes",
    "tampered": "the stored bytes of export exp_0c058c737c707f52 do not match their approved hash",
}
