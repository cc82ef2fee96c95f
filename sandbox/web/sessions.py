"""Browser sessions: an opaque, signed id in an HttpOnly SameSite=Strict cookie; everything else server-side.

The cookie holds ``<random id>.<HMAC of the id>`` under a key in the warehouse's ``secrets/``
directory — never the bearer token. The server keeps, per id, the token (to authenticate it again
on every request, so a revoked token ends its sessions at once), a per-session CSRF token, and
the times that expire it. Sessions live in this process's memory: a restart logs everyone out,
which fails closed (run one service process per warehouse, as ``twh serve`` does).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from ..keys import load_or_create_key

COOKIE = "twh_session"
LOGIN_COOKIE = "twh_login"  # a nonce binding the login form to this browser (login CSRF)
IDLE_SECONDS = 30 * 60
MAX_AGE_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000


@dataclass
class WebSession:
    id: str
    token: str = field(repr=False)
    csrf: str = field(repr=False)
    created: float
    seen: float


class SessionStore:
    def __init__(self, secrets_dir: Path, *, clock: object = time.monotonic) -> None:
        self._key = load_or_create_key(secrets_dir / "web_session.key")
        self._sessions: dict[str, WebSession] = {}
        self._lock = threading.Lock()
        self._clock = clock

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
        now = self._clock()  # type: ignore[operator]
        s = WebSession(id=secrets.token_urlsafe(32), token=token, csrf=secrets.token_urlsafe(32), created=now, seen=now)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._expire(now)
                while len(self._sessions) >= MAX_SESSIONS:  # still full: the oldest go
                    self._sessions.pop(min(self._sessions.values(), key=lambda x: x.seen).id)
            self._sessions[s.id] = s
        return s

    def get(self, cookie: str | None) -> WebSession | None:
        sid = self._id_from_cookie(cookie)
        if sid is None:
            return None
        now = self._clock()  # type: ignore[operator]
        with self._lock:
            s = self._sessions.get(sid)
            if s is None:
                return None
            if now - s.seen > IDLE_SECONDS or now - s.created > MAX_AGE_SECONDS:
                del self._sessions[sid]
                return None
            s.seen = now
            return s

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def drop_token(self, token: str) -> None:
        """End every session of a token (it was rejected: revoked or unknown)."""
        with self._lock:
            for sid in [k for k, v in self._sessions.items() if hmac.compare_digest(v.token, token)]:
                del self._sessions[sid]

    def _expire(self, now: float) -> None:
        for sid in [k for k, v in self._sessions.items()
                    if now - v.seen > IDLE_SECONDS or now - v.created > MAX_AGE_SECONDS]:
            del self._sessions[sid]

    def csrf_ok(self, s: WebSession, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(s.csrf, sent or "")
