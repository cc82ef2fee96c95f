"""The data subject's page: who used its data — when, by which tenant and person, for which purpose and
product, under which authorisation, each row checked against its audit record — and its
authorisations, which it can revoke here. A subject's account sees its own; auditors and admins
look a subject up (``?subject=``); anyone else gets the services' answer (not found).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from ....auth import Role
from ..core import WH, Checked, HtmlRoute, Who, redirect, render

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)


@router.get("/ui/subject")
def subject_page(request: Request, viewer: Who, wh: WH,
                 subject: Annotated[str | None, Query(max_length=128)] = None,
                 offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0) -> Response:
    who = viewer.principal
    target = who.subject if who.role is Role.SUBJECT else subject
    if not target:  # an auditor who has not named one yet
        return render(request, "subject.html", viewer, d=None, ask=True)
    d = wh.products.activity.of(who, target, offset=offset, limit=50)
    nxt = f"/ui/subject?subject={target}&offset={offset + 50}" if offset + 50 < d["total"] else None
    prev = f"/ui/subject?subject={target}&offset={max(0, offset - 50)}" if offset else None
    return render(request, "subject.html", viewer, d=d, ask=who.role is not Role.SUBJECT, next=nxt, prev=prev,
                  can_revoke=who.role is Role.SUBJECT)


@router.post("/ui/subject/authorisations/{auth_id}/revoke")
def revoke(auth_id: str, viewer: Checked, wh: WH) -> Response:
    wh.authorisations.revoke(viewer.principal, auth_id)
    return redirect("/ui/subject")
