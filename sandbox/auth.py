"""Principals, roles and bearer tokens.

Tokens are random, shown once, and stored only as their SHA-256 (they carry 256 bits of entropy,
so a slow hash adds nothing). Permission rules live in the services, not in the API, so the CLI
obeys the same rules.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from .audit.log import Actor

TOKEN_PREFIX = "twh_"


class Role(StrEnum):
    ENTERPRISE = "enterprise"
    STEWARD = "steward"
    AUDITOR = "auditor"
    ADMIN = "admin"
    #: a data subject (a firm): bound to one privacy-unit value (``Principal.subject``); it registers
    #: and revokes its own authorisations and reads who used its data, nothing else
    SUBJECT = "subject"


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    tenant: str
    #: the privacy-unit value (e.g. a unified social credit code) a ``subject`` user speaks for
    subject: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.tenant)


#: the warehouse itself, for actions no user takes (recovering jobs after a restart, the runner)
SYSTEM = Principal("system", Role.ADMIN, "platform")


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def token_fingerprint(token: str) -> str:
    """What the audit log records about a token: never the token, only a short hash."""
    return hash_token(token)[:12]


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
