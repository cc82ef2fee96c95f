"""Signing in with a token, signing out, the home redirect and the stylesheet.

Failed sign-ins are rate-limited per source (``Settings.login_attempts_per_window``; 429 past it)
and a failed one is counted into the aggregated ``token.rejected`` record of its source
(:mod:`sandbox.access.throttle`), never one audit write per attempt. Cookies are ``Secure``
whenever the service is configured behind https (``Settings.secure_cookies``), whatever scheme
the request itself arrived with.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import PlainTextResponse

from ....access.throttle import client_source
from ....auth import token_fingerprint
from ....errors import AuthError, Forbidden
from ....i18n import _, normalize, use
from ..core import (
    HERE,
    LANG_COOKIE,
    Checked,
    HtmlRoute,
    LoginRequired,
    current_viewer,
    home_for,
    language,
    redirect,
    render,
    store,
    warehouse,
)
from ..sessions import COOKIE, IDLE_SECONDS, LOGIN_COOKIE

router = APIRouter(route_class=HtmlRoute, include_in_schema=False)
CSS = (HERE / "static" / "app.css").read_text()


def _safe_next(target: str | None) -> str | None:
    # only our own pages: never an absolute URL or a scheme-relative //host
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@router.get("/")
def root() -> Response:
    return redirect("/ui/")


@router.get("/ui/static/app.css")
def stylesheet() -> Response:
    return PlainTextResponse(CSS, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


@router.get("/ui")
@router.get("/ui/")
def home(request: Request) -> Response:
    try:
        viewer = current_viewer(request)
    except LoginRequired:
        return redirect("/ui/login")
    return redirect(home_for(viewer.principal.role))


@router.get("/ui/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, next)


def _login_page(request: Request, next: str | None, status: int = 200, message: str = "") -> Response:
    nonce = store(request).new_nonce()
    resp = render(request, "login.html", None, status=status, nonce=nonce, next=_safe_next(next) or "",
                  message=message, ttl_days=warehouse(request).settings.token_ttl_days)
    resp.set_cookie(LOGIN_COOKIE, nonce, httponly=True, samesite="strict", path="/ui/login",
                    secure=warehouse(request).settings.secure_cookies, max_age=3600)
    return resp


@router.post("/ui/login")
def login(request: Request, token: Annotated[str, Form(max_length=200)],
          nonce: Annotated[str, Form(max_length=200)] = "", next: Annotated[str, Form(max_length=300)] = "") -> Response:
    sessions = store(request)
    wh = warehouse(request)
    source = client_source(request.headers, request.client.host if request.client else None,
                           wh.settings.trusted_proxy)
    attempts = request.app.state.login_attempts
    use(language(request))
    if attempts.blocked(source):  # refused before the token is even looked at
        return _login_page(request, next, status=429,
                           message=_("too many failed sign-ins from this address: wait a minute and try again"))
    if not sessions.nonce_ok(request.cookies.get(LOGIN_COOKIE), nonce):
        raise Forbidden(_("the sign-in form expired or did not come from this site: load it again"))
    token = token.strip()
    where = {"method": "POST", "path": "/ui/login", "via": "web"}
    try:
        who = wh.users.authenticate(token)
    except AuthError as exc:
        attempts.hit(source)
        request.app.state.auth_failures.failed(source, token_fingerprint(token), where)
        return _login_page(request, next, status=401, message=_("Not signed in:") + " " + exc.message)
    wh.ctx.record(who, "token.used", "token", token_fingerprint(token), where)
    try:
        session = sessions.create(token)
    except LookupError:  # revoked or expired between the two reads
        return _login_page(request, next, status=401, message=_("unknown, revoked or expired token"))
    resp = redirect(_safe_next(next) or home_for(who.role))
    resp.set_cookie(COOKIE, sessions.cookie_value(session), httponly=True, samesite="strict", path="/",
                    secure=wh.settings.secure_cookies, max_age=IDLE_SECONDS * 24)
    resp.delete_cookie(LOGIN_COOKIE, path="/ui/login", secure=wh.settings.secure_cookies)
    return resp


@router.post("/ui/logout")
def logout(request: Request, viewer: Checked) -> Response:
    store(request).revoke(viewer.session)  # in the catalog: every process stops honouring it
    resp = redirect("/ui/login")
    resp.delete_cookie(COOKIE, path="/", secure=warehouse(request).settings.secure_cookies)
    return resp


def _language_response(request: Request, lang: str, next: str | None) -> Response:
    resp = redirect(_safe_next(next) or "/ui/")
    resp.set_cookie(LANG_COOKIE, lang, httponly=True, samesite="strict", path="/",
                    secure=warehouse(request).settings.secure_cookies, max_age=365 * 86400)
    return resp


@router.get("/ui/language")
def choose_language(request: Request, lang: Annotated[str, Query(max_length=35)],
                    next: Annotated[str | None, Query(max_length=300)] = None) -> Response:
    """Before signing in: the browser's language for these pages (a cookie; nothing stored)."""
    code = normalize(lang)
    if code is None:
        return redirect(_safe_next(next) or "/ui/")
    return _language_response(request, code, next)


@router.post("/ui/language")
def set_language(request: Request, viewer: Checked, lang: Annotated[str, Form(max_length=35)],
                 next: Annotated[str, Form(max_length=300)] = "") -> Response:
    """The signed-in user's language, kept in the catalog (``users.locale``) for every browser."""
    code = warehouse(request).users.set_locale(viewer.principal, lang)
    return _language_response(request, code or "en", next)
