"""Browser sessions: an opaque, signed id in an HttpOnly SameSite=Strict cookie; the rest in the catalog.

The cookie holds ``<random id>.<HMAC of the id>`` under a key in the warehouse's ``secrets/``
directory — never the bearer token. The catalog's ``web_sessions`` table keeps, per session,
only the SHA-256 of the id, the user, *which* token signed in (its row, never the token), a
per-session CSRF token, and the times that end it (idle, absolute, revoked). Every request
re-resolves the principal through the token's row, so revoking the token — or its expiry — ends
its sessions at once; signing out revokes the row. Any number of service processes on one catalog (and one
``secrets/``) honour the same sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from ...access.users import token_state, touch_token
from ...auth import Principal, Role, hash_token
from ...catalog.db import Database, Token, User, WebSessionRow, utcnow
from ...catalog.keys import load_or_create_key

COOKIE = "twh_session"
LOGIN_COOKIE = "twh_login"  # a nonce binding the login form to this browser (login CSRF)
IDLE_SECONDS = 30 * 60
MAX_AGE_SECONDS = 12 * 3600
#: ``last_seen_at`` is written at most this often, so browsing is not one catalog write per page
TOUCH_SECONDS = 60
#: ended rows are kept this long (for an operator's eyes), then pruned when someone signs in
KEEP_ENDED = timedelta(days=7)


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    user: str
    csrf: str = field(repr=False)
    #: what the audit log records about the signing-in token (its hash's first 12 hex digits)
    token_fingerprint: str
    #: None when the token was revoked or expired (or its user removed) since signing in
    principal: Principal | None
    id: str = field(default="", repr=False)  # the raw id: only known right after create()


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, db: Database, secrets_dir: Path, *, clock: Callable[[], datetime] = utcnow,
                 token_ttl_days: int = 90) -> None:
        self._db = db
        self._key = load_or_create_key(secrets_dir / "web_session.key")
        self._clock = clock
        self._ttl = token_ttl_days

    # -- cookie values ---------------------------------------------------------------------
    def _sign(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def cookie_value(self, s: WebSession) -> str:
        return f"{s.id}.{self._sign(s.id)}"

    def _id_from_cookie(self, value: str | None) -> str | None:
        if not value or len(value) > 200 or "." not in value:
            return None
        sid, _, sig = value.partition(".")
        return sid if hmac.compare_digest(self._sign(sid), sig) else None

    def new_nonce(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign('login:' + nonce)}"

    def nonce_ok(self, cookie: str | None, form: str | None) -> bool:
        if not cookie or not form or len(cookie) > 200:
            return False
        nonce, _, sig = cookie.partition(".")
        return hmac.compare_digest(self._sign("login:" + nonce), sig) and hmac.compare_digest(cookie, form)

    # -- lifecycle --------------------------------------------------------------------------
    def create(self, token: str) -> WebSession:
        """A session for a token the caller has just authenticated (a revoked one gets none)."""
        now = self._clock()
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self._db.transaction() as s:
            row = s.execute(select(Token, User).join(User, User.id == Token.user_id).where(
                Token.token_hash == hash_token(token), Token.revoked_at.is_(None))).first()
            if row is None or token_state(row[0], self._ttl, now) != "active":
                raise LookupError("the token is unknown, revoked or expired")
            tok, user = row
            s.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now - KEEP_ENDED))
            s.add(WebSessionRow(id_hash=_digest(sid), user_name=user.name, token_id=tok.id, csrf=csrf,
                                created_at=now, last_seen_at=now,
                                expires_at=now + timedelta(seconds=MAX_AGE_SECONDS)))
        return WebSession(_digest(sid), user.name, csrf, tok.token_hash[:12],
                          Principal(user.name, Role(user.role), user.tenant, user.subject_id), id=sid)

    def get(self, cookie: str | None) -> WebSession | None:
        """The live session of this cookie, or None (unsigned, unknown, idle, too old, signed out).

        A session whose token has been revoked since is returned with ``principal=None``, so the
        caller can record the rejection; :meth:`revoke` it then."""
        sid = self._id_from_cookie(cookie)
        if sid is None:
            return None
        now = self._clock()
        id_hash = _digest(sid)
        with self._db.read() as s:
            found = s.execute(
                select(WebSessionRow, Token, User)
                .join(Token, Token.id == WebSessionRow.token_id)
                .outerjoin(User, (User.id == Token.user_id) & (User.name == WebSessionRow.user_name))
                .where(WebSessionRow.id_hash == id_hash, WebSessionRow.revoked_at.is_(None),
                       WebSessionRow.expires_at > now,
                       WebSessionRow.last_seen_at > now - timedelta(seconds=IDLE_SECONDS))
            ).first()
        if found is None:
            return None
        row, tok, user = found
        live = token_state(tok, self._ttl, now) == "active" and user is not None
        if live:
            touch_token(self._db, tok, now)  # at most once a minute per token
        principal = Principal(user.name, Role(user.role), user.tenant, user.subject_id) if live else None
        seen = row.last_seen_at if row.last_seen_at.tzinfo else row.last_seen_at.replace(tzinfo=UTC)
        if live and now - seen > timedelta(seconds=TOUCH_SECONDS):
            self._touch(id_hash, now)
        return WebSession(id_hash, row.user_name, row.csrf, tok.token_hash[:12], principal)

    def _touch(self, id_hash: str, now: datetime) -> None:
        with self._db.transaction() as s:
            s.execute(update(WebSessionRow).where(
                WebSessionRow.id_hash == id_hash,
                WebSessionRow.last_seen_at < now - timedelta(seconds=TOUCH_SECONDS)).values(last_seen_at=now))

    def revoke(self, session: WebSession) -> None:
        """End a session (signing out, or its token was rejected): no process honours it again."""
        with self._db.transaction() as s:
            s.execute(update(WebSessionRow).where(WebSessionRow.id_hash == session.id_hash,
                                                  WebSessionRow.revoked_at.is_(None))
                      .values(revoked_at=self._clock()))

    def csrf_ok(self, s: WebSession, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(s.csrf, sent or "")
