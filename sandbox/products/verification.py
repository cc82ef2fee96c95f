"""Verification products (核验): a yes/no or banded claim about one subject, fixed by a steward.

    p = wh.products.verification.define(tax_steward, {
        "name": "vat_2023_at_least", "feature": "vat_2023@1", "kind": "at_least",
        "thresholds": [100000, 500000, 1000000], "tenants": ["bank_a"], "purposes": ["credit_decision"],
        "max_distinct_claims": 1, "period": "month"})
    wh.products.verification.verify(analyst, "vat_2023_at_least@1", subject, "credit_decision", claim=500000)
    # -> {"status": "answered", "answer": "yes", ...} | {"status": "refused", "reason": "not authorised"}

Kinds, over one library feature (a value per subject): ``at_least`` / ``at_most`` (the request
names one of the product's **thresholds**), ``one_of`` (one of its **values**, e.g. a district),
``bands`` (no choice: the answer is the label of the band, between fixed **edges**, the value
falls in). No threshold outside the product's list is ever evaluated, and a tenant may ask a
subject at most ``max_distinct_claims`` distinct claims per ``period``: with 1 (the default) a
tenant learns one bit per subject per month, so no binary search of the value. A subject with no
value answers ``unknown``. Authorisations, quotas, the audit record and the subject's rows are the
inference path's (:mod:`.inference`), in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from ..access.authorisations import covering
from ..access.users import check_subject_id
from ..auth import Principal, Role
from ..catalog.db import utcnow
from ..catalog.products import VerificationProduct
from ..context import Context, require_role, stewarded_by
from ..errors import AccessRefused, Forbidden, InvalidInput, NotFound
from .features import FeatureLibrary, parse_ref
from .runtime import FeatureEngine
from .uses import NOT_AUTHORISED, Rows, charge, check_subject_results, claims_so_far, period_start, record_run

__all__ = ["CLAIMS_LIMIT", "KINDS", "Verification", "product_dict"]

KINDS = ("at_least", "at_most", "one_of", "bands")
PERIODS = ("day", "month", "year")
CLAIMS_LIMIT = "the product's limit of distinct claims about this subject this period is reached"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def product_dict(p: VerificationProduct) -> dict[str, Any]:
    return {"name": p.name, "version": p.version, "ref": f"{p.name}@{p.version}", "description": p.description,
            "feature": p.feature, "kind": p.kind, **p.claims, "datasets": list(p.datasets),
            "allowed_tenants": list(p.allowed_tenants), "allowed_purposes": list(p.allowed_purposes),
            "max_distinct_claims": p.max_distinct_claims, "period": p.period, "published_by": p.published_by,
            "created_at": p.created_at.isoformat() if p.created_at else None}


def _numbers(v: Any, field: str, most: int, ascending: bool = False) -> list[float]:
    if (not isinstance(v, list) or not 1 <= len(v) <= most
            or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
            or len(set(v)) != len(v) or (ascending and any(b <= a for a, b in zip(v, v[1:], strict=False)))):
        raise InvalidInput(f"{field}: 1 to {most} distinct finite numbers" + (", ascending" if ascending else ""),
                           details={"field": field})
    return [float(x) for x in v]


def _texts(v: Any, field: str, most: int) -> list[str]:
    if (not isinstance(v, list) or not 1 <= len(v) <= most or len(set(v)) != len(v)
            or not all(isinstance(x, str) and 1 <= len(x) <= 100 for x in v)):
        raise InvalidInput(f"{field}: 1 to {most} distinct short texts", details={"field": field})
    return list(v)


def _words(v: Any, field: str) -> list[str]:
    if not isinstance(v, list) or not 1 <= len(v) <= 100 or not all(isinstance(x, str) and _WORD.match(x) for x in v):
        raise InvalidInput(f"{field}: 1 to 100 names", details={"field": field})
    return list(dict.fromkeys(v))


def _answer(kind: str, claims: dict[str, Any], claim: Any, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "unknown"
    if kind == "one_of":
        return "yes" if str(value) == claim else "no"
    v = float(value)
    if kind == "at_least":
        return "yes" if v >= claim else "no"
    if kind == "at_most":
        return "yes" if v <= claim else "no"
    edges, labels = claims["edges"], claims["labels"]
    return labels[sum(1 for e in edges if v >= e)]


class Verification:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any], library: FeatureLibrary,
                 engine: FeatureEngine) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self._library = library
        self._engine = engine
        self._cache: dict[str, VerificationProduct] = {}

    def define(self, principal: Principal, d: dict[str, Any]) -> dict[str, Any]:
        """A steward of every dataset the feature reads defines the product (the next version of its name)."""
        require_role(principal, Role.STEWARD)
        if not isinstance(d, dict):
            raise InvalidInput("a verification product is a mapping", details={"field": "definition"})
        known = {"name", "description", "feature", "kind", "thresholds", "values", "edges", "labels", "tenants",
                 "purposes", "max_distinct_claims", "period"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(unknown)[:120]}", details={"field": unknown[0]})
        name, kind = d.get("name"), d.get("kind")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput("name: lower-case letters, digits and _", details={"field": "name"})
        if kind not in KINDS:
            raise InvalidInput(f"kind: one of {', '.join(KINDS)}", details={"field": "kind"})
        feature = self._library.resolve(d.get("feature")) if isinstance(d.get("feature"), str) and "@" in d[
            "feature"] else None
        if feature is None:
            raise InvalidInput("feature: the library feature (name@version) the claim is about",
                               details={"field": "feature"})
        if (kind == "one_of") != (feature.kind == "categorical"):
            raise InvalidInput(f"{kind} needs a {'categorical' if kind == 'one_of' else 'numeric'} feature; "
                               f"{feature.ref} is {feature.kind}", details={"field": "kind"})
        if kind in ("at_least", "at_most"):
            claims: dict[str, Any] = {"thresholds": _numbers(d.get("thresholds"), "thresholds", 20)}
        elif kind == "one_of":
            claims = {"values": _texts(d.get("values"), "values", 200)}
        else:
            edges = _numbers(d.get("edges"), "edges", 20, ascending=True)
            labels = _texts(d.get("labels"), "labels", 21)
            if len(labels) != len(edges) + 1:
                raise InvalidInput("labels: one more than the edges (a label per band)", details={"field": "labels"})
            claims = {"edges": edges, "labels": labels}
        extra = sorted({"thresholds", "values", "edges", "labels"} & set(d) - set(claims))
        if extra:
            raise InvalidInput(f"{extra[0]} does not go with kind {kind}", details={"field": extra[0]})
        tenants, purposes = _words(d.get("tenants"), "tenants"), _words(d.get("purposes"), "purposes")
        most = d.get("max_distinct_claims", 1)
        if isinstance(most, bool) or not isinstance(most, int) or not 1 <= most <= 20:
            raise InvalidInput("max_distinct_claims: 1 to 20", details={"field": "max_distinct_claims"})
        period = d.get("period", "month")
        if period not in PERIODS:
            raise InvalidInput(f"period: one of {', '.join(PERIODS)}", details={"field": "period"})
        description = d.get("description") or ""
        if not isinstance(description, str) or len(description) > 2000:
            raise InvalidInput("description: at most 2000 characters", details={"field": "description"})
        with self.ctx.db.transaction() as s:
            missing = [x for x in feature.datasets if x not in stewarded_by(s, principal.name)]
            if missing:
                raise Forbidden(f"{principal.name} does not steward {', '.join(missing)}: a verification product is "
                                "defined by a steward of every dataset its feature reads", details={"datasets": missing})
            version = (s.execute(select(func.max(VerificationProduct.version)).where(
                VerificationProduct.name == name)).scalar() or 0) + 1
            row = VerificationProduct(name=name, version=version, description=description, feature=feature.ref,
                                      kind=kind, claims=claims, datasets=list(feature.datasets),
                                      allowed_tenants=tenants, allowed_purposes=purposes, max_distinct_claims=most,
                                      period=period, published_by=principal.name)
            s.add(row)
            s.flush()
            out = product_dict(row)
            self.ctx.audit.append(s, principal.actor, "verification.defined", "verification", out["ref"],
                                  {k: v for k, v in out.items() if k not in ("created_at", "description")})
            return out

    def _row(self, s: Any, ref: Any) -> VerificationProduct:
        name, version = parse_ref(ref, "product")
        q = select(VerificationProduct).where(VerificationProduct.name == name)
        q = q.where(VerificationProduct.version == version) if version is not None else q.order_by(
            VerificationProduct.version.desc()).limit(1)
        row = s.execute(q).scalars().first()
        if row is None:
            raise NotFound(f"verification product {str(ref)[:80]!r} does not exist")
        return row

    def _visible(self, principal: Principal, p: VerificationProduct) -> bool:
        return principal.role is not Role.ENTERPRISE or principal.tenant in p.allowed_tenants

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            rows = s.execute(select(VerificationProduct).order_by(VerificationProduct.name,
                                                                  VerificationProduct.version)).scalars().all()
            return [product_dict(p) for p in rows if self._visible(principal, p)]

    def show(self, principal: Principal, ref: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            p = self._row(s, ref)
            if not self._visible(principal, p):
                raise NotFound(f"verification product {str(ref)[:80]!r} does not exist")
            return product_dict(p)

    def _product(self, principal: Principal, ref: Any, purpose: Any) -> VerificationProduct:
        require_role(principal, Role.ENTERPRISE)
        if not isinstance(purpose, str) or not 1 <= len(purpose) <= 64:
            raise InvalidInput("purpose: what the answer is for (one of the product's purposes)",
                               details={"field": "purpose"})
        p = self._cache.get(ref) if isinstance(ref, str) else None
        if p is None:
            try:
                name, version = parse_ref(ref, "product")
                with self.ctx.db.read() as s:
                    p = self._row(s, ref) if version is not None else None
            except (InvalidInput, NotFound):
                p = None
            if p is not None:
                self._cache[ref] = p  # a product never changes once defined
        if p is None or principal.tenant not in p.allowed_tenants:
            self.ctx.record(principal, "verification.refused", "verification", str(ref)[:80],
                            {"rule": "not_in_catalog", "purpose": purpose})
            raise NotFound(f"verification product {str(ref)[:80]!r} does not exist (name@version)")
        if purpose not in p.allowed_purposes:
            self.ctx.record(principal, "verification.refused", "verification", str(ref)[:80],
                            {"rule": "purpose", "purpose": purpose})
            raise AccessRefused(f"{p.name}@{p.version} may be used for {', '.join(p.allowed_purposes)}, not {purpose}",
                                details={"rule": "purpose_allowed"})
        check_subject_results(self._manifests, p.datasets, principal.tenant, purpose)
        return p

    @staticmethod
    def _claim(p: VerificationProduct, claim: Any) -> tuple[Any, str]:
        """The product's own claim the request names, and its key ("" for bands)."""
        if p.kind == "bands":
            if claim not in (None, ""):
                raise InvalidInput("a banded product takes no claim: its bands are fixed", details={"field": "claim"})
            return None, ""
        if p.kind == "one_of":
            if claim not in p.claims["values"]:
                raise InvalidInput(f"claim: one of the product's values ({', '.join(p.claims['values'][:20])})",
                                   details={"field": "claim"})
            return claim, str(claim)
        try:
            value = float(claim)
        except (TypeError, ValueError):
            value = math.nan
        for t in p.claims["thresholds"]:
            if t == value:
                return t, repr(t)
        raise InvalidInput("claim: one of the product's thresholds (" + ", ".join(f"{t:g}" for t in
                                                                                  p.claims["thresholds"]) + ")",
                           details={"field": "claim"})

    def _policies(self, p: VerificationProduct) -> tuple[set[str], list[tuple[str, int]]]:
        policies = {d: self._manifests(d).build_policy() for d in p.datasets}
        return ({d for d, x in policies.items() if x.subject_results.authorisation_required},
                [(d, x.subject_results.max_subjects_per_day) for d, x in policies.items()])

    def verify(self, principal: Principal, ref: str, subject: str, purpose: str, claim: Any = None) -> dict[str, Any]:
        p = self._product(principal, ref, purpose)
        subject = check_subject_id(subject)
        value_claim, key = self._claim(p, claim)
        pref = f"{p.name}@{p.version}"
        required, limits = self._policies(p)
        now = utcnow()
        with self.ctx.db.read() as s:
            cover = covering(s, principal.tenant, purpose, required, [subject], now)
        seen = claims_so_far(self.ctx.db, principal.tenant, pref, [subject], period_start(p.period, now)).get(
            subject, set()) if subject in cover else set()
        result: dict[str, Any] = {"subject": subject, "claim": claim if p.kind != "bands" else None}
        versions: dict[str, int] = {}
        if subject not in cover:
            result.update(status="refused", reason=NOT_AUTHORISED)
        elif key not in seen and len(seen) >= p.max_distinct_claims:
            result.update(status="refused", reason=CLAIMS_LIMIT)
        else:
            feature = self._library.resolve(p.feature)
            columns, versions = self._engine.lookup([feature], [subject])
            value = columns[feature.name].to_pylist()[0]
            result.update(status="answered", answer=_answer(p.kind, p.claims, value_claim, value))
        run_id = "ver_" + secrets.token_hex(8)
        with self.ctx.db.transaction() as s:
            charge(s, limits, principal.tenant, 1, now)
            if result["status"] == "answered" and subject not in covering(s, principal.tenant, purpose, required,
                                                                          [subject], now):
                result = {"subject": subject, "claim": result["claim"], "status": "refused", "reason": NOT_AUTHORISED}
            answered = result["status"] == "answered"
            auths = ",".join(cover.get(subject, [])) if answered else ""
            digest = hashlib.sha256(json.dumps(result, sort_keys=True).encode()).hexdigest()
            record_run(s, self.ctx.audit, principal.actor, "verification.answered", run_id,
                       {"product": pref, "purpose": purpose, "claim": key, "versions": versions,
                        "result_sha256": digest},
                       Rows([subject], [key], ["answered" if answered else "refused"], [auths]), flow="verification",
                       tenant=principal.tenant, purpose=purpose, product_kind="verification", product=pref, now=now)
        return {"run_id": run_id, "product": pref, "purpose": purpose, "versions": versions, **result,
                **({"authorisations": cover[subject]} if result["status"] == "answered" else {})}
