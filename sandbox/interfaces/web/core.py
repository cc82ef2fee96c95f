"""What every page shares: the signed-in viewer, CSRF, templates, HTML errors, security headers.

Pages resolve the principal from the session's token exactly as the API resolves a bearer
token (and record ``token.used`` the same way), then call the facade: every permission rule is
the services'. A :class:`~sandbox.errors.TwhError` becomes an HTML page with the API's status
(another tenant's job is a 404 page, as in the API).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ...auth import SYSTEM, Principal, Role
from ...errors import Forbidden, InvalidInput, TwhError
from ...warehouse import Warehouse
from .sessions import COOKIE, SessionStore, WebSession

HERE = Path(__file__).parent
#: no inline script or style anywhere: what a job wrote cannot run even if an escape were missed
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""


env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                  trim_blocks=True, lstrip_blocks=True)
env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str)
env.filters["compact"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
env.filters["when"] = lambda v: (str(v or "")[:19].replace("T", " "))
env.filters["short"] = lambda v, n=12: (str(v)[:n] + "…") if v and len(str(v)) > n else (v or "")
env.filters["q"] = lambda v: quote(str(v), safe="")


@dataclass(frozen=True)
class Viewer:
    """The signed-in person: their principal and their session (for its CSRF token)."""

    principal: Principal
    session: WebSession

    @property
    def role(self) -> str:
        return self.principal.role.value


def warehouse(request: Request) -> Warehouse:
    return request.app.state.warehouse  # type: ignore[no-any-return]


def store(request: Request) -> SessionStore:
    return request.app.state.web_sessions  # type: ignore[no-any-return]


def current_viewer(request: Request) -> Viewer:
    sessions = store(request)
    s = sessions.get(request.cookies.get(COOKIE))
    if s is None:
        raise LoginRequired()
    wh = warehouse(request)
    where = {"method": request.method, "path": request.url.path[:200], "via": "web"}
    if s.principal is None:  # its token was revoked since signing in: the session ends with it
        wh.ctx.record(SYSTEM, "token.rejected", "token", s.token_fingerprint, where)
        sessions.revoke(s)
        raise LoginRequired()
    wh.ctx.record(s.principal, "token.used", "token", s.token_fingerprint, where)
    request.state.viewer = Viewer(s.principal, s)
    return request.state.viewer


async def checked_viewer(request: Request) -> Viewer:
    """For every POST: the viewer, once the form's CSRF token matched their session's."""
    form = await request.form()
    viewer = current_viewer(request)
    sent = form.get("csrf")
    if not store(request).csrf_ok(viewer.session, sent if isinstance(sent, str) else None):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page and try again")
    return viewer


Who = Annotated[Viewer, Depends(current_viewer)]
Checked = Annotated[Viewer, Depends(checked_viewer)]
WH = Annotated[Warehouse, Depends(warehouse)]


def nav_for(role: str) -> list[tuple[str, str]]:
    products = [("Features", "/ui/features"), ("Models", "/ui/models")]
    pages = {
        "enterprise": [("Catalog", "/ui/datasets"), ("My jobs", "/ui/jobs"), ("My exports", "/ui/exports"), *products],
        "steward": [("Review queue", "/ui/queue"), ("Datasets", "/ui/datasets"), ("Jobs", "/ui/jobs"),
                    ("Exports", "/ui/exports"), *products],
        "auditor": [("Audit log", "/ui/audit"), ("Activity", "/ui/audit/activity"), ("Jobs", "/ui/jobs"),
                    ("Exports", "/ui/exports"), ("Datasets", "/ui/datasets"), *products, ("Subjects", "/ui/subject")],
        "subject": [("Use of my data", "/ui/subject"), ("Models", "/ui/models")],
    }
    return pages.get(role, pages["auditor"])


def home_for(role: Role) -> str:
    return {Role.ENTERPRISE: "/ui/datasets", Role.STEWARD: "/ui/queue", Role.SUBJECT: "/ui/subject"}.get(role, "/ui/audit")


def render(request: Request, template: str, viewer: Viewer | None = None, status: int = 200,
           **context: Any) -> HTMLResponse:
    ctx = {"request": request, "viewer": viewer, "nav": nav_for(viewer.role) if viewer else [],
           "csrf": viewer.session.csrf if viewer else "", "path": request.url.path, **context}
    return secure(HTMLResponse(env.get_template(template).render(ctx), status_code=status))


def secure(resp: Response) -> Response:
    for k, v in SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp


def redirect(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


def page_link(path: str, params: dict[str, Any], **changes: Any) -> str:
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return path + ("?" + urlencode(merged) if merged else "")


def error_page(request: Request, exc: TwhError) -> Response:
    viewer = getattr(request.state, "viewer", None)
    titles = {404: "Not found", 403: "Not allowed", 409: "Conflict", 422: "Not accepted", 401: "Sign in"}
    status = exc.http_status
    # internal errors say nothing more than the API does
    message = exc.message if status < 500 else "internal error"
    return render(request, "error.html", viewer, status=status, title=titles.get(status, "Error"),
                  code=exc.code, message=message)


class HtmlRoute(APIRoute):
    """A page: errors are HTML pages with the API's status, a missing session goes to the login page."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return secure(await handler(request))
            except LoginRequired:
                target = request.url.path if request.method == "GET" else "/ui/"
                return redirect("/ui/login?next=" + quote(target, safe="/"))
            except TwhError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
                field = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                return error_page(request, InvalidInput(f"{field or 'form'}: {first.get('msg')}"))

        return run
