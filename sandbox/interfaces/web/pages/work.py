"""Jobs and exports: the steward's review queue and export review, everyone's job and export lists.

What a page shows is what the facade returns for the viewer: an enterprise gets its own tenant's
jobs and exports (without query details or unapproved files — the services withhold them), a
steward those touching the datasets they steward, an auditor everything.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response

from ....auth import Role
from ....errors import NotFound, TwhError
from ..core import WH, Checked, HtmlRoute, Who, page_link, redirect, render
from ..files import Pages, ShownFile, query_rows, reviewed_bundle, show_file
from ..modelcard import number, read_model_card

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=200)]
PageNo = Annotated[int, Query(ge=1, le=1_000_000_000)]
REVIEWERS = (Role.STEWARD, Role.AUDITOR, Role.ADMIN)


def _pager(p: Pages | None, link: Any) -> dict[str, Any] | None:
    """Links to the first, previous, next and last page of one view of a file (None: one page only)."""
    if p is None or p.complete:
        return None
    return {"first": link(1) if p.page > 1 else None, "prev": link(p.page - 1) if p.page > 1 else None,
            "next": link(p.page + 1) if p.page < p.pages else None,
            "last": link(p.pages) if p.page < p.pages else None}


def _file_views(export_id: str, files: list[ShownFile]) -> list[dict[str, Any]]:
    """Per file: its pagers (table and raw bytes) and the link to its complete bytes."""
    base = f"/ui/exports/{quote(export_id, safe='')}"
    views = []
    for i, f in enumerate(files):
        table_page = f.table.page if f.table else 1

        def at(page: int, raw: int, i: int = i, f: ShownFile = f) -> str:
            return page_link(base, {"file": f.name, "page": page, "raw": raw}) + f"#file-{i}"
        views.append({"file": f, "anchor": f"file-{i}",
                      "table": _pager(f.table, lambda n, r=f.raw.page, at=at: at(n, r)),
                      "raw": _pager(f.raw, lambda n, t=table_page, at=at: at(t, n)),
                      "whole": f"{base}/review/{quote(f.name, safe='')}"})
    return views


def _page(items: list[Any], offset: int, limit: int) -> dict[str, Any]:
    return {"items": items[offset:offset + limit], "total": len(items), "offset": offset, "limit": limit}


def _pending_for(export: dict[str, Any]) -> list[str]:
    """The datasets of this export that wait for the viewing steward's decision (the service's
    answer: important data waits for its senior stewards only)."""
    return list(export.get("yours") or [])


@router.get("/ui/queue")
def queue(request: Request, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    pending = wh.exports.list(who, "pending")
    rows = []
    for e in pending:
        job = wh.jobs.get(who, e["job_id"])
        mine = _pending_for(e) if who.role is Role.STEWARD else []
        rows.append({"export": e, "job": job, "mine": mine})
    rows.sort(key=lambda r: (not r["mine"], r["export"]["created_at"]))
    decided = [e for e in wh.exports.list(who) if e["state"] != "pending"][:10]
    return render(request, "queue.html", viewer, rows=rows, decided=decided,
                  waiting=sum(1 for r in rows if r["mine"]))


@router.get("/ui/exports")
def exports(request: Request, viewer: Who, wh: WH, state: str | None = None, offset: Offset = 0,
            limit: Limit = 50) -> Response:
    state = state if state in ("pending", "approved", "denied") else None
    page = _page(wh.exports.list(viewer.principal, state), offset, limit)
    params = {"state": state, "limit": limit}
    return render(request, "exports.html", viewer, page=page, state=state,
                  prev=page_link("/ui/exports", params, offset=max(0, offset - limit)) if offset else None,
                  next=page_link("/ui/exports", params, offset=offset + limit)
                  if offset + limit < page["total"] else None)


@router.get("/ui/exports/{export_id}")
def export_page(request: Request, export_id: str, viewer: Who, wh: WH, done: str | None = None,
                file: Annotated[str | None, Query(max_length=128)] = None, page: PageNo = 1,
                raw: PageNo = 1) -> Response:
    """The review: every file paged (``file``'s table ``page`` and raw bytes page ``raw``), never cut."""
    who = viewer.principal
    e = wh.exports.get(who, export_id)
    job = wh.jobs.get(who, e["job_id"])
    files, logs, code, model = [], None, {}, None
    if who.role in REVIEWERS:
        got = wh.exports.preview(who, export_id)
        files = [show_file(f.name, f.data, page=page if f.name == file else 1, raw_page=raw if f.name == file else 1)
                 for f in got]
        logs = wh.jobs.logs(who, job["id"])  # with a training job's review (attack, exact counts)
        model = read_model_card(job["id"], files, {f.name: f.data for f in got}, logs.get("training_review"))
        code = wh.jobs.code(who, job["id"])
    elif e["state"] == "approved" and any(f["name"] == "model_card.json" for f in e["files"] or []):
        model = True  # the submitter's link to the model page (which reads the approved bytes)
    mine = _pending_for(e) if who.role is Role.STEWARD and e["state"] == "pending" else []
    return render(request, "export.html", viewer, e=e, job=job, files=files, views=_file_views(export_id, files),
                  paged=[f.name for f in files if not (f.raw.complete and (f.table is None or f.table.complete))],
                  logs=logs, code=code,
                  queries=query_rows(job.get("queries")), mine=mine,
                  shown_bundle=reviewed_bundle(files) if files else None, model=model, num=number,
                  done=done if done in ("approve", "deny") else None)


@router.post("/ui/exports/{export_id}/decision")
def decide(request: Request, export_id: str, viewer: Checked, wh: WH,
           decision: Annotated[str, Form(pattern="^(approve|deny)$")],
           reason: Annotated[str, Form(min_length=1, max_length=2000)],
           bundle_sha256: Annotated[str, Form(pattern="^[0-9a-f]{64}$")]) -> Response:
    # The service binds the decision to the bundle hash this page showed, and refuses other bytes.
    wh.exports.decide(viewer.principal, export_id, decision, reason, bundle_sha256)
    return redirect(f"/ui/exports/{export_id}?done={decision}")


@router.get("/ui/exports/{export_id}/review/{name}")
def review_file(export_id: str, name: str, viewer: Who, wh: WH) -> Response:
    """A reviewer's copy of one file's complete, exact bytes (what the bundle hash covers)."""
    match = next((f for f in wh.exports.preview(viewer.principal, export_id) if f.name == name), None)
    if match is None:
        raise NotFound(f"export {export_id!r} has no file {name[:60]!r}")
    safe = "".join(c for c in match.name if c.isalnum() or c in "._-")[:100] or "export.bin"
    return Response(match.data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"',
                             "X-Content-SHA256": hashlib.sha256(match.data).hexdigest()})


@router.get("/ui/exports/{export_id}/files/{name}")
def download(export_id: str, name: str, viewer: Who, wh: WH) -> Response:
    # approved only, this file's bytes re-hashed, audited only when it exists and is sent
    match = wh.exports.download_file(viewer.principal, export_id, name)
    safe = "".join(c for c in match.name if c.isalnum() or c in "._-")[:100] or "export.bin"
    return Response(match.data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{safe}"',
                             "X-Content-SHA256": match.sha256})


@router.get("/ui/jobs")
def jobs(request: Request, viewer: Who, wh: WH, state: str | None = None, offset: Offset = 0,
         limit: Limit = 50) -> Response:
    items = wh.jobs.list(viewer.principal)
    if state:
        items = [j for j in items if j["state"] == state]
    page = _page(items, offset, limit)
    params = {"state": state, "limit": limit}
    return render(request, "jobs.html", viewer, page=page, state=state,
                  prev=page_link("/ui/jobs", params, offset=max(0, offset - limit)) if offset else None,
                  next=page_link("/ui/jobs", params, offset=offset + limit) if offset + limit < page["total"] else None)


@router.get("/ui/jobs/{job_id}")
def job_page(request: Request, job_id: str, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    job = wh.jobs.get(who, job_id)
    logs = wh.jobs.logs(who, job_id) if who.role in REVIEWERS else None
    export = None
    if job.get("export"):
        try:
            export = wh.exports.get(who, job["export"]["id"])
        except TwhError:
            export = None
    return render(request, "job.html", viewer, job=job, queries=query_rows(job.get("queries")),
                  logs=logs, code=wh.jobs.code(who, job_id), export=export)
