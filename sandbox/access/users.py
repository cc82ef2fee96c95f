"""Users and their tokens: issue, list, revoke; expiry by policy; the time of last use.

A token lives ``Settings.token_ttl_days`` (90 by default) from its issue, or less if it was issued
for fewer days; the policy applies to tokens issued before it changed too (their expiry is the
earlier of the two). Expiry is checked on every request — API calls and web sessions alike.
Its last use is written at most once a minute (:data:`TOUCH_SECONDS`), so authenticating stays
a read. Admins issue tokens for anyone (a stolen token cannot mint its own successors); anyone
lists and revokes their own; auditors list all.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update

from ..auth import SYSTEM, Principal, Role, hash_token, new_token, token_fingerprint
from ..catalog.db import Database, Token, User, utcnow
from ..context import Context, require_role
from ..errors import AuthError, Conflict, InvalidInput, NotFound
from ..i18n import SUPPORTED, normalize

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_LABEL = re.compile(r"^[\w .:@-]{1,64}$")
#: ``tokens.last_used_at`` is written at most this often per token
TOUCH_SECONDS = 60


def _aware(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def token_expiry(tok: Token, ttl_days: int) -> datetime:
    """When ``tok`` stops working: its own expiry, or the policy's from its creation if earlier."""
    by_policy = _aware(tok.created_at) + timedelta(days=ttl_days)  # type: ignore[operator]
    own = _aware(tok.expires_at)
    return min(by_policy, own) if own is not None else by_policy


def token_state(tok: Token, ttl_days: int, now: datetime | None = None) -> str:
    if tok.revoked_at is not None:
        return "revoked"
    return "expired" if token_expiry(tok, ttl_days) <= (now or utcnow()) else "active"


def touch_token(db: Database, tok: Token, now: datetime | None = None) -> None:
    """Record that ``tok`` was used, at most once per :data:`TOUCH_SECONDS` (a conditional UPDATE)."""
    now = now or utcnow()
    last = _aware(tok.last_used_at)
    if last is not None and now - last < timedelta(seconds=TOUCH_SECONDS):
        return
    stale = now - timedelta(seconds=TOUCH_SECONDS)
    with db.transaction() as s:
        s.execute(update(Token).where(Token.id == tok.id, or_(Token.last_used_at.is_(None), Token.last_used_at < stale))
                  .values(last_used_at=now))


def token_dict(tok: Token, user: str, ttl_days: int) -> dict[str, Any]:
    iso = lambda t: _aware(t).isoformat() if t is not None else None  # noqa: E731
    return {"id": tok.id, "user": user, "label": tok.label, "fingerprint": tok.token_hash[:12],
            "created_at": iso(tok.created_at), "expires_at": iso(token_expiry(tok, ttl_days)),
            "last_used_at": iso(tok.last_used_at), "revoked_at": iso(tok.revoked_at),
            "state": token_state(tok, ttl_days)}


def user_dict(u: User) -> dict[str, Any]:
    out = {"name": u.name, "role": u.role, "tenant": u.tenant, "created_at": u.created_at.isoformat()}
    if u.subject_id is not None:
        out["subject"] = u.subject_id
    return out


#: a subject id: a privacy-unit value such as an 18-character unified social credit code
SUBJECT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def check_subject_id(value: Any, field: str = "subject") -> str:
    if not isinstance(value, str) or not SUBJECT_ID.match(value):
        raise InvalidInput(f"{field}: a subject id is 1-128 letters, digits and . _ : - (e.g. a unified social "
                           "credit code)", details={"field": field})
    return value


def _principal(u: User) -> Principal:
    return Principal(u.name, Role(u.role), u.tenant, u.subject_id)


class Users:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def locale(self, name: str) -> str | None:
        """The language ``name`` chose for their pages (None: their browser's)."""
        with self.ctx.db.read() as s:
            return s.execute(select(User.locale).where(User.name == name)).scalar_one_or_none()

    def set_locale(self, principal: Principal, locale: str | None) -> str | None:
        """The caller's own interface language (``en``, ``zh-CN``; None: follow the browser)."""
        code = None if locale in (None, "") else normalize(locale)
        if locale not in (None, "") and code is None:
            raise InvalidInput(f"locale: {str(locale)[:40]!r} is not a supported language; use one of "
                               f"{', '.join(SUPPORTED)}", details={"field": "locale"})
        with self.ctx.db.transaction() as s:
            user = s.execute(select(User).where(User.name == principal.name)).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {principal.name!r} does not exist")
            user.locale = code
        return code

    def bootstrap_admin(self, name: str = "admin", tenant: str = "platform") -> tuple[dict[str, Any], str] | None:
        """Create the first admin on an empty warehouse; None if users already exist."""
        with self.ctx.db.read() as s:
            if s.execute(select(User.id).limit(1)).first() is not None:
                return None
        return self._create(SYSTEM, name, Role.ADMIN, tenant)

    def add(self, principal: Principal, name: str, role: str, tenant: str,
            subject: str | None = None) -> tuple[dict[str, Any], str]:
        """A user and its first token; a ``subject`` user is bound to one privacy-unit value."""
        require_role(principal, Role.ADMIN)
        return self._create(principal, name, _role(role), tenant, subject)

    def _create(self, principal: Principal, name: str, role: Role, tenant: str,
                subject: str | None = None) -> tuple[dict[str, Any], str]:
        if role is Role.SUBJECT:
            check_subject_id(subject)
        elif subject is not None:
            raise InvalidInput("subject: only a user with the role subject speaks for a subject",
                               details={"field": "subject"})
        if not _NAME.match(name):
            raise InvalidInput(f"user name {name!r} must match {_NAME.pattern}", details={"field": "name"})
        if not _NAME.match(tenant):
            raise InvalidInput(f"tenant {tenant!r} must match {_NAME.pattern}", details={"field": "tenant"})
        token = new_token()
        details = {"role": role.value, "tenant": tenant, "token": token_fingerprint(token)}
        if subject is not None:
            details["subject"] = subject
        with self.ctx.recorded(principal, "user.added", "user", name, details) as s:
            if s.execute(select(User.id).where(User.name == name)).first() is not None:
                raise Conflict(f"user {name!r} already exists")
            user = User(name=name, role=role.value, tenant=tenant, subject_id=subject)
            s.add(user)
            s.flush()
            s.add(self._new_row(user.id, token))
            out = user_dict(user)
        return out, token

    @property
    def ttl_days(self) -> int:
        return self.ctx.settings.token_ttl_days

    def _new_row(self, user_id: int, token: str, days: int | None = None, label: str | None = None) -> Token:
        now = utcnow()
        return Token(user_id=user_id, token_hash=hash_token(token), created_at=now, label=label,
                     expires_at=now + timedelta(days=days or self.ttl_days))

    def issue_token(self, principal: Principal, name: str, *, days: int | None = None,
                    label: str | None = None) -> str:
        """A new token for ``name`` (admins only); shown once, stored as its SHA-256."""
        return self.issue(principal, name, days=days, label=label)[1]

    def issue(self, principal: Principal, name: str, *, days: int | None = None,
              label: str | None = None) -> tuple[dict[str, Any], str]:
        """Like :meth:`issue_token`, with the new token's listing entry."""
        require_role(principal, Role.ADMIN)
        if days is not None and not (isinstance(days, int) and 1 <= days <= self.ttl_days):
            raise InvalidInput(f"days: between 1 and the policy's {self.ttl_days}", details={"field": "days"})
        if label is not None and not _LABEL.match(label):
            raise InvalidInput("label: 1-64 letters, digits, spaces and . : @ - _", details={"field": "label"})
        token = new_token()
        with self.ctx.recorded(principal, "token.issued", "user", name,
                               {"token": token_fingerprint(token), "days": days or self.ttl_days,
                                "label": label}) as s:
            user = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {name!r} does not exist")
            row = self._new_row(user.id, token, days, label)
            s.add(row)
            s.flush()
            info = token_dict(row, user.name, self.ttl_days)
        return info, token

    def list_tokens(self, principal: Principal, user: str | None = None) -> list[dict[str, Any]]:
        """Tokens (never the secrets): every user's for admins and auditors, one's own otherwise."""
        if principal.role not in (Role.ADMIN, Role.AUDITOR):
            if user not in (None, principal.name):
                raise NotFound(f"user {user!r} does not exist")
            user = principal.name
        with self.ctx.db.read() as s:
            q = select(Token, User.name).join(User, User.id == Token.user_id).order_by(Token.id)
            if user is not None:
                q = q.where(User.name == user)
            return [token_dict(t, n, self.ttl_days) for t, n in s.execute(q).all()]

    def revoke_token(self, principal: Principal, token_id: int) -> dict[str, Any]:
        """Revoke one token (admins: any; others: their own — someone else's is "not found")."""
        with self.ctx.db.transaction() as s:
            row = s.execute(select(Token, User.name).join(User, User.id == Token.user_id)
                            .where(Token.id == token_id).with_for_update()).first()
            if row is None or (principal.role is not Role.ADMIN and row[1] != principal.name):
                raise NotFound(f"token {token_id!r} does not exist")
            tok, name = row
            already = tok.revoked_at is not None
            if not already:
                tok.revoked_at = utcnow()
                s.flush()
                self.ctx.audit.append(s, principal.actor, "token.revoked", "user", name,
                                      {"token": tok.token_hash[:12], "token_id": tok.id})
            return token_dict(tok, name, self.ttl_days)

    def revoke_tokens(self, principal: Principal, name: str) -> int:
        require_role(principal, Role.ADMIN)
        with self.ctx.recorded(principal, "token.revoked", "user", name) as s:
            user = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {name!r} does not exist")
            tokens = s.execute(select(Token).where(Token.user_id == user.id, Token.revoked_at.is_(None))).scalars().all()
            for t in tokens:
                t.revoked_at = utcnow()
            return len(tokens)

    def authenticate(self, token: str) -> Principal:
        """Resolve a bearer token (unknown, revoked or expired: refused); the caller records the use
        (see the API's dependency). Its last use is noted at most once a minute."""
        if not token or len(token) > 200:
            raise AuthError("missing or malformed bearer token")
        with self.ctx.db.read() as s:
            row = s.execute(
                select(User, Token).join(Token, Token.user_id == User.id).where(
                    Token.token_hash == hash_token(token), Token.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            raise AuthError("unknown or revoked token")
        user, tok = row
        if token_state(tok, self.ttl_days) != "active":
            raise AuthError(f"the token expired on {token_expiry(tok, self.ttl_days):%Y-%m-%d}; "
                            "ask an admin for a new one (twh token issue)")
        touch_token(self.ctx.db, tok)
        return _principal(user)

    def principal(self, name: str) -> Principal:
        """The principal of a named user (the CLI's local mode: the operator has the files anyway)."""
        with self.ctx.db.read() as s:
            row = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if row is None:
                raise NotFound(f"user {name!r} does not exist; add it with `twh user add`")
            return _principal(row)

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        require_role(principal, Role.ADMIN, Role.AUDITOR)
        with self.ctx.db.read() as s:
            return [user_dict(u) for u in s.execute(select(User).order_by(User.name)).scalars()]


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise InvalidInput(f"unknown role {value!r}; use one of {[r.value for r in Role]}",
                           details={"field": "role"}) from None
