"""Authorisations (授权): a data subject's consent that one tenant may use named datasets about it, for
one purpose, until a date — the only ground on which a per-subject result (a score, a verification
answer) leaves the warehouse.

    auth = wh.authorisations.grant(subject_user, subject="91500000MA5U000001", tenant="bank_a",
                                   purpose="credit_decision", datasets=["tax_payments"],
                                   valid_until="2027-06-30", consent_sha256=sha256_of_the_signed_form)
    wh.authorisations.revoke(subject_user, auth["id"])
    covering(session, "bank_a", "credit_decision", {"tax_payments"}, subjects, now)   # who may be answered

Registered by the subject's own account (role ``subject``, bound to one privacy-unit value) or by
a steward of every dataset it names (the data holder that received the consent, as in bank–tax
interaction); revoked by the subject or a steward of a dataset it names; never deleted. Each
grant and revocation is audited in its own transaction; a steward's bulk import is one record
holding the SHA-256 over its rows (:func:`rows_sha256`), so no row can be added or changed unnoticed.

Visible to: the subject (its own), the tenant it authorises (its enterprise users), stewards of a
dataset it names, auditors and admins. Anyone else's lookup answers ``not_found``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, case, func, select, type_coerce
from sqlalchemy.orm import Session

from ..auth import Principal, Role
from ..catalog.db import utcnow
from ..catalog.products import Authorisation, AuthorisationHead
from ..context import Context, get_dataset, stewarded_by
from ..errors import Forbidden, InvalidInput, NotFound
from .users import check_subject_id

__all__ = ["Authorisations", "Coverage", "authorisation_dict", "covering", "head_version", "rows_sha256"]

_TENANT = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
_PURPOSE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
#: the longest an authorisation may run (a consent for "ever" is not one)
MAX_VALIDITY = timedelta(days=5 * 366)
MAX_DATASETS = 16
MAX_IMPORT = 1_000_000
#: below this many subjects a lookup names them; above it reads the tenant's purpose's rows once
_IN_LIST = 500


def pack(datasets: Iterable[str]) -> str:
    """Datasets as stored: sorted, ",a,b," (so that ``LIKE '%,a,%'`` finds one)."""
    return "," + ",".join(sorted(datasets)) + ","


def unpack(text: str) -> list[str]:
    return [d for d in text.split(",") if d]


def _aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t


def _when(value: Any, field: str) -> datetime:
    """A date (``2027-06-30``: the end of that day, UTC) or an ISO time with a zone."""
    if isinstance(value, datetime):
        return _aware(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, 23, 59, 59, 999999, tzinfo=UTC)  # the whole day
    if isinstance(value, str) and len(value) <= 40:
        try:
            if len(value) == 10:
                return _when(date.fromisoformat(value), field)
            return _aware(datetime.fromisoformat(value))
        except ValueError:
            pass
    raise InvalidInput(f"{field}: a date (YYYY-MM-DD) or an ISO time", details={"field": field})


def authorisation_dict(a: Authorisation, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    state = ("revoked" if a.revoked_at is not None else "expired" if _aware(a.valid_until) <= now
             else "pending" if _aware(a.valid_from) > now else "active")
    return {"id": a.id, "subject": a.subject, "tenant": a.tenant, "purpose": a.purpose, "datasets": unpack(a.datasets),
            "valid_from": _aware(a.valid_from).isoformat(), "valid_until": _aware(a.valid_until).isoformat(),
            "consent_sha256": a.consent_sha256, "registered_by": a.registered_by,
            "created_at": _aware(a.created_at).isoformat() if a.created_at else None,
            "revoked_at": _aware(a.revoked_at).isoformat() if a.revoked_at else None,
            "revoked_by": a.revoked_by, "import_id": a.import_id, "state": state}


def _line(a: dict[str, Any]) -> str:
    return "\t".join([a["id"], a["subject"], a["tenant"], a["purpose"], ",".join(a["datasets"]),
                      a["valid_from"], a["valid_until"], a["consent_sha256"]])


def rows_sha256(rows: Iterable[dict[str, Any]]) -> str:
    """SHA-256 over an import's rows (id order): what its audit record binds."""
    h = hashlib.sha256()
    for a in sorted(rows, key=lambda r: r["id"]):
        h.update(_line(a).encode() + b"\n")
    return h.hexdigest()


def covering(s: Session, tenant: str, purpose: str, required: set[str], subjects: Sequence[str],
             now: datetime | None = None) -> dict[str, list[str]]:
    """subject -> the ids of its valid authorisations of ``tenant`` and ``purpose`` when, together,
    they name every dataset in ``required`` (at least one is needed even when nothing is required).
    Subjects that are not covered are absent: expired, revoked, not yet valid, another tenant or
    purpose, a dataset missing — all alike. One aggregate query, whatever the number of subjects."""
    now = now or utcnow()
    wanted = set(subjects)
    ids = (func.string_agg(Authorisation.id, ",") if s.get_bind().dialect.name == "postgresql"
           else func.group_concat(Authorisation.id, ","))
    q = (select(Authorisation.subject, ids)
         .where(Authorisation.tenant == tenant, Authorisation.purpose == purpose, Authorisation.revoked_at.is_(None),
                Authorisation.valid_from <= now, Authorisation.valid_until > now)
         .group_by(Authorisation.subject))
    for d in sorted(required):
        named = case((Authorisation.datasets.contains(f",{d},", autoescape=True), 1), else_=0)
        q = q.having(func.sum(named) > 0)
    if len(wanted) <= _IN_LIST:
        q = q.where(Authorisation.subject.in_(sorted(wanted)))
    return {subject: sorted(got.split(",")) for subject, got in s.execute(q) if subject in wanted}


def bump(s: Session, pairs: Iterable[tuple[str, str]]) -> None:
    """A new version for each (tenant, purpose) whose authorisations changed, in ``s``'s transaction."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as upsert
    else:
        from sqlalchemy.dialects.sqlite import insert as upsert
    for tenant, purpose in sorted(set(pairs)):
        s.execute(upsert(AuthorisationHead).values(tenant=tenant, purpose=purpose, version=1)
                  .on_conflict_do_update(index_elements=["tenant", "purpose"],
                                         set_={"version": AuthorisationHead.version + 1}))


def head_version(s: Session, tenant: str, purpose: str) -> int:
    return s.execute(select(AuthorisationHead.version).where(
        AuthorisationHead.tenant == tenant, AuthorisationHead.purpose == purpose)).scalar() or 0


class Coverage:
    """:func:`covering` for many subjects at once. A tenant's authorisations for a purpose are
    aggregated per set of required datasets at a head version — which subjects are covered at the
    moment of reading, by which ids, and until when — and kept in this process (Arrow), valid until
    the head moves (any grant, import or revocation of that tenant and purpose,
    anywhere: the version is read in the caller's transaction) or the first authorisation starts or
    ends, whichever is sooner. A request then only looks its subjects up (no scan, no query per
    subject), so a batch's cost does not grow with the tenant's other authorisations."""

    def __init__(self) -> None:
        #: (tenant, purpose, required) -> (version, good until, covered subjects, ids, first expiry)
        self._cache: dict[tuple[str, str, tuple[str, ...]], tuple[int, datetime, Any, Any, Any]] = {}
        self._lock = threading.Lock()

    def _build(self, s: Session, tenant: str, purpose: str, required: tuple[str, ...], version: int,
               now: datetime) -> tuple[int, datetime, Any, Any, Any]:
        """Aggregated by the catalog database itself (one pass over the covering index): the covered
        subjects, their ids and first expiry, and when the answer next changes."""
        import pyarrow as pa

        sqlite = s.get_bind().dialect.name == "sqlite"
        a = Authorisation.__table__.c
        scope = (a.tenant == tenant, a.purpose == purpose, a.revoked_at.is_(None))
        ids = func.string_agg(a.id, ",") if not sqlite else func.group_concat(a.id, ",")
        until = func.min(a.valid_until)
        # SQLite's times as their stored text, parsed by Arrow at once (not 100k datetimes in Python)
        q = (select(a.subject, ids, type_coerce(until, String) if sqlite else until)
             .where(*scope, a.valid_from <= now, a.valid_until > now).group_by(a.subject))
        for d in required:
            q = q.having(func.sum(case((a.datasets.contains(f",{d},", autoescape=True), 1), else_=0)) > 0)
        rows = s.execute(q).all()
        cols = list(zip(*rows, strict=True)) if rows else [[], [], []]
        expiry = (pa.array(cols[2], pa.string()).cast(pa.timestamp("us")) if sqlite else
                  pa.array([_aware(t).astimezone(UTC).replace(tzinfo=None) for t in cols[2]], pa.timestamp("us")))
        # the copy holds until the first authorisation starts or ends after now
        turns = [s.execute(select(func.min(col)).where(*scope, col > now)).scalar() for col in (a.valid_from,
                                                                                                 a.valid_until)]
        good_until = min((_aware(t) for t in turns if t is not None), default=now + MAX_VALIDITY)
        return (version, good_until, pa.array(cols[0], pa.string()), pa.array(cols[1], pa.string()), expiry)

    def check(self, s: Session, tenant: str, purpose: str, required: set[str], subjects: Any,
              now: datetime) -> tuple[int, Any, Any]:
        """(the head version read, the ids string per subject — null where not covered, and when the
        first of them expires, as numpy datetime64[us] UTC) for the Arrow string array ``subjects``."""
        import pyarrow.compute as pc

        key = (tenant, purpose, tuple(sorted(required)))
        version = head_version(s, tenant, purpose)
        with self._lock:
            got = self._cache.get(key)
        if got is None or got[0] != version or now >= got[1]:
            got = self._build(s, tenant, purpose, key[2], version, now)
            with self._lock:
                self._cache[key] = got
        _, _, covered, ids, until = got
        idx = pc.index_in(subjects, value_set=covered)
        expiry = pc.take(until, idx).to_numpy(zero_copy_only=False)
        return version, pc.take(ids, idx), expiry


class Authorisations:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- checks -----------------------------------------------------------------------------------
    def _row(self, s: Session, principal: Principal, raw: dict[str, Any], now: datetime) -> dict[str, Any]:
        subject = check_subject_id(raw.get("subject"))
        tenant, purpose = raw.get("tenant"), raw.get("purpose")
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            raise InvalidInput("tenant: the tenant name the subject authorises", details={"field": "tenant"})
        if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
            raise InvalidInput("purpose: 1-64 letters, digits and . _ -", details={"field": "purpose"})
        datasets = raw.get("datasets")
        if (not isinstance(datasets, list | tuple) or not 1 <= len(datasets) <= MAX_DATASETS
                or len(set(datasets)) != len(datasets) or not all(isinstance(d, str) for d in datasets)):
            raise InvalidInput(f"datasets: 1 to {MAX_DATASETS} distinct dataset names", details={"field": "datasets"})
        for name in datasets:
            get_dataset(s, name)
        consent = raw.get("consent_sha256")
        if not isinstance(consent, str) or not _SHA.match(consent):
            raise InvalidInput("consent_sha256: the SHA-256 (64 lowercase hex digits) of the signed consent document",
                               details={"field": "consent_sha256"})
        since = _when(raw["valid_from"], "valid_from") if raw.get("valid_from") else now
        until = _when(raw.get("valid_until"), "valid_until")
        if not since < until or until <= now:
            raise InvalidInput("valid_until: must be later than valid_from and than now", details={"field": "valid_until"})
        if until - since > MAX_VALIDITY:
            raise InvalidInput(f"valid_until: an authorisation runs at most {MAX_VALIDITY.days} days",
                               details={"field": "valid_until"})
        if principal.role is Role.SUBJECT:
            if subject != principal.subject:  # a subject speaks for itself only (another's: as if absent)
                raise Forbidden(f"{principal.name} speaks for subject {principal.subject}, not another")
        elif principal.role is Role.STEWARD:
            mine = stewarded_by(s, principal.name)
            missing = [d for d in datasets if d not in mine]
            if missing:
                raise Forbidden(f"{principal.name} does not steward {', '.join(missing)}: a steward registers consent "
                                "only for the datasets it holds", details={"datasets": missing})
        else:
            raise Forbidden("an authorisation is registered by the subject's own account or a steward of its datasets")
        return {"subject": subject, "tenant": tenant, "purpose": purpose, "datasets": sorted(datasets),
                "valid_from": since, "valid_until": until, "consent_sha256": consent}

    def _visible(self, s: Session, principal: Principal, a: Authorisation) -> bool:
        if principal.role in (Role.ADMIN, Role.AUDITOR):
            return True
        if principal.role is Role.SUBJECT:
            return a.subject == principal.subject
        if principal.role is Role.ENTERPRISE:
            return a.tenant == principal.tenant
        return bool(set(unpack(a.datasets)) & stewarded_by(s, principal.name))

    # -- actions ----------------------------------------------------------------------------------
    def grant(self, principal: Principal, *, subject: str, tenant: str, purpose: str, datasets: Sequence[str],
              valid_until: Any, consent_sha256: str, valid_from: Any = None) -> dict[str, Any]:
        now = utcnow()
        auth_id = "auth_" + secrets.token_hex(8)
        raw = {"subject": subject, "tenant": tenant, "purpose": purpose, "datasets": list(datasets) if isinstance(
            datasets, list | tuple) else datasets, "valid_until": valid_until, "valid_from": valid_from,
               "consent_sha256": consent_sha256}
        with self.ctx.db.read() as s:
            row = self._row(s, principal, raw, now)
        details = {**row, "valid_from": row["valid_from"].isoformat(), "valid_until": row["valid_until"].isoformat()}
        with self.ctx.recorded(principal, "authorisation.granted", "authorisation", auth_id, details) as s:
            a = Authorisation(id=auth_id, registered_by=principal.name, created_at=now,
                              **{**row, "datasets": pack(row["datasets"])})
            s.add(a)
            s.flush()
            bump(s, [(a.tenant, a.purpose)])
            return authorisation_dict(a, now)

    def grant_many(self, principal: Principal, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """A steward's bulk import (e.g. the consents its portal collected): all rows or none, one
        audit record with their count and :func:`rows_sha256`."""
        if principal.role is not Role.STEWARD:
            raise Forbidden("a bulk import of authorisations is a steward's (a subject registers its own)")
        if not isinstance(rows, list | tuple) or not 1 <= len(rows) <= MAX_IMPORT:
            raise InvalidInput(f"rows: 1 to {MAX_IMPORT} authorisations", details={"field": "rows"})
        now = utcnow()
        import_id = "aimp_" + secrets.token_hex(8)
        checked: list[dict[str, Any]] = []
        with self.ctx.db.read() as s:
            cache: dict[tuple[str, ...], None] = {}
            for i, raw in enumerate(rows):
                if not isinstance(raw, dict):
                    raise InvalidInput(f"rows[{i}]: an object", details={"field": f"rows[{i}]"})
                key = tuple(raw.get("datasets") or ()) if isinstance(raw.get("datasets"), list | tuple) else ()
                try:
                    row = self._row(s, principal, raw, now) if key not in cache else self._row_fast(raw, now)
                except InvalidInput as exc:
                    raise InvalidInput(f"rows[{i}]: {exc.message}", details={"field": f"rows[{i}]"}) from None
                cache[key] = None
                checked.append({"id": f"auth_{secrets.token_hex(8)}", **row})
        listing = [{**r, "valid_from": r["valid_from"].isoformat(), "valid_until": r["valid_until"].isoformat()}
                   for r in checked]
        digest = rows_sha256(listing)
        with self.ctx.recorded(principal, "authorisation.imported", "authorisation", import_id,
                               {"count": len(checked), "rows_sha256": digest,
                                "datasets": sorted({d for r in checked for d in r["datasets"]}),
                                "tenants": sorted({r["tenant"] for r in checked})}) as s:
            s.execute(Authorisation.__table__.insert(), [
                {**r, "datasets": pack(r["datasets"]), "registered_by": principal.name, "created_at": now,
                 "import_id": import_id} for r in checked])
            bump(s, [(r["tenant"], r["purpose"]) for r in checked])
        return {"import_id": import_id, "count": len(checked), "rows_sha256": digest}

    def _row_fast(self, raw: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The checks of :meth:`_row` that do not depend on the datasets (already checked for this
        exact list in this import: they exist and the steward holds them)."""
        subject = check_subject_id(raw.get("subject"))
        tenant, purpose, consent = raw.get("tenant"), raw.get("purpose"), raw.get("consent_sha256")
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            raise InvalidInput("tenant: the tenant name the subject authorises", details={"field": "tenant"})
        if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
            raise InvalidInput("purpose: 1-64 letters, digits and . _ -", details={"field": "purpose"})
        if not isinstance(consent, str) or not _SHA.match(consent):
            raise InvalidInput("consent_sha256: 64 lowercase hex digits", details={"field": "consent_sha256"})
        since = _when(raw["valid_from"], "valid_from") if raw.get("valid_from") else now
        until = _when(raw.get("valid_until"), "valid_until")
        if not since < until or until <= now or until - since > MAX_VALIDITY:
            raise InvalidInput("valid_until: later than valid_from and now, within the longest validity",
                               details={"field": "valid_until"})
        return {"subject": subject, "tenant": tenant, "purpose": purpose, "datasets": sorted(raw["datasets"]),
                "valid_from": since, "valid_until": until, "consent_sha256": consent}

    def revoke(self, principal: Principal, auth_id: str) -> dict[str, Any]:
        """The subject or a steward of a dataset it names withdraws it; from now on it covers nothing."""
        with self.ctx.db.transaction() as s:
            a = s.get(Authorisation, auth_id, with_for_update=True) if isinstance(auth_id, str) and len(
                auth_id) <= 40 else None
            if a is None or not self._visible(s, principal, a):
                raise NotFound(f"authorisation {str(auth_id)[:40]!r} does not exist")
            if principal.role not in (Role.SUBJECT, Role.STEWARD):
                raise Forbidden("the subject or a steward of its datasets revokes an authorisation")
            if a.revoked_at is None:
                a.revoked_at, a.revoked_by = utcnow(), principal.name
                s.flush()
                bump(s, [(a.tenant, a.purpose)])
                self.ctx.audit.append(s, principal.actor, "authorisation.revoked", "authorisation", a.id,
                                      {"subject": a.subject, "tenant": a.tenant, "purpose": a.purpose})
            return authorisation_dict(a)

    def get(self, principal: Principal, auth_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            a = s.get(Authorisation, auth_id) if isinstance(auth_id, str) and len(auth_id) <= 40 else None
            if a is None or not self._visible(s, principal, a):
                raise NotFound(f"authorisation {str(auth_id)[:40]!r} does not exist")
            return authorisation_dict(a)

    def list(self, principal: Principal, *, subject: str | None = None, tenant: str | None = None,
             active: bool = False, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first, those the caller may see (see the module docstring)."""
        now = utcnow()
        q = select(Authorisation).order_by(Authorisation.created_at.desc(), Authorisation.id)
        if principal.role is Role.SUBJECT:
            q = q.where(Authorisation.subject == principal.subject)
        elif principal.role is Role.ENTERPRISE:
            q = q.where(Authorisation.tenant == principal.tenant)
        if subject is not None:
            q = q.where(Authorisation.subject == subject)
        if tenant is not None:
            q = q.where(Authorisation.tenant == tenant)
        if active:
            q = q.where(Authorisation.revoked_at.is_(None))
        with self.ctx.db.read() as s:
            mine = stewarded_by(s, principal.name) if principal.role is Role.STEWARD else set()
            out = []
            for a in s.execute(q).scalars():
                if principal.role is Role.STEWARD and not set(unpack(a.datasets)) & mine:
                    continue
                d = authorisation_dict(a, now)
                if active and d["state"] != "active":
                    continue
                out.append(d)
                if limit is not None and len(out) >= limit:
                    break
            return out
