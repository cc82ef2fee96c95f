"""The auditor's pages: the searchable log, chain verification, exports, activity plots, job replay.

Every page reads through the facade's audit methods (auditor and admin only; others get the
service's 403 page). A replay is built from the audit records alone — what was recorded when it
happened — with the job's current state beside it.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from ....audit.search import AuditFilter
from ....warehouse import Warehouse
from .. import plots
from ..core import WH, Checked, HtmlRoute, Who, language, page_link, render
from ..files import suppression_line

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
ACTIONS = ["user.added", "token.issued", "token.revoked", "token.used", "token.rejected", "dataset.registered",
           "ingest.committed", "ingest.quarantined", "job.submitted", "job.refused", "job.started", "job.gating",
           "job.failed", "query.released", "query.refused", "export.requested", "export.approved", "export.denied",
           "export.downloaded", "audit.verified", "audit.exported", "query.refusals_counted", "synthetic.refused",
           "export.download_refused", "audit.head_sealed", "dataset.override_recorded", "dataset.register_refused",
           "query.*", "export.*", "job.*", "token.*", "dataset.*"]
MAX_PLOTTED = 50_000
Str = Annotated[str | None, Query(max_length=80)]


def _filter(action: str | None, actor: str | None, tenant: str | None, object: str | None, job: str | None,
            since: str | None, until: str | None) -> AuditFilter:
    return AuditFilter.of(action=action, actor=actor, tenant=tenant, object_id=object, job_id=job, since=since,
                          until=until)


def _params(flt: AuditFilter) -> dict[str, str]:
    names = {"object_id": "object", "job_id": "job"}
    return {names.get(k, k): v for k, v in flt.to_dict().items()}


def _log_page(request: Request, viewer: Any, wh: Warehouse, flt: AuditFilter, offset: int, limit: int,
              verify: dict[str, Any] | None = None) -> Response:
    items, total = wh.audit_search(viewer.principal, flt, offset=offset, limit=limit, newest_first=True)
    params = {**_params(flt), "limit": limit}
    return render(request, "audit.html", viewer, items=items, total=total, offset=offset, limit=limit,
                  flt=_params(flt), actions=ACTIONS, verify=verify,
                  prev=page_link("/ui/audit", params, offset=max(0, offset - limit)) if offset else None,
                  next=page_link("/ui/audit", params, offset=offset + limit) if offset + limit < total else None,
                  export_jsonl=page_link("/ui/audit/export.jsonl", _params(flt)),
                  export_csv=page_link("/ui/audit/export.csv", _params(flt)))


@router.get("/ui/audit")
def audit_log(request: Request, viewer: Who, wh: WH, action: Str = None, actor: Str = None, tenant: Str = None,
              object: Str = None, job: Str = None, since: Str = None, until: Str = None,
              offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Response:
    return _log_page(request, viewer, wh, _filter(action, actor, tenant, object, job, since, until), offset, limit)


@router.post("/ui/audit/verify")
def audit_verify(request: Request, viewer: Checked, wh: WH) -> Response:
    result = wh.audit_verify(viewer.principal).to_dict()
    return _log_page(request, viewer, wh, AuditFilter(), 0, 50, verify=result)


@router.get("/ui/audit/export.{fmt}")
def audit_export(fmt: str, viewer: Who, wh: WH, action: Str = None, actor: Str = None, tenant: Str = None,
                 object: Str = None, job: Str = None, since: Str = None, until: Str = None) -> Response:
    flt = _filter(action, actor, tenant, object, job, since, until)
    buf = io.StringIO()
    wh.audit_export(viewer.principal, buf, flt=flt if flt.to_dict() else None, fmt=fmt)  # the service checks fmt
    media = "text/csv" if fmt == "csv" else "application/x-ndjson"
    return Response(buf.getvalue(), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="audit.{fmt}"'})


def _all_matching(wh: Warehouse, viewer: Any, flt: AuditFilter) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < MAX_PLOTTED:
        items, total = wh.audit_search(viewer.principal, flt, offset=len(out), limit=1000)
        out += items
        if not items or len(out) >= total:
            break
    return out


@router.get("/ui/audit/activity")
def activity(request: Request, viewer: Who, wh: WH, since: Str = None, until: Str = None, actor: Str = None,
             tenant: Str = None, bucket: Str = None, hide_token_use: bool = False) -> Response:
    flt = AuditFilter.of(since=since, until=until, actor=actor, tenant=tenant)
    records = _all_matching(wh, viewer, flt)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["action"]] = counts.get(r["action"], 0) + 1
    shown = [r for r in records if r["action"] != "token.used"] if hide_token_use else records
    b = bucket if bucket in plots.BUCKETS else None
    lang = language(request, viewer)
    return render(request, "activity.html", viewer, lang=lang, flt=_params(flt), bucket=b,
                  hide_token_use=hide_token_use,
                  activity_plot=plots.data_uri(plots.activity_figure(shown, b, lang=lang)),
                  gate_plot=plots.data_uri(plots.gate_figure(plots.gate_points_from_audit(records), b, lang=lang)),
                  counts=sorted(counts.items(), key=lambda kv: -kv[1]), total=len(records),
                  capped=len(records) >= MAX_PLOTTED)


def replay_steps(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Group one job's audit records into the story of the job, checking approvals against the bundle."""
    steps: dict[str, Any] = {"submitted": None, "started": None, "queries": [], "gating": None, "ended": None,
                             "export": None, "decisions": [], "downloads": [], "other": []}
    for r in records:
        a = r["action"]
        if a == "job.submitted":
            steps["submitted"] = r
        elif a == "job.started":
            steps["started"] = r
        elif a.startswith("query."):
            decisions = (r.get("details") or {}).get("decisions") or []
            steps["queries"].append({**r, "suppression": [suppression_line(x) for x in decisions if "suppressed" in x]})
        elif a == "job.gating":
            steps["gating"] = r
        elif a in ("job.failed", "job.refused"):
            steps["ended"] = r
        elif a == "export.requested":
            steps["export"] = r
        elif a in ("export.approved", "export.denied"):
            steps["decisions"].append(r)
        elif a == "export.downloaded":
            steps["downloads"].append(r)
        else:
            steps["other"].append(r)
    requested = (steps["export"] or {}).get("details", {}).get("bundle_sha256")
    for r in steps["decisions"] + steps["downloads"]:
        r["bundle_matches"] = requested is not None and r["details"].get("bundle_sha256") == requested
    return steps


@router.get("/ui/audit/jobs/{job_id}")
def replay(request: Request, job_id: str, viewer: Who, wh: WH) -> Response:
    who = viewer.principal
    job = wh.jobs.get(who, job_id)  # 404 for an unknown job, as everywhere
    records = _all_matching(wh, viewer, AuditFilter(job_id=job["id"]))
    return render(request, "replay.html", viewer, job=job, records=records, steps=replay_steps(records),
                  code=wh.jobs.code(who, job_id))
