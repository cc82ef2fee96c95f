"""The HTTP API (FastAPI). Thin: authenticate, validate the body, call the facade, shape the answer.

Every error has one shape — ``{"error": {"code", "message", "details"}}`` — with the stable codes of
:mod:`sandbox.errors`; the client maps them back to the same classes. Request bodies reject
unknown fields (no mass assignment). Every authenticated request is recorded (``token.used``);
rejected tokens are counted per source and recorded in aggregate, and a source past its limit is
answered 429 (:mod:`sandbox.access.throttle`). Bodies are capped before they are read
(:mod:`.limits`), every numeric parameter is bounded, and no input answers a 5xx. Every route
declares its summary, description, response model, examples and error codes
(:mod:`sandbox.interfaces.api.schema`); every list pages with ``offset``/``limit``.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ...access.throttle import AuthFailures, client_source
from ...audit.search import AuditFilter
from ...auth import Principal, token_fingerprint
from ...datasets.manifest import parse_manifest
from ...errors import AuthError, InvalidInput, JobSpecInvalid, PayloadTooLarge, RateLimited, TwhError
from ...jobs.spec import MAX_JOB_BYTES, MAX_JOB_FILES, parse_job_spec
from ...settings import Settings
from ...warehouse import Warehouse
from .. import web
from ..client import ACT_AS_HEADER
from . import docs
from . import products as products_api
from .limits import BodyLimit
from .schema import (
    DECISION_IN,
    INGEST_EXAMPLES,
    JOB_IN,
    MANIFEST_IN,
    MIGRATE_IN,
    MOCK_CSV,
    OVERRIDE_IN,
    PARQUET,
    RECORD_LINE,
    TOKEN_IN,
    USER_IN,
    AuditPage,
    BudgetOut,
    DatasetOut,
    DatasetPage,
    ExportOut,
    ExportPage,
    FilesOut,
    HistoryOut,
    IngestOut,
    JobOut,
    JobPage,
    LogsOut,
    Out,
    OverrideOut,
    ProvenanceKeyOut,
    TokenIssuedOut,
    TokenOut,
    TokenPage,
    UserCreatedOut,
    UserOut,
    VerifyOut,
    errors,
    ok,
    raw,
)

log = logging.getLogger(__name__)
MAX_INGEST_BYTES = 2 * 1024**3
#: the ASGI scope key where the local server's protocol puts the Unix-socket peer's uid
#: (sandbox.interfaces.api.local); no other server sets it
PEER_UID = "twh.peer_uid"


class MigrateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any]
    renames: dict[str, str] = Field(default_factory=dict)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(In):
    name: str = Field(examples=["bank_a_analyst"])
    role: Literal["enterprise", "steward", "auditor", "admin", "subject"]
    tenant: str = Field(examples=["bank_a"])
    subject: str | None = Field(default=None, max_length=128, description="role subject only: the privacy-unit "
                                "value (a firm's credit code) the user speaks for")


class JobIn(In):
    #: file name -> base64 content; must include job.yaml and the entrypoint
    files: dict[str, str] = Field(examples=[{"job.yaml": "bmFtZTogLi4u", "job.py": "aW1wb3J0IHR3aF9qb2I="}])


class DecisionIn(In):
    decision: Literal["approve", "deny"]
    reason: str = Field(min_length=1, max_length=2000, examples=["only aggregates over >= 10 firms"])
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class OverrideIn(In):
    allow: Literal["sdc", "dp", "no_approval", "any_steward"] = Field(
        description="what the dataset may do beyond its grade (policies.grading.ALLOWANCES)")
    reason: str = Field(min_length=1, max_length=2000, examples=["the regulator's written exemption no. 17"])


class TokenIn(In):
    user: str = Field(min_length=1, max_length=64, examples=["bank_a_analyst"])
    days: int | None = Field(default=None, ge=1, le=3650, description="fewer days than the policy's (default: "
                                                                       "the policy's, Settings.token_ttl_days)")
    label: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[\w .:@-]+$",
                              examples=["ci"])


#: the largest value any integer parameter takes (the catalog stores 64-bit integers)
INT64 = 2**63 - 1
Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="index of the first item")]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]


def current_principal(request: Request) -> Principal:
    """Authenticate the bearer token; record its use in the audit log. A rejection is counted
    per source and recorded in aggregate (never one locked insert per bad request); a source
    past its limit gets 429."""
    wh: Warehouse = request.app.state.warehouse
    if ACT_AS_HEADER.lower() in request.headers:
        return _acting(request, wh, request.headers[ACT_AS_HEADER.lower()])
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    where = {"method": request.method, "path": request.url.path[:200]}
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the header 'Authorization: Bearer <token>'")
    try:
        who = wh.users.authenticate(token.strip())
    except AuthError:
        failures: AuthFailures = request.app.state.auth_failures
        source = client_source(request.headers, request.client.host if request.client else None,
                               wh.settings.trusted_proxy)
        if failures.failed(source, token_fingerprint(token), where):
            raise RateLimited("too many failed authentications from this address; wait a minute",
                              details={"window_seconds": failures.window_s}) from None
        raise
    wh.ctx.record(who, "token.used", "token", token_fingerprint(token), where)
    return who


def _acting(request: Request, wh: Warehouse, user: str) -> Principal:
    """Local mode through the per-home local server: its Unix socket's peer (SO_PEERCRED, read
    when the connection was accepted and carried in the request's scope, PEER_UID) names the
    warehouse user it acts as, as ``twh --as USER`` does in one process. Honoured only by an app
    made for that socket (``app.state.act_as_uids``: the server's own uid and root) and only for
    a peer whose uid is in it; on TCP (``twh serve``) no request has a peer uid, so the header
    authenticates nobody and is refused — never ignored in favour of a weaker check."""
    uids = getattr(request.app.state, "act_as_uids", frozenset())
    peer = request.scope.get(PEER_UID)
    if peer is None or peer not in uids:
        raise AuthError(f"the {ACT_AS_HEADER} header is honoured only on the home's local-server socket, "
                        "for its owner; send 'Authorization: Bearer <token>'")
    return wh.users.principal(user)


Who = Annotated[Principal, Depends(current_principal)]


def _error(exc: TwhError) -> JSONResponse:
    return JSONResponse(status_code=exc.http_status, content={"error": exc.to_dict()})


def create_app(settings: Settings | None = None, *, warehouse: Warehouse | None = None) -> FastAPI:
    wh = warehouse or Warehouse.open(settings or Settings.from_env())
    stop = threading.Event()
    wake = threading.Event()  # a submit wakes the embedded worker (sandbox.jobs.workers.Worker.wake)
    finished = threading.Condition()  # ...which notifies it after each job (Worker.finished)
    failures = AuthFailures(wh.ctx)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        wh.jobs.recover()
        worker = None
        if wh.settings.run_worker:
            worker = threading.Thread(target=_worker_loop, args=(wh, stop, wake, finished), name="twh-worker",
                                      daemon=True)
            worker.start()
        flusher = threading.Thread(target=_flush_loop, args=(failures, stop), name="twh-auth-flush", daemon=True)
        flusher.start()
        yield
        stop.set()
        wake.set()
        if worker:
            worker.join(timeout=5)
        flusher.join(timeout=5)
        failures.flush(force=True)  # the windows still open are recorded too

    app = FastAPI(title="Training Warehouse (训练仓)", version="0.1.0", lifespan=lifespan,
                  description="Raw data never leaves; only gated aggregates and DP weights do.",
                  docs_url=None, redoc_url=None)
    docs.mount(app)  # /docs and /redoc with assets served from here: no CDN (offline networks)
    app.state.warehouse = wh
    app.state.auth_failures = failures
    app.state.jobs_finished = finished
    app.add_middleware(BodyLimit, default=wh.settings.max_body_bytes, ingest=MAX_INGEST_BYTES)
    web.mount(app)  # the people's pages under /ui (sandbox/web): same tokens, same services

    @app.exception_handler(TwhError)
    async def _twh(_req: Request, exc: TwhError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        if first.get("type") == "json_invalid":  # its loc is a character position, not a field
            return _error(InvalidInput(f"body: not valid JSON ({first.get('ctx', {}).get('error', 'unparseable')})",
                                       details={"field": "body"}))
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(InvalidInput(f"{field or 'body'}: {first.get('msg')}", details={"field": field}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        # One shape and the documented status for every code: a body that does not parse (FastAPI's
        # 400) is invalid input (422), like any other malformed request.
        if exc.status_code == 413:
            return _error(PayloadTooLarge(str(exc.detail), details={"limit": getattr(exc, "limit", None)}))
        if exc.status_code == 404:
            return JSONResponse(status_code=404, content={"error": {"code": "not_found", "message": str(exc.detail),
                                                                    "details": {}}})
        if exc.status_code == 405:
            return JSONResponse(status_code=405, headers=exc.headers or {},
                                content={"error": {"code": "invalid_input", "message": str(exc.detail),
                                                   "details": {}}})
        return _error(InvalidInput(str(exc.detail)))

    @app.exception_handler(Exception)
    async def _bug(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the log has the trace; the response has no internals
        return JSONResponse(status_code=500, content={"error": {"code": "internal_error",
                                                                "message": "internal error", "details": {}}})


    @app.get("/v1/me", tags=["users"], summary="Who am I", response_model=UserOut,
             responses={**ok("me"), **errors()})
    def me(who: Who) -> dict[str, Any]:
        """The principal of the bearer token: name, role and tenant."""
        return {"name": who.name, "role": who.role.value, "tenant": who.tenant,
                **({"subject": who.subject} if who.subject else {})}

    @app.post("/v1/users", tags=["users"], status_code=201, summary="Add a user", response_model=UserCreatedOut,
              responses={**ok("user_created", 201), **errors("forbidden", "conflict")})
    def add_user(body: Annotated[UserIn, Body(openapi_examples=USER_IN)], who: Who) -> dict[str, Any]:
        """Admins only. Creates the user and its first token, which is in this answer and nowhere else."""
        user, token = wh.users.add(who, body.name, body.role, body.tenant, body.subject)
        return {"user": user, "token": token}

    @app.get("/v1/datasets", tags=["datasets"], summary="List datasets", response_model=DatasetPage,
             responses={**ok("datasets"), **errors()})
    def list_datasets(who: Who, offset: Offset = 0, limit: Limit = 100,
                      grade: Literal["core", "important", "general", "unclassified"] | None = None) -> dict[str, Any]:
        """The catalog: every dataset's name, kind, stewards, current version, column roles and
        classification (GB/T 43697 grade and category), optionally of one grade only (paged)."""
        return _page(wh.datasets.list(who, grade), offset, limit)

    @app.post("/v1/datasets/{name}/overrides", tags=["datasets"], status_code=201,
              summary="Allow a dataset beyond its grade", response_model=OverrideOut,
              responses={**ok("override", 201), **errors("forbidden", "conflict")})
    def override_dataset(name: Annotated[str, PathParam(max_length=64)],
                         body: Annotated[OverrideIn, Body(openapi_examples=OVERRIDE_IN)], who: Who) -> dict[str, Any]:
        """Admins only, audited (``dataset.override_recorded``): e.g. ``sdc`` releases of important data.
        The dataset may be registered later; its manifest may then be that much weaker than its grade."""
        return wh.datasets.override(who, name, body.allow, body.reason)

    @app.get("/v1/provenance/key", tags=["exports"], summary="The provenance signing key",
             response_model=ProvenanceKeyOut, responses={**ok("provenance_key"), **errors()})
    def provenance_key() -> dict[str, Any]:
        """The Ed25519 public key every approved export's ``provenance.intoto.jsonl`` is signed with
        (public: a third party verifies a release offline with it, ``twh export verify``)."""
        return wh.exports.provenance_key()

    @app.post("/v1/datasets", tags=["datasets"], status_code=201, summary="Register a dataset",
              response_model=DatasetOut, responses={**ok("dataset", 201), **errors("forbidden", "conflict",
                                                                                   "manifest_invalid",
                                                                                   "policy_invalid")})
    def register_dataset(manifest: Annotated[dict[str, Any], Body(openapi_examples=MANIFEST_IN)],
                         who: Who) -> dict[str, Any]:
        """Stewards register a manifest (schema with column roles, contract, policy); the table starts empty."""
        return wh.datasets.register(who, parse_manifest(manifest))

    @app.get("/v1/datasets/{name}", tags=["datasets"], summary="Show a dataset", response_model=DatasetOut,
             responses={**ok("dataset"), **errors("not_found")})
    def show_dataset(name: str, who: Who) -> dict[str, Any]:
        """Schema, policy, contract and versions; quarantine reports for the dataset's stewards only."""
        return wh.datasets.show(who, name)

    @app.get("/v1/datasets/{name}/budget", tags=["datasets"], summary="A dataset's DP budget",
             response_model=BudgetOut, responses={**ok("budget"), **errors("not_found", "forbidden")})
    def dataset_budget(name: str, who: Who) -> dict[str, Any]:
        """Total, spent and remaining ε/δ per scope and period, and the charges (exact fractions as text)."""
        return wh.budgets.show(who, name)

    @app.post("/v1/datasets/{name}/ingest", tags=["datasets"], status_code=201, summary="Land a batch",
              response_model=IngestOut, openapi_extra=INGEST_EXAMPLES,
              responses={**ok("ingest", 201), **errors("not_found", "forbidden", "conflict", "validation_failed")})
    def ingest(name: str, who: Who, file: Annotated[UploadFile | None, File()] = None,
               encoding: Annotated[str | None, Form()] = None, mode: Annotated[str | None, Form()] = None,
               kind: Annotated[str | None, Form()] = None) -> dict[str, Any]:
        """Upload a file (CSV, Excel, JSON lines, Parquet…), or send no file to re-run the manifest's source.

        The batch is checked against the contract: it commits whole as a new version, or is quarantined whole."""
        if file is None:  # re-run the manifest's source: block
            return wh.ingest.ingest(who, name, None, mode=mode)
        suffix = Path(file.filename or "upload.csv").suffix.lower()
        with tempfile.TemporaryDirectory(prefix="twh-upload-") as tmp:
            dest = Path(tmp) / f"upload{suffix}"
            with open(dest, "wb") as fh:
                copied = _copy_capped(file.file, fh, MAX_INGEST_BYTES)
            if copied > MAX_INGEST_BYTES:
                raise InvalidInput(f"upload larger than {MAX_INGEST_BYTES} bytes")
            return wh.ingest.ingest(who, name, dest, encoding=encoding, source_name=file.filename, mode=mode,
                                    kind=kind)

    @app.get("/v1/datasets/{name}/history", tags=["datasets"], summary="A dataset's versions",
             response_model=HistoryOut, responses={**ok("history"), **errors("not_found", "forbidden")})
    def dataset_history(name: str, who: Who) -> dict[str, Any]:
        """Every Delta version with its load, mode, connector and source hash."""
        return wh.dataset_history(who, name)

    @app.post("/v1/datasets/{name}/migrate", tags=["datasets"], summary="Migrate a dataset's schema",
              response_model=Out, responses={200: {"content": {"application/json": {"example": {
                  "dataset": "tax_payments", "version": 2, "renames": {"vat": "vat_paid"}}}}},
                  **errors("not_found", "forbidden", "conflict", "manifest_invalid", "policy_invalid")})
    def migrate_dataset(name: str, body: Annotated[MigrateIn, Body(openapi_examples=MIGRATE_IN)],
                        who: Who) -> dict[str, Any]:
        """Rewrite the table into a new manifest's schema in one commit (renames map old to new names)."""
        return wh.migrate_dataset(who, name, parse_manifest(body.manifest), body.renames)

    @app.get("/v1/datasets/{name}/mock", tags=["datasets"], summary="Mock rows of a dataset",
             response_class=Response, responses={**raw({"text/csv": MOCK_CSV, PARQUET: None},
                                                       "random rows that follow the schema, never the data"),
                                                 **errors("not_found", "access_refused")})
    def mock_dataset(name: str, who: Who, rows: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                     seed: Annotated[int, Query(ge=0, le=INT64, description="same seed, same bytes")] = 0,
                     format: Literal["csv", "parquet"] = "csv") -> Response:  # noqa: A002 - the query name
        """Rows drawn from the declared schema and domains only (no data is read): for writing job code."""
        data = wh.datasets.mock(who, name, rows=rows, seed=seed, fmt=format)
        media = "text/csv" if format == "csv" else PARQUET
        return Response(content=data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}-mock.{format}"'})

    @app.get("/v1/datasets/{name}/synthetic", tags=["datasets"], summary="DP synthetic rows of a dataset",
             response_class=Response, responses={**raw({PARQUET: None, "text/csv": MOCK_CSV},
                                                       "the dataset's DP synthetic table (generated once per version)"),
                                                 **errors("not_found", "forbidden", "refused", "budget_exhausted",
                                                          "conflict", "access_refused", "tampered")})
    def synthetic_dataset(name: str, who: Who,
                          format: Literal["csv", "parquet"] = "parquet",  # noqa: A002 - the query name
                          purpose: Annotated[str | None, Query(max_length=64, description=(
                              "what the data is for: enterprises must name one of the policy's purposes"))] = None,
                          ) -> Response:
        """Generated once per version under the policy's ε (charged to the shared budget), then served to all.
        Enterprises name their purpose, checked against the policy like every other access; every refusal
        is audited."""
        data = wh.synthetic.get(who, name, fmt=format, purpose=purpose)
        media = "text/csv" if format == "csv" else PARQUET
        return Response(content=data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}-synthetic.{format}"'})

    @app.post("/v1/jobs", tags=["jobs"], status_code=201, summary="Submit a job", response_model=JobOut,
              responses={**ok("job", 201), **errors("job_spec_invalid", "access_refused", "not_found")})
    def submit_job(body: Annotated[JobIn, Body(openapi_examples=JOB_IN)], who: Who) -> dict[str, Any]:
        """Enterprise users upload job.yaml and code (base64); the job is queued for a worker's sandbox."""
        return submit(who, body.files)

    def submit(who: Principal, files_b64: dict[str, str]) -> dict[str, Any]:
        """Queue an uploaded job (``/v1/jobs``; the local server's submit-and-wait) and wake the worker."""
        files = _decode_job_files(files_b64)
        spec = parse_job_spec(files.get("job.yaml", b""))
        if spec.entrypoint not in files:
            raise JobSpecInvalid(f"entrypoint {spec.entrypoint} is not among the uploaded files")
        job = wh.jobs.submit_files(who, spec, files)
        wake.set()
        return job

    app.state.submit_job = submit

    @app.get("/v1/jobs", tags=["jobs"], summary="List jobs", response_model=JobPage,
             responses={**ok("jobs"), **errors()})
    def list_jobs(who: Who, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Jobs the caller may see: a tenant's own, a steward's datasets', everything for auditors (paged)."""
        return _page(wh.jobs.list(who), offset, limit)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], summary="Show a job", response_model=JobOut,
             responses={**ok("job"), **errors("not_found")})
    def show_job(job_id: str, who: Who) -> dict[str, Any]:
        """State, reason, pinned versions, export; the queries and gate decisions for reviewers only."""
        return wh.jobs.get(who, job_id)

    @app.get("/v1/jobs/{job_id}/logs", tags=["jobs"], summary="A job's logs", response_model=LogsOut,
             responses={**ok("logs"), **errors("not_found", "forbidden")})
    def job_logs(job_id: str, who: Who) -> dict[str, Any]:
        """stdout and stderr of the sandbox run: reviewers only (they can carry what the gate withheld)."""
        return wh.jobs.logs(who, job_id)

    @app.get("/v1/exports", tags=["exports"], summary="List exports", response_model=ExportPage,
             responses={**ok("exports"), **errors()})
    def list_exports(who: Who, state: Literal["pending", "approved", "denied"] | None = None, offset: Offset = 0,
                     limit: Limit = 100) -> dict[str, Any]:
        """Exports the caller may see, newest first, optionally in one state (paged)."""
        return _page(wh.exports.list(who, state), offset, limit)

    @app.get("/v1/exports/{export_id}", tags=["exports"], summary="Show an export", response_model=ExportOut,
             responses={**ok("export"), **errors("not_found")})
    def show_export(export_id: str, who: Who) -> dict[str, Any]:
        """State, bundle hash, files (names, sizes, hashes) and decisions; file details withheld from the
        submitter until approved."""
        return wh.exports.get(who, export_id)

    @app.get("/v1/exports/{export_id}/preview", tags=["exports"], summary="The bytes under review",
             response_model=FilesOut, responses={**ok("files"), **errors("not_found", "forbidden")})
    def preview_export(export_id: str, who: Who) -> dict[str, Any]:
        """Stewards, auditors and admins read the exact bytes (base64) an approval would release."""
        return {"files": [_file_json(f) for f in wh.exports.preview(who, export_id)]}

    @app.post("/v1/exports/{export_id}/decision", tags=["exports"], summary="Approve or deny an export",
              response_model=ExportOut, responses={**ok("export"), **errors("not_found", "forbidden", "conflict",
                                                                             "invalid_transition")})
    def decide_export(export_id: str, body: Annotated[DecisionIn, Body(openapi_examples=DECISION_IN)],
                      who: Who) -> dict[str, Any]:
        """A steward's decision, bound to the bundle hash they reviewed; another hash is refused."""
        return wh.exports.decide(who, export_id, body.decision, body.reason, body.bundle_sha256)

    @app.get("/v1/exports/{export_id}/download", tags=["exports"], summary="Download an approved export",
             response_model=FilesOut, responses={**ok("files"), **errors("not_found", "forbidden", "tampered")})
    def download_export(export_id: str, who: Who) -> dict[str, Any]:
        """The submitting tenant downloads an approved export; the bytes are re-hashed first (audited)."""
        return {"files": [_file_json(f) for f in wh.exports.download(who, export_id)]}

    @app.get("/v1/tokens", tags=["users"], summary="List tokens", response_model=TokenPage,
             responses={**ok("tokens"), **errors("not_found")})
    def list_tokens(who: Who, user: Annotated[str | None, Query(max_length=64)] = None, offset: Offset = 0,
                    limit: Limit = 100) -> dict[str, Any]:
        """Tokens (never the secrets): id, user, label, fingerprint, issue, expiry, last use and state.
        Admins and auditors see everyone's, others their own."""
        return _page(wh.users.list_tokens(who, user), offset, limit)

    @app.post("/v1/tokens", tags=["users"], status_code=201, summary="Issue a token", response_model=TokenIssuedOut,
              responses={**ok("token_issued", 201), **errors("forbidden", "not_found")})
    def issue_token(body: Annotated[TokenIn, Body(openapi_examples=TOKEN_IN)], who: Who) -> dict[str, Any]:
        """Admins only. A new token for a user, expiring after the policy's days (or fewer); the token is in
        this answer and nowhere else."""
        info, token = wh.users.issue(who, body.user, days=body.days, label=body.label)
        return {**info, "token": token}

    @app.delete("/v1/tokens/{token_id}", tags=["users"], summary="Revoke a token", response_model=TokenOut,
                responses={**ok("token"), **errors("not_found")})
    def revoke_token(token_id: Annotated[int, PathParam(ge=1, le=INT64)], who: Who) -> dict[str, Any]:
        """Admins revoke any token, others their own (someone else's is not found). Web sessions signed in
        with it end at once."""
        return wh.users.revoke_token(who, token_id)

    @app.get("/v1/audit/verify", tags=["audit"], summary="Verify the audit chain", response_model=VerifyOut,
             responses={**ok("verify"), **errors("forbidden")})
    def audit_verify(who: Who) -> dict[str, Any]:
        """Recompute every hash and seal; name the first record modified, deleted or reordered."""
        return wh.audit_verify(who).to_dict()

    @app.get("/v1/audit/records", tags=["audit"], summary="Search the audit log", response_model=AuditPage,
             responses={**ok("records"), **errors("forbidden")})
    def audit_records(who: Who, action: str | None = None, actor: str | None = None, object_id: str | None = None,
                      tenant: str | None = None, job_id: str | None = None, since: str | None = None,
                      until: str | None = None, after: Annotated[int, Query(ge=0, le=INT64)] = 0, offset: Offset = 0,
                      limit: Limit = 100) -> dict[str, Any]:
        """Filter by action (``query.*`` wildcards), actor, tenant, object, job and time; page by offset or
        by ``after`` (the last seq seen)."""
        flt = AuditFilter.of(action=action, actor=actor, tenant=tenant, object_id=object_id, job_id=job_id,
                             since=since, until=until, after=after or None)
        items, total = wh.audit_search(who, flt, offset=offset, limit=limit)
        return {"items": items, "total": total, "offset": offset, "limit": limit,
                "next_after": items[-1]["seq"] if items else None}

    @app.get("/v1/audit/export", tags=["audit"], summary="Export the audit log", response_class=Response,
             responses={**raw({"application/x-ndjson": RECORD_LINE}, "every record, one JSON object a line"),
                        **errors("forbidden")})
    def audit_export(who: Who) -> PlainTextResponse:
        """The whole log as JSON lines (what an external verifier checks); the export itself is audited."""
        buf = io.StringIO()
        wh.audit_export(who, buf)
        return PlainTextResponse(buf.getvalue(), media_type="application/x-ndjson")

    products_api.mount(app, wh, Who)  # features, models, inference, verification, authorisations, subjects
    return app


def _page(items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    if offset < 0 or not 1 <= limit <= 1000:
        raise InvalidInput("offset must be >= 0 and limit between 1 and 1000")
    return {"items": items[offset:offset + limit], "total": len(items), "offset": offset, "limit": limit}


def _file_json(f: Any) -> dict[str, Any]:
    return {"name": f.name, "sha256": f.sha256, "size": len(f.data), "data_b64": base64.b64encode(f.data).decode()}


def _decode_job_files(files: dict[str, str]) -> dict[str, bytes]:
    if len(files) > MAX_JOB_FILES:
        raise JobSpecInvalid(f"a job has at most {MAX_JOB_FILES} files")
    out: dict[str, bytes] = {}
    total = 0
    for name, b64 in files.items():
        if "/" in name or "\\" in name or name.startswith(".") or not name or len(name) > 100:
            raise JobSpecInvalid(f"job file name {name[:40]!r} is not a plain file name")
        try:
            out[name] = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise JobSpecInvalid(f"job file {name!r} is not valid base64") from exc
        total += len(out[name])
        if total > MAX_JOB_BYTES:
            raise JobSpecInvalid(f"job files are larger than {MAX_JOB_BYTES} bytes")
    if "job.yaml" not in out:
        raise JobSpecInvalid("job.yaml is missing")
    return out


def _copy_capped(src: Any, dst: Any, cap: int) -> int:
    n = 0
    while chunk := src.read(1 << 20):
        n += len(chunk)
        if n > cap:
            return n
        dst.write(chunk)
    return n


def _flush_loop(failures: AuthFailures, stop: threading.Event) -> None:
    # Windows of failed authentications that ended are recorded even when no new failure comes.
    while not stop.wait(max(1.0, min(failures.window_s / 4, 30.0))):
        try:
            failures.flush()
        except TwhError:
            log.exception("failed authentications could not be recorded; will retry")


def _worker_loop(wh: Warehouse, stop: threading.Event, wake: threading.Event,
                 finished: threading.Condition) -> None:
    # The same queue and leases as `twh worker` processes (sandbox.jobs.workers): they can run beside it.
    from ...jobs.workers import Worker

    Worker(wh, wake=wake, finished=finished).serve(stop)

