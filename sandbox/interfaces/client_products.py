"""The clients' methods for models and verification as products (mixed into :mod:`sandbox.interfaces.client`).

:class:`ProductsHttp` (over the API) and :class:`ProductsLocal` (over the facade in this process)
have the same methods, so the CLI, notebooks and the demo work the same either way::

    c.publish_feature({"name": "avg_vat", "kind": "numeric", "sql": "SELECT … GROUP BY t.uscc"})
    m = c.propose_model(export_id, name="default_risk", tenants=["bank_a"], purposes=["credit_decision"])
    c.approve_model("default_risk@1")                   # a steward: the terms it was shown
    c.authorize(subject, "bank_a", "credit_decision", ["tax_payments"], "2027-12-31", consent_sha256)
    c.score("default_risk@1", [subject], "credit_decision", inputs={subject: {"avg_loan": 300}})
    c.verify("vat_2023_at_least@1", subject, "credit_decision", claim=100000)
    c.subject_activity(subject)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

TYPE_CHECKING = False  # typing costs a few ms of every quick `twh` command
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ProductsHttp", "ProductsLocal", "consent_sha256"]


def consent_sha256(document: str | Path | bytes) -> str:
    """The SHA-256 of a consent document (a path or its bytes): what an authorisation records."""
    data = document if isinstance(document, bytes) else Path(document).read_bytes()
    return hashlib.sha256(data).hexdigest()


def _q(ref: str) -> str:
    return quote(str(ref), safe="@")


def _model_body(export_id: str, name: str, tenants: Sequence[str], purposes: Sequence[str], **terms: Any) -> dict:
    return {"export_id": export_id, "name": name, "tenants": list(tenants), "purposes": list(purposes),
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in terms.items()}}


class ProductsHttp:
    _call: Any
    _all: Any

    # the feature library
    def publish_feature(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/features", json=dict(definition))

    def list_features(self) -> list[dict[str, Any]]:
        return self._all("/v1/features")

    def show_feature(self, ref: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/features/{_q(ref)}")

    # the model catalog
    def propose_model(self, export_id: str, *, name: str, tenants: Sequence[str], purposes: Sequence[str],
                      **terms: Any) -> dict[str, Any]:
        return self._call("POST", "/v1/models", json=_model_body(export_id, name, tenants, purposes, **terms))

    def approve_model(self, ref: str, terms_sha256: str | None = None) -> dict[str, Any]:
        digest = terms_sha256 or self.show_model(ref)["terms_sha256"]
        return self._call("POST", f"/v1/models/{_q(ref)}/approve", json={"terms_sha256": digest})

    def list_models(self) -> list[dict[str, Any]]:
        return self._all("/v1/models")

    def show_model(self, ref: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/models/{_q(ref)}")

    def score(self, model: str, subjects: Sequence[str], purpose: str,
              inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        body = {"subjects": list(subjects), "purpose": purpose, **({"inputs": dict(inputs)} if inputs else {})}
        return self._call("POST", f"/v1/models/{_q(model)}/score", json=body)

    def score_batch(self, model: str, subjects: Sequence[str], purpose: str,
                    inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        body = {"subjects": list(subjects), "purpose": purpose, **({"inputs": dict(inputs)} if inputs else {})}
        return self._call("POST", f"/v1/models/{_q(model)}/batch", json=body)

    # verification products
    def define_verification(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return self._call("POST", "/v1/verifications", json=dict(definition))

    def list_verifications(self) -> list[dict[str, Any]]:
        return self._all("/v1/verifications")

    def show_verification(self, ref: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/verifications/{_q(ref)}")

    def verify(self, product: str, subject: str, purpose: str, claim: Any = None) -> dict[str, Any]:
        body = {"subject": subject, "purpose": purpose, **({"claim": claim} if claim is not None else {})}
        return self._call("POST", f"/v1/verifications/{_q(product)}/verify", json=body)

    # authorisations and the subject's view
    def authorize(self, subject: str, tenant: str, purpose: str, datasets: Sequence[str], valid_until: str,
                  consent_sha256: str, valid_from: str | None = None) -> dict[str, Any]:
        body = {"subject": subject, "tenant": tenant, "purpose": purpose, "datasets": list(datasets),
                "valid_until": valid_until, "consent_sha256": consent_sha256,
                **({"valid_from": valid_from} if valid_from else {})}
        return self._call("POST", "/v1/authorisations", json=body)

    def import_authorisations(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/v1/authorisations/import", json={"rows": [dict(r) for r in rows]})

    def list_authorisations(self, *, subject: str | None = None, tenant: str | None = None,
                            active: bool = False) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("subject", subject), ("tenant", tenant)) if v}
        return self._all("/v1/authorisations", **params, **({"active": "true"} if active else {}))

    def get_authorisation(self, auth_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/authorisations/{_q(auth_id)}")

    def revoke_authorisation(self, auth_id: str) -> dict[str, Any]:
        return self._call("DELETE", f"/v1/authorisations/{_q(auth_id)}")

    def subject_activity(self, subject: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return self._call("GET", f"/v1/subjects/{_q(subject)}/activity", params={"offset": offset, "limit": limit})


class ProductsLocal:
    wh: Any
    principal: Any

    def publish_feature(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return self.wh.products.features.publish(self.principal, dict(definition))

    def list_features(self) -> list[dict[str, Any]]:
        return self.wh.products.features.list(self.principal)

    def show_feature(self, ref: str) -> dict[str, Any]:
        return self.wh.products.features.show(self.principal, ref)

    def propose_model(self, export_id: str, *, name: str, tenants: Sequence[str], purposes: Sequence[str],
                      **terms: Any) -> dict[str, Any]:
        return self.wh.products.models.propose(self.principal, export_id, name=name, tenants=list(tenants),
                                               purposes=list(purposes), **terms)

    def approve_model(self, ref: str, terms_sha256: str | None = None) -> dict[str, Any]:
        digest = terms_sha256 or self.show_model(ref)["terms_sha256"]
        return self.wh.products.models.approve(self.principal, ref, digest)

    def list_models(self) -> list[dict[str, Any]]:
        return self.wh.products.models.list(self.principal)

    def show_model(self, ref: str) -> dict[str, Any]:
        return self.wh.products.models.show(self.principal, ref)

    def score(self, model: str, subjects: Sequence[str], purpose: str,
              inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        return self.wh.products.inference.score(self.principal, model, list(subjects), purpose, inputs)

    def score_batch(self, model: str, subjects: Sequence[str], purpose: str,
                    inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        return self.wh.products.inference.submit_batch(self.principal, model, list(subjects), purpose, inputs)

    def define_verification(self, definition: Mapping[str, Any]) -> dict[str, Any]:
        return self.wh.products.verification.define(self.principal, dict(definition))

    def list_verifications(self) -> list[dict[str, Any]]:
        return self.wh.products.verification.list(self.principal)

    def show_verification(self, ref: str) -> dict[str, Any]:
        return self.wh.products.verification.show(self.principal, ref)

    def verify(self, product: str, subject: str, purpose: str, claim: Any = None) -> dict[str, Any]:
        return self.wh.products.verification.verify(self.principal, product, subject, purpose, claim)

    def authorize(self, subject: str, tenant: str, purpose: str, datasets: Sequence[str], valid_until: str,
                  consent_sha256: str, valid_from: str | None = None) -> dict[str, Any]:
        return self.wh.authorisations.grant(self.principal, subject=subject, tenant=tenant, purpose=purpose,
                                            datasets=list(datasets), valid_until=valid_until,
                                            consent_sha256=consent_sha256, valid_from=valid_from)

    def import_authorisations(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return self.wh.authorisations.grant_many(self.principal, [dict(r) for r in rows])

    def list_authorisations(self, *, subject: str | None = None, tenant: str | None = None,
                            active: bool = False) -> list[dict[str, Any]]:
        return self.wh.authorisations.list(self.principal, subject=subject, tenant=tenant, active=active)

    def get_authorisation(self, auth_id: str) -> dict[str, Any]:
        return self.wh.authorisations.get(self.principal, auth_id)

    def revoke_authorisation(self, auth_id: str) -> dict[str, Any]:
        return self.wh.authorisations.revoke(self.principal, auth_id)

    def subject_activity(self, subject: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        return self.wh.products.activity.of(self.principal, subject, offset=offset, limit=limit)
