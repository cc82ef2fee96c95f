"""The HTTP API (FastAPI). Thin: authenticate, validate the body, call the facade, shape the answer.

Every error has one shape — ``{"error": {"code", "message", "details"}}`` — with the stable codes of
:mod:`sandbox.errors`; the client maps them back to the same classes. Request bodies reject
unknown fields (no mass assignment). Every authenticated request is recorded (``token.used``),
and so is every rejected token.
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

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import web
from .auditsearch import AuditFilter
from .auth import SYSTEM, Principal, token_fingerprint
from .errors import AuthError, InvalidInput, JobSpecInvalid, TwhError
from .jobspec import MAX_JOB_BYTES, MAX_JOB_FILES, parse_job_spec
from .manifest import parse_manifest
from .settings import Settings
from .warehouse import Warehouse

log = logging.getLogger(__name__)
MAX_INGEST_BYTES = 2 * 1024**3


class MigrateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    manifest: dict[str, Any]
    renames: dict[str, str] = Field(default_factory=dict)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(Body):
    name: str = Field(examples=["bank_a_analyst"])
    role: Literal["enterprise", "steward", "auditor", "admin"]
    tenant: str = Field(examples=["bank_a"])


class JobIn(Body):
    #: file name -> base64 content; must include job.yaml and the entrypoint
    files: dict[str, str] = Field(examples=[{"job.yaml": "bmFtZTogLi4u", "job.py": "aW1wb3J0IHR3aF9qb2I="}])


class DecisionIn(Body):
    decision: Literal["approve", "deny"]
    reason: str = Field(min_length=1, max_length=2000, examples=["only aggregates over >= 10 firms"])
    bundle_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


def current_principal(request: Request) -> Principal:
    """Authenticate the bearer token; record its use (or its rejection) in the audit log."""
    wh: Warehouse = request.app.state.warehouse
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    where = {"method": request.method, "path": request.url.path[:200]}
    if scheme.lower() != "bearer" or not token:
        raise AuthError("send the header 'Authorization: Bearer <token>'")
    try:
        who = wh.users.authenticate(token.strip())
    except AuthError:
        wh.ctx.record(SYSTEM, "token.rejected", "token", token_fingerprint(token), where)
        raise
    wh.ctx.record(who, "token.used", "token", token_fingerprint(token), where)
    return who


Who = Annotated[Principal, Depends(current_principal)]


def _error(exc: TwhError) -> JSONResponse:
    return JSONResponse(status_code=exc.http_status, content={"error": exc.to_dict()})


def create_app(settings: Settings | None = None, *, warehouse: Warehouse | None = None) -> FastAPI:
    wh = warehouse or Warehouse.open(settings or Settings.from_env())
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        wh.jobs.recover()
        worker = None
        if wh.settings.run_worker:
            worker = threading.Thread(target=_worker_loop, args=(wh, stop), name="twh-worker", daemon=True)
            worker.start()
        yield
        stop.set()
        if worker:
            worker.join(timeout=5)

    app = FastAPI(title="Training Warehouse (训练仓)", version="0.1.0", lifespan=lifespan,
                  description="Raw data never leaves; only gated aggregates and DP weights do.")
    app.state.warehouse = wh
    web.mount(app)  # the people's pages under /ui (sandbox/web): same tokens, same services

    @app.exception_handler(TwhError)
    async def _twh(_req: Request, exc: TwhError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(InvalidInput(f"{field or 'body'}: {first.get('msg')}", details={"field": field}))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "invalid_input"}.get(exc.status_code, "invalid_input")
        return JSONResponse(status_code=exc.status_code, content={"error": {"code": code, "message": str(exc.detail),
                                                                            "details": {}}})

    @app.exception_handler(Exception)
    async def _bug(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")  # the log has the trace; the response has no internals
        return JSONResponse(status_code=500, content={"error": {"code": "internal_error",
                                                                "message": "internal error", "details": {}}})


    @app.get("/v1/me", tags=["users"])
    def me(who: Who) -> dict[str, Any]:
        return {"name": who.name, "role": who.role.value, "tenant": who.tenant}

    @app.post("/v1/users", tags=["users"], status_code=201)
    def add_user(body: UserIn, who: Who) -> dict[str, Any]:
        user, token = wh.users.add(who, body.name, body.role, body.tenant)
        return {"user": user, "token": token}

    @app.get("/v1/datasets", tags=["datasets"])
    def list_datasets(who: Who, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return _page(wh.datasets.list(who), offset, limit)

    @app.post("/v1/datasets", tags=["datasets"], status_code=201)
    def register_dataset(manifest: dict[str, Any], who: Who) -> dict[str, Any]:
        return wh.datasets.register(who, parse_manifest(manifest))

    @app.get("/v1/datasets/{name}", tags=["datasets"])
    def show_dataset(name: str, who: Who) -> dict[str, Any]:
        return wh.datasets.show(who, name)

    @app.get("/v1/datasets/{name}/budget", tags=["datasets"])
    def dataset_budget(name: str, who: Who) -> dict[str, Any]:
        return wh.budgets.show(who, name)

    @app.post("/v1/datasets/{name}/ingest", tags=["datasets"], status_code=201)
    def ingest(name: str, who: Who, file: Annotated[UploadFile | None, File()] = None,
               encoding: Annotated[str | None, Form()] = None, mode: Annotated[str | None, Form()] = None,
               kind: Annotated[str | None, Form()] = None) -> dict[str, Any]:
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

    @app.get("/v1/datasets/{name}/history", tags=["datasets"])
    def dataset_history(name: str, who: Who) -> dict[str, Any]:
        return wh.datasets.history(who, name)

    @app.post("/v1/datasets/{name}/migrate", tags=["datasets"])
    def migrate_dataset(name: str, body: MigrateIn, who: Who) -> dict[str, Any]:
        return wh.datasets.migrate(who, name, parse_manifest(body.manifest), body.renames)

    @app.get("/v1/datasets/{name}/mock", tags=["datasets"])
    def mock_dataset(name: str, who: Who, rows: int = 1000, seed: int = 0,
                     format: Literal["csv", "parquet"] = "csv") -> Response:  # noqa: A002 - the query name
        data = wh.datasets.mock(who, name, rows=rows, seed=seed, fmt=format)
        media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
        return Response(content=data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}-mock.{format}"'})

    @app.get("/v1/datasets/{name}/synthetic", tags=["datasets"])
    def synthetic_dataset(name: str, who: Who,
                          format: Literal["csv", "parquet"] = "parquet") -> Response:  # noqa: A002 - the query name
        data = wh.synthetic.get(who, name, fmt=format)
        media = "text/csv" if format == "csv" else "application/vnd.apache.parquet"
        return Response(content=data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{name}-synthetic.{format}"'})

    @app.post("/v1/jobs", tags=["jobs"], status_code=201)
    def submit_job(body: JobIn, who: Who) -> dict[str, Any]:
        files = _decode_job_files(body.files)
        spec = parse_job_spec(files.get("job.yaml", b""))
        if spec.entrypoint not in files:
            raise JobSpecInvalid(f"entrypoint {spec.entrypoint} is not among the uploaded files")
        return wh.jobs.submit_files(who, spec, files)

    @app.get("/v1/jobs", tags=["jobs"])
    def list_jobs(who: Who, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return _page(wh.jobs.list(who), offset, limit)

    @app.get("/v1/jobs/{job_id}", tags=["jobs"])
    def show_job(job_id: str, who: Who) -> dict[str, Any]:
        return wh.jobs.get(who, job_id)

    @app.get("/v1/jobs/{job_id}/logs", tags=["jobs"])
    def job_logs(job_id: str, who: Who) -> dict[str, Any]:
        return wh.jobs.logs(who, job_id)

    @app.get("/v1/exports", tags=["exports"])
    def list_exports(who: Who, state: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return _page(wh.exports.list(who, state), offset, limit)

    @app.get("/v1/exports/{export_id}", tags=["exports"])
    def show_export(export_id: str, who: Who) -> dict[str, Any]:
        return wh.exports.get(who, export_id)

    @app.get("/v1/exports/{export_id}/preview", tags=["exports"])
    def preview_export(export_id: str, who: Who) -> dict[str, Any]:
        return {"files": [_file_json(f) for f in wh.exports.preview(who, export_id)]}

    @app.post("/v1/exports/{export_id}/decision", tags=["exports"])
    def decide_export(export_id: str, body: DecisionIn, who: Who) -> dict[str, Any]:
        return wh.exports.decide(who, export_id, body.decision, body.reason, body.bundle_sha256)

    @app.get("/v1/exports/{export_id}/download", tags=["exports"])
    def download_export(export_id: str, who: Who) -> dict[str, Any]:
        return {"files": [_file_json(f) for f in wh.exports.download(who, export_id)]}

    @app.get("/v1/audit/verify", tags=["audit"])
    def audit_verify(who: Who) -> dict[str, Any]:
        return wh.audit_verify(who).to_dict()

    @app.get("/v1/audit/records", tags=["audit"])
    def audit_records(who: Who, action: str | None = None, actor: str | None = None, object_id: str | None = None,
                      tenant: str | None = None, job_id: str | None = None, since: str | None = None,
                      until: str | None = None, after: int = 0, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        flt = AuditFilter.of(action=action, actor=actor, tenant=tenant, object_id=object_id, job_id=job_id,
                             since=since, until=until, after=after or None)
        items, total = wh.audit_search(who, flt, offset=offset, limit=limit)
        return {"items": items, "total": total, "offset": offset, "limit": limit,
                "next_after": items[-1]["seq"] if items else None}

    @app.get("/v1/audit/export", tags=["audit"], response_class=PlainTextResponse)
    def audit_export(who: Who) -> PlainTextResponse:
        buf = io.StringIO()
        wh.audit_export(who, buf)
        return PlainTextResponse(buf.getvalue(), media_type="application/x-ndjson")

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


def _worker_loop(wh: Warehouse, stop: threading.Event) -> None:
    # The same queue and leases as `twh worker` processes (sandbox.workers): they can run beside it.
    from .workers import Worker

    Worker(wh).serve(stop)

