"""Python client for a running warehouse service (httpx), and its local twin.

Both :class:`Client` (remote, over HTTP) and :class:`LocalClient` (embedded: the facade in this
process, acting as a named user) offer the same methods (the products' ones in
:mod:`sandbox.interfaces.client_products`), so the CLI and notebooks work the same
way against either. Errors come back as the same :mod:`sandbox.errors` classes the server raised.

    >>> c = Client("http://127.0.0.1:8000", token)          # doctest: +SKIP
    >>> job = c.submit_job("notebooks/jobs/default_rate")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from pathlib import Path

from ..errors import InternalError, NotFound, TwhError, from_dict
from .client_products import ProductsHttp, ProductsLocal

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import IO, Any

    import httpx

# Imported where used, not here: httpx (remote mode only), the manifest and job-spec validators
# (pydantic, YAML) and the export bundle hash (SQLAlchemy) cost more than a quick CLI command
# (tests/interfaces/cli/test_import_time.py).


def _httpx() -> Any:
    """httpx, without its own command line: ``import httpx`` loads ``httpx._main`` (rich, pygments,
    click: ~70 ms) for the ``httpx`` command, which httpx replaces by a stub when it cannot be
    imported. Nothing here uses it; a process that has imported httpx already keeps its own."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    import httpx

    return httpx


def load_manifest(path: str | Path) -> Any:
    from ..datasets.manifest import load_manifest as load

    return load(path)


def bundle_hash(files: list[tuple[str, str]]) -> str:
    from ..release.exports import bundle_hash as digest

    return digest(files)


__all__ = ["ACT_AS_HEADER", "Client", "LocalClient", "checked", "existing_file", "write_files"]

#: the request header naming the warehouse user a local-mode command acts as (no token): the API
#: honours it only from the per-home local server's Unix socket, for a peer of the server's own
#: OS user (sandbox.interfaces.api.app.current_principal); anywhere else it is refused
ACT_AS_HEADER = "X-Twh-Act-As"

_DONE = {"awaiting_approval", "released", "denied", "failed", "awaiting_review"}


def _wait_done(get_job: Any, job_id: str, timeout: float) -> dict[str, Any]:
    """Poll until the job is done as far as its viewer may know: for the submitter of a job
    that needs review, ``awaiting_review`` is final until a steward acts."""
    deadline = time.monotonic() + timeout
    pause = 0.01  # a short job is done in tens of milliseconds: look soon, then less often
    while True:
        job = get_job(job_id)
        if job["state"] in _DONE or time.monotonic() > deadline:
            return job
        time.sleep(pause)
        pause = min(pause * 1.5, 0.3)


def _unreachable(exc: Exception) -> TwhError:
    """No answer from the service (down, starting, wrong URL): ``details.unreachable`` lets a
    caller wait for it (``twh whoami --wait``)."""
    return TwhError(f"cannot reach the warehouse service: {exc}", details={"unreachable": True})


def checked(r: Any, source: str) -> Any:
    """The answer ``r``, or the error it carries (``HTTP <status> from <source>`` when its body is
    not the service's error shape)."""
    if r.status_code >= 400:
        try:
            payload = r.json()["error"]
        except Exception:  # noqa: BLE001 - not our error shape
            raise TwhError(f"HTTP {r.status_code} from {source}") from None
        raise from_dict(payload)
    return r


def existing_file(path: str | Path) -> Path:
    """The input file of an ingest, or a clear ``not_found`` naming it (before any upload or load)."""
    p = Path(path)
    if not p.is_file():
        raise NotFound(f"input file {p} does not exist" if not p.exists() else f"input {p} is not a file",
                       details={"field": "file", "path": str(p)})
    return p


def write_files(files: list[dict[str, Any]], dest: Path) -> list[Path]:
    """Write downloaded files into ``dest``, checking each against its SHA-256."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for f in files:
        data = f["data"] if "data" in f else base64.b64decode(f["data_b64"])
        if hashlib.sha256(data).hexdigest() != f["sha256"]:
            raise InternalError(f"{f['name']}: downloaded bytes do not match their SHA-256")
        name = Path(f["name"]).name  # never a path from the server
        (dest / name).write_bytes(data)
        out.append(dest / name)
    return out


class Client(ProductsHttp):
    def __init__(self, url: str, token: str | None, *, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None, act_as: str | None = None) -> None:
        """``act_as`` (no token): the per-home local server's way of naming the user, honoured
        only on its Unix socket for a peer of the home's own OS user (ACT_AS_HEADER)."""
        self._url, self._timeout, self._transport = url.rstrip("/"), timeout, transport
        self._headers = {ACT_AS_HEADER: act_as} if act_as is not None else {"Authorization": f"Bearer {token}"}
        self._client: httpx.Client | None = None
        # JSON requests to a plain-HTTP service with no proxy: http.client alone, no httpx import
        # (client_plain); the rest (uploads, TLS, proxies, a given transport) through httpx
        self._plain = None
        if transport is None:
            from .client_plain import plain_session_for

            self._plain = plain_session_for(self._url, timeout=timeout, headers=self._headers)

    @property
    def _http(self) -> httpx.Client:
        """The httpx client, made on first use."""
        if self._client is None:
            httpx = _httpx()
            transport = self._transport
            if transport is None:  # plain HTTP without a proxy: http.client, not httpcore + a CA bundle
                from .client_transport import plain_transport_for

                transport = plain_transport_for(self._url)
            self._client = httpx.Client(base_url=self._url, timeout=self._timeout, transport=transport,
                                        headers=self._headers)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """One request; a refusal comes back as the service's own error, an outage as unreachable."""
        if self._plain is not None and kw.keys() <= {"params", "json"}:
            from .client_plain import Unreachable

            try:
                r = self._plain.request(method, path, **kw)
            except Unreachable as exc:
                raise _unreachable(exc) from exc
        else:
            import httpx

            try:
                r = self._http.request(method, path, **kw)
            except httpx.HTTPError as exc:
                raise _unreachable(exc) from exc
        return checked(r, "the service")

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self._send(method, path, **kw)
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    def _all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items, offset = [], 0
        while True:
            page = self._call("GET", path, params={**params, "offset": offset, "limit": 500})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    def whoami(self) -> dict[str, Any]:
        return self._call("GET", "/v1/me")

    def add_user(self, name: str, role: str, tenant: str, *, subject: str | None = None) -> dict[str, Any]:
        body = {"name": name, "role": role, "tenant": tenant, **({"subject": subject} if subject else {})}
        return self._call("POST", "/v1/users", json=body)

    def issue_token(self, user: str, *, days: int | None = None, label: str | None = None) -> dict[str, Any]:
        """A new token for ``user`` (admins): its listing entry plus ``token``, shown once."""
        body = {"user": user, **({"days": days} if days is not None else {}), **({"label": label} if label else {})}
        return self._call("POST", "/v1/tokens", json=body)

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        return self._all("/v1/tokens", **({"user": user} if user else {}))

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/tokens/{int(token_id)}")

    def register_dataset(self, manifest_path: str | Path) -> dict[str, Any]:
        manifest = load_manifest(manifest_path)  # validate locally first: clearer errors, no round trip
        return self._call("POST", "/v1/datasets", json=manifest.model_dump(mode="json", by_alias=True))

    def list_datasets(self, grade: str | None = None) -> list[dict[str, Any]]:
        return self._all("/v1/datasets", **({"grade": grade} if grade else {}))

    def override_dataset(self, name: str, allow: str, reason: str) -> dict[str, Any]:
        """An admin's audited allowance for ``name`` beyond its grade (policies.grading.ALLOWANCES)."""
        return self._call("POST", f"/v1/datasets/{name}/overrides", json={"allow": allow, "reason": reason})

    def provenance_key(self) -> dict[str, Any]:
        """The public key the service signs every release's provenance with."""
        return self._call("GET", "/v1/provenance/key")

    def show_dataset(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/datasets/{name}")

    def budget(self, name: str) -> dict[str, Any]:
        """A dataset's DP budget: totals, what each scope spent and has left, the charges."""
        return self._call("GET", f"/v1/datasets/{name}/budget")

    def ingest(self, name: str, path: str | Path | None = None, *, encoding: str | None = None,
               mode: str | None = None, kind: str | None = None, progress: Any = None) -> dict[str, Any]:
        data = {k: v for k, v in (("encoding", encoding), ("mode", mode), ("kind", kind)) if v}
        if path is None:  # the service re-runs the manifest's source: block
            return self._call("POST", f"/v1/datasets/{name}/ingest", data=data)
        p = existing_file(path)
        with open(p, "rb") as fh:
            return self._call("POST", f"/v1/datasets/{name}/ingest", files={"file": (p.name, fh)}, data=data)

    def dataset_history(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/datasets/{name}/history")

    def migrate_dataset(self, name: str, manifest_path: str | Path,
                        renames: dict[str, str] | None = None) -> dict[str, Any]:
        manifest = load_manifest(manifest_path)
        return self._call("POST", f"/v1/datasets/{name}/migrate",
                          json={"manifest": manifest.model_dump(mode="json", by_alias=True), "renames": renames or {}})

    def synthetic_dataset(self, name: str, *, fmt: str = "parquet", purpose: str | None = None) -> bytes:
        """The dataset's DP synthetic table (the first request generates it and spends ε); enterprises
        name their purpose."""
        return self._bytes(f"/v1/datasets/{name}/synthetic",
                           {"format": fmt, **({"purpose": purpose} if purpose else {})})

    def mock_dataset(self, name: str, *, rows: int = 1000, seed: int = 0, fmt: str = "csv") -> bytes:
        return self._bytes(f"/v1/datasets/{name}/mock", {"rows": rows, "seed": seed, "format": fmt})

    def _bytes(self, path: str, params: dict[str, Any]) -> bytes:
        return self._send("GET", path, params=params).content

    def submit_job(self, job_dir: str | Path, *, wait: bool = True, timeout: float = 600) -> dict[str, Any]:
        from ..jobs.folder import read_job_folder

        files = read_job_folder(Path(job_dir))  # the service validates job.yaml (the same checks and errors)
        job = self._call("POST", "/v1/jobs",
                         json={"files": {n: base64.b64encode(b).decode() for n, b in files.items()}})
        if not wait or job["state"] in _DONE:  # the submitter's view may be final at once (awaiting_review)
            return job
        return self.wait_job(job["id"], timeout=timeout)

    def wait_job(self, job_id: str, *, timeout: float = 600) -> dict[str, Any]:
        return _wait_done(self.get_job, job_id, timeout)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{job_id}")

    def list_jobs(self) -> list[dict[str, Any]]:
        return self._all("/v1/jobs")

    def job_logs(self, job_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/jobs/{job_id}/logs")

    def list_exports(self, state: str | None = None) -> list[dict[str, Any]]:
        return self._all("/v1/exports", **({"state": state} if state else {}))

    def get_export(self, export_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/exports/{export_id}")

    def preview_export(self, export_id: str) -> list[dict[str, Any]]:
        files = self._call("GET", f"/v1/exports/{export_id}/preview")["files"]
        return [{**f, "data": base64.b64decode(f["data_b64"])} for f in files]

    def decide_export(self, export_id: str, decision: str, reason: str,
                      bundle_sha256: str | None = None) -> dict[str, Any]:
        digest = bundle_sha256 or reviewed_bundle(self.preview_export(export_id))
        return self._call("POST", f"/v1/exports/{export_id}/decision",
                          json={"decision": decision, "reason": reason, "bundle_sha256": digest})

    def download_export(self, export_id: str, dest: str | Path) -> list[Path]:
        return write_files(self._call("GET", f"/v1/exports/{export_id}/download")["files"], Path(dest))

    def audit_verify(self) -> dict[str, Any]:
        return self._call("GET", "/v1/audit/verify")

    def audit_records(self, **filters: Any) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/audit/records", params={k: v for k, v in filters.items() if v is not None})["items"]

    def audit_export(self, out: IO[str]) -> int:
        text = self._call("GET", "/v1/audit/export")
        out.write(text)
        return text.count("\n")


def reviewed_bundle(files: list[dict[str, Any]]) -> str:
    """The bundle hash of the bytes the reviewer actually received (not what the server says)."""
    return bundle_hash([(f["name"], hashlib.sha256(f["data"]).hexdigest()) for f in files])


class LocalClient(ProductsLocal):
    """The same surface as :class:`Client`, on a warehouse in this process, acting as ``user``."""

    def __init__(self, warehouse: Any, user: str) -> None:
        self.wh = warehouse
        self.principal = warehouse.users.principal(user)

    def close(self) -> None:
        pass

    def whoami(self) -> dict[str, Any]:
        p = self.principal
        return {"name": p.name, "role": p.role.value, "tenant": p.tenant, **({"subject": p.subject} if p.subject else {})}

    def add_user(self, name: str, role: str, tenant: str, *, subject: str | None = None) -> dict[str, Any]:
        user, token = self.wh.users.add(self.principal, name, role, tenant, subject)
        return {"user": user, "token": token}

    def issue_token(self, user: str, *, days: int | None = None, label: str | None = None) -> dict[str, Any]:
        info, token = self.wh.users.issue(self.principal, user, days=days, label=label)
        return {**info, "token": token}

    def list_tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        return self.wh.users.list_tokens(self.principal, user)

    def revoke_token(self, token_id: int) -> dict[str, Any]:
        return self.wh.users.revoke_token(self.principal, int(token_id))

    def register_dataset(self, manifest_path: str | Path) -> dict[str, Any]:
        return self.wh.datasets.register(self.principal, load_manifest(manifest_path))

    def list_datasets(self, grade: str | None = None) -> list[dict[str, Any]]:
        return self.wh.datasets.list(self.principal, grade)

    def override_dataset(self, name: str, allow: str, reason: str) -> dict[str, Any]:
        return self.wh.datasets.override(self.principal, name, allow, reason)

    def provenance_key(self) -> dict[str, Any]:
        return self.wh.exports.provenance_key()

    def show_dataset(self, name: str) -> dict[str, Any]:
        return self.wh.datasets.show(self.principal, name)

    def budget(self, name: str) -> dict[str, Any]:
        return self.wh.budgets.show(self.principal, name)

    def ingest(self, name: str, path: str | Path | None = None, *, encoding: str | None = None,
               mode: str | None = None, kind: str | None = None, progress: Any = None) -> dict[str, Any]:
        return self.wh.ingest.ingest(self.principal, name, existing_file(path) if path is not None else None,
                                     encoding=encoding, mode=mode, kind=kind, progress=progress)

    def dataset_history(self, name: str) -> dict[str, Any]:
        return self.wh.dataset_history(self.principal, name)

    def migrate_dataset(self, name: str, manifest_path: str | Path,
                        renames: dict[str, str] | None = None) -> dict[str, Any]:
        return self.wh.migrate_dataset(self.principal, name, load_manifest(manifest_path), renames or {})

    def mock_dataset(self, name: str, *, rows: int = 1000, seed: int = 0, fmt: str = "csv") -> bytes:
        return self.wh.datasets.mock(self.principal, name, rows=rows, seed=seed, fmt=fmt)

    def synthetic_dataset(self, name: str, *, fmt: str = "parquet", purpose: str | None = None) -> bytes:
        return self.wh.synthetic.get(self.principal, name, fmt=fmt, purpose=purpose)

    def submit_job(self, job_dir: str | Path, *, wait: bool = True, timeout: float = 600) -> dict[str, Any]:
        job = self.wh.jobs.submit(self.principal, Path(job_dir))
        if not wait:
            return job
        # The embedded default: the runner runs right here. A worker of this home (`twh serve`,
        # `twh worker`) may claim the job first; then it runs there and this waits for it.
        if self.wh.jobs.claim(job["id"]):
            settings = self.wh.settings
            self.wh.jobs.run_claimed(job["id"], settings.worker_id, settings.lease_seconds)
            return self.get_job(job["id"])
        return self.wait_job(job["id"], timeout=timeout)

    def wait_job(self, job_id: str, *, timeout: float = 600) -> dict[str, Any]:
        return _wait_done(self.get_job, job_id, timeout)

    def get_job(self, job_id: str) -> dict[str, Any]:
        return self.wh.jobs.get(self.principal, job_id)

    def list_jobs(self) -> list[dict[str, Any]]:
        return self.wh.jobs.list(self.principal)

    def job_logs(self, job_id: str) -> dict[str, Any]:
        return self.wh.jobs.logs(self.principal, job_id)

    def list_exports(self, state: str | None = None) -> list[dict[str, Any]]:
        return self.wh.exports.list(self.principal, state)

    def get_export(self, export_id: str) -> dict[str, Any]:
        return self.wh.exports.get(self.principal, export_id)

    def preview_export(self, export_id: str) -> list[dict[str, Any]]:
        return [{"name": f.name, "sha256": f.sha256, "size": len(f.data), "data": f.data}
                for f in self.wh.exports.preview(self.principal, export_id)]

    def decide_export(self, export_id: str, decision: str, reason: str,
                      bundle_sha256: str | None = None) -> dict[str, Any]:
        digest = bundle_sha256 or reviewed_bundle(self.preview_export(export_id))
        return self.wh.exports.decide(self.principal, export_id, decision, reason, digest)

    def download_export(self, export_id: str, dest: str | Path) -> list[Path]:
        files = self.wh.exports.download(self.principal, export_id)
        return write_files([{"name": f.name, "sha256": f.sha256, "data": f.data} for f in files], Path(dest))

    def audit_verify(self) -> dict[str, Any]:
        return self.wh.audit_verify(self.principal).to_dict()

    def audit_records(self, **filters: Any) -> list[dict[str, Any]]:
        return self.wh.audit_records(self.principal, **filters)

    def audit_export(self, out: IO[str]) -> int:
        return self.wh.audit_export(self.principal, out)
