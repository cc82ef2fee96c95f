"""Users and their tokens."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from ..auth import SYSTEM, Principal, Role, hash_token, new_token, token_fingerprint
from ..catalog.db import Token, User, utcnow
from ..context import Context, require_role
from ..errors import AuthError, Conflict, InvalidInput, NotFound

_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def user_dict(u: User) -> dict[str, Any]:
    return {"name": u.name, "role": u.role, "tenant": u.tenant, "created_at": u.created_at.isoformat()}


class Users:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def bootstrap_admin(self, name: str = "admin", tenant: str = "platform") -> tuple[dict[str, Any], str] | None:
        """Create the first admin on an empty warehouse; None if users already exist."""
        with self.ctx.db.read() as s:
            if s.execute(select(User.id).limit(1)).first() is not None:
                return None
        return self._create(SYSTEM, name, Role.ADMIN, tenant)

    def add(self, principal: Principal, name: str, role: str, tenant: str) -> tuple[dict[str, Any], str]:
        require_role(principal, Role.ADMIN)
        return self._create(principal, name, _role(role), tenant)

    def _create(self, principal: Principal, name: str, role: Role, tenant: str) -> tuple[dict[str, Any], str]:
        if not _NAME.match(name):
            raise InvalidInput(f"user name {name!r} must match {_NAME.pattern}", details={"field": "name"})
        if not _NAME.match(tenant):
            raise InvalidInput(f"tenant {tenant!r} must match {_NAME.pattern}", details={"field": "tenant"})
        token = new_token()
        with self.ctx.recorded(principal, "user.added", "user", name,
                               {"role": role.value, "tenant": tenant, "token": token_fingerprint(token)}) as s:
            if s.execute(select(User.id).where(User.name == name)).first() is not None:
                raise Conflict(f"user {name!r} already exists")
            user = User(name=name, role=role.value, tenant=tenant)
            s.add(user)
            s.flush()
            s.add(Token(user_id=user.id, token_hash=hash_token(token)))
            out = user_dict(user)
        return out, token

    def issue_token(self, principal: Principal, name: str) -> str:
        require_role(principal, Role.ADMIN)
        token = new_token()
        with self.ctx.recorded(principal, "token.issued", "user", name, {"token": token_fingerprint(token)}) as s:
            user = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if user is None:
                raise NotFound(f"user {name!r} does not exist")
            s.add(Token(user_id=user.id, token_hash=hash_token(token)))
        return token

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
        """Resolve a bearer token; the caller records the use (see the API's dependency)."""
        if not token or len(token) > 200:
            raise AuthError("missing or malformed bearer token")
        with self.ctx.db.read() as s:
            row = s.execute(
                select(User).join(Token, Token.user_id == User.id).where(
                    Token.token_hash == hash_token(token), Token.revoked_at.is_(None)
                )
            ).scalar_one_or_none()
            if row is None:
                raise AuthError("unknown or revoked token")
            return Principal(row.name, Role(row.role), row.tenant)

    def principal(self, name: str) -> Principal:
        """The principal of a named user (the CLI's local mode: the operator has the files anyway)."""
        with self.ctx.db.read() as s:
            row = s.execute(select(User).where(User.name == name)).scalar_one_or_none()
            if row is None:
                raise NotFound(f"user {name!r} does not exist; add it with `twh user add`")
            return Principal(row.name, Role(row.role), row.tenant)

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
