"""What every page shares: the signed-in viewer, CSRF, templates, HTML errors, security headers,
and the language a page is shown in.

**Languages.** One Jinja2 environment per language (:data:`ENVS`), each with the i18n extension
and that language's gettext catalogue (``{% trans %}…{% endtrans %}`` and ``_("…")`` in
templates; ``trimmed`` is the default, so a message's line breaks never reach the catalogue).
A page's language (:func:`language`) is the signed-in user's choice (``users.locale``, set by the
language switch), else the ``twh_lang`` cookie, else the browser's ``Accept-Language``, else
English. Data values — names, ids, hashes, SQL, what a job wrote — are never translated; a
template wraps only its own words.

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
from ...i18n import SUPPORTED, _, fmt_bytes, fmt_eps, fmt_number, negotiate, normalize, translations, use
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


#: the language preference of a browser before (or without) signing in
LANG_COOKIE = "twh_lang"


def make_env(lang: str) -> Environment:
    """The templates as ``lang`` shows them: its catalogue, and numbers formatted its way."""
    e = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                    trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.i18n"])
    e.policies["ext.i18n.trimmed"] = True  # (Babel extracts with trimmed=true too: sandbox/i18n/babel.cfg)
    e.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    e.globals["lang"] = lang
    e.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True, default=str)
    e.filters["compact"] = lambda v: json.dumps(v, ensure_ascii=False, sort_keys=True, default=str)
    e.filters["when"] = lambda v: (str(v or "")[:19].replace("T", " "))
    e.filters["short"] = lambda v, n=12: (str(v)[:n] + "…") if v and len(str(v)) > n else (v or "")
    e.filters["q"] = lambda v: quote(str(v), safe="")
    e.filters["num"] = lambda v, decimals=None: fmt_number(v, lang, decimals=decimals)
    e.filters["bytes"] = lambda v: fmt_bytes(v, lang)
    e.filters["eps"] = lambda v: fmt_eps(v, lang)
    return e


ENVS = {lang: make_env(lang) for lang in SUPPORTED}
env = ENVS["en"]


def language(request: Request, viewer: Viewer | None = None) -> str:
    """The page's language: the user's setting, the browser's cookie, its Accept-Language, English."""
    if viewer is not None:
        chosen = warehouse(request).users.locale(viewer.principal.name)
        if chosen:
            return normalize(chosen) or "en"
    return normalize(request.cookies.get(LANG_COOKIE)) or negotiate(request.headers.get("accept-language"))


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
    """The navigation of a role's pages, in the active language (:func:`sandbox.i18n.use`)."""
    products = [(_("Features"), "/ui/features"), (_("Models"), "/ui/models")]
    pages = {
        "enterprise": [(_("Catalog"), "/ui/datasets"), (_("My jobs"), "/ui/jobs"),
                       (_("My exports"), "/ui/exports"), *products],
        "steward": [(_("Review queue"), "/ui/queue"), (_("Datasets"), "/ui/datasets"), (_("Jobs"), "/ui/jobs"),
                    (_("Exports"), "/ui/exports"), *products],
        "auditor": [(_("Audit log"), "/ui/audit"), (_("Activity"), "/ui/audit/activity"), (_("Jobs"), "/ui/jobs"),
                    (_("Exports"), "/ui/exports"), (_("Datasets"), "/ui/datasets"), *products,
                    (_("Subjects"), "/ui/subject")],
        "subject": [(_("Use of my data"), "/ui/subject"), (_("Models"), "/ui/models")],
    }
    return pages.get(role, pages["auditor"])


def home_for(role: Role) -> str:
    return {Role.ENTERPRISE: "/ui/datasets", Role.STEWARD: "/ui/queue", Role.SUBJECT: "/ui/subject"}.get(role, "/ui/audit")


def render(request: Request, template: str, viewer: Viewer | None = None, status: int = 200,
           **context: Any) -> HTMLResponse:
    lang = context.pop("lang", None) or language(request, viewer)
    use(lang)  # for what the page's code translates (navigation, titles)
    ctx = {"request": request, "viewer": viewer, "nav": nav_for(viewer.role) if viewer else [],
           "csrf": viewer.session.csrf if viewer else "", "path": request.url.path,
           "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
           "languages": [("en", "English"), ("zh-CN", "中文")], **context}
    resp = HTMLResponse(ENVS[lang].get_template(template).render(ctx), status_code=status)
    resp.headers["Content-Language"] = lang
    resp.headers["Vary"] = "Accept-Language, Cookie"
    return secure(resp)


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
    use(language(request, viewer))
    titles = {404: _("Not found"), 403: _("Not allowed"), 409: _("Conflict"), 422: _("Not accepted"),
              401: _("Sign in")}
    status = exc.http_status
    # internal errors say nothing more than the API does; the code stays as it is in every language
    message = exc.message if status < 500 else "internal error"
    return render(request, "error.html", viewer, status=status, title=titles.get(status, _("Error")),
                  code=exc.code, message=message, explained=explain(exc.code))


def explain(code: str) -> str:
    """What an error code means, in the active language (the code itself is never translated)."""
    return {
        "invalid_input": _("The request has a field that is not accepted."),
        "manifest_invalid": _("The dataset manifest does not validate."),
        "policy_invalid": _("The manifest's policy does not validate, or is weaker than its grade allows."),
        "job_spec_invalid": _("job.yaml or the job's files are unusable."),
        "not_found": _("There is no such object, or it is not yours to see."),
        "conflict": _("It already exists, or is being made."),
        "invalid_transition": _("The job or export is in the wrong state for this."),
        "unauthenticated": _("Sign in again: the token is missing, unknown or revoked."),
        "forbidden": _("Your role or stewardship does not allow this."),
        "refused": _("The policy refused it."),
        "access_refused": _("Your tenant or purpose may not use this dataset."),
        "query_refused": _("The gate refused a query."),
        "budget_exhausted": _("The privacy budget cannot pay for it."),
        "quota_exceeded": _("A limit of the policy is reached."),
        "tampered": _("The stored bytes no longer match their recorded hash: nothing was served."),
        "rate_limited": _("Too many failed attempts from this address: wait a minute."),
        "payload_too_large": _("The request is too large."),
        "internal_error": _("An internal error: please report it."),
    }.get(code, "")


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
