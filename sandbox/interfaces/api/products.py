"""The API of models and verification as products: the feature library, the model catalog, inference,
verification products, authorisations and the subject's view (``sandbox.products``, ``sandbox.access``).

Mounted by :func:`sandbox.interfaces.api.app.create_app` (``products.mount(app, wh, Who)``) with the
app's own authentication dependency, so every route authenticates and records ``token.used`` like
the others; the same conventions hold (summary, description, response model with an example,
error answers, paged lists). This module does not use postponed annotations: the routes are
closures whose annotations name the dependency handed in.
"""

from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Query
from pydantic import BaseModel, ConfigDict, Field

from .schema import SHA, JobOut, Out, PageOut, errors

__all__ = ["mount"]

Offset = Annotated[int, Query(ge=0, le=1_000_000_000, description="index of the first item")]
Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
SUBJECT = "91500103141733208J"


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureIn(In):
    name: str = Field(max_length=64, examples=["avg_vat"])
    kind: Literal["numeric", "categorical"]
    sql: str = Field(max_length=20_000)
    description: str = Field(default="", max_length=2000)
    labels: list[str] = Field(default_factory=list, max_length=20)


class ModelIn(In):
    export_id: str = Field(max_length=40)
    name: str = Field(max_length=64)
    tenants: list[str] = Field(max_length=100)
    purposes: list[str] = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    tenant_inputs: list[str] = Field(default_factory=list, max_length=64)
    reason_codes: int = Field(default=0, ge=0, le=10)
    score_digits: int = Field(default=2, ge=0, le=6)
    max_distinct_inputs: int = Field(default=1, ge=1, le=100)


class ApproveIn(In):
    terms_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="the terms you reviewed (the model's terms_sha256)")


class ScoreIn(In):
    subjects: list[str] = Field(min_length=1, max_length=1_000_000)
    purpose: str = Field(min_length=1, max_length=64)
    inputs: dict[str, dict[str, float | str]] | None = Field(
        default=None, description="per subject, the model's tenant inputs (your own columns)")


class AuthorisationIn(In):
    subject: str = Field(max_length=128)
    tenant: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    datasets: list[str] = Field(max_length=16)
    valid_until: str = Field(max_length=40, description="a date (YYYY-MM-DD, the end of that day UTC) or ISO time")
    valid_from: str | None = Field(default=None, max_length=40)
    consent_sha256: str = Field(max_length=64, description="SHA-256 of the signed consent document")


class ImportIn(In):
    rows: list[AuthorisationIn] = Field(min_length=1, max_length=1_000_000)


class VerificationIn(In):
    name: str = Field(max_length=64)
    feature: str = Field(max_length=80)
    kind: Literal["at_least", "at_most", "one_of", "bands"]
    tenants: list[str] = Field(max_length=100)
    purposes: list[str] = Field(max_length=100)
    description: str = Field(default="", max_length=2000)
    thresholds: list[float] | None = Field(default=None, max_length=20)
    values: list[str] | None = Field(default=None, max_length=200)
    edges: list[float] | None = Field(default=None, max_length=20)
    labels: list[str] | None = Field(default=None, max_length=21)
    max_distinct_claims: int = Field(default=1, ge=1, le=20)
    period: Literal["day", "month", "year"] = "month"


class VerifyIn(In):
    subject: str = Field(max_length=128)
    purpose: str = Field(min_length=1, max_length=64)
    claim: float | str | None = Field(default=None, description="one of the product's thresholds or values; none "
                                                                "for a banded product")


class FeatureOut(Out):
    name: str
    version: int
    ref: str
    kind: str
    sql: str
    datasets: list[str]
    sha256: str


class FeaturePage(PageOut):
    items: list[FeatureOut]


class ModelOut(Out):
    name: str
    version: int
    ref: str
    state: str
    features: list[str]
    allowed_tenants: list[str]
    allowed_purposes: list[str]
    terms_sha256: str


class ModelPage(PageOut):
    items: list[ModelOut]


class ScoreOut(Out):
    run_id: str
    model: str
    purpose: str
    results: list[dict[str, Any]] = Field(description="per subject: status scored (score, reasons) or refused "
                                                      "(reason 'not authorised'); never a feature")


class AuthorisationOut(Out):
    id: str
    subject: str
    tenant: str
    purpose: str
    datasets: list[str]
    valid_until: str
    consent_sha256: str
    state: str


class AuthorisationPage(PageOut):
    items: list[AuthorisationOut]


class ImportOut(Out):
    import_id: str
    count: int
    rows_sha256: str


class VerificationOut(Out):
    name: str
    version: int
    ref: str
    feature: str
    kind: str
    allowed_tenants: list[str]
    allowed_purposes: list[str]
    max_distinct_claims: int


class VerificationPage(PageOut):
    items: list[VerificationOut]


class AnswerOut(Out):
    run_id: str
    product: str
    subject: str
    status: str = Field(description="answered | refused")
    answer: str | None = Field(default=None, description="yes | no | unknown, or a band's label")


class ActivityOut(PageOut):
    subject: str
    items: list[dict[str, Any]] = Field(description="who asked about the subject: tenant, actor, purpose, product, "
                                                    "outcome, authorisations, audit record, verified")
    authorisations: list[dict[str, Any]]


FEATURE = {"name": "avg_vat", "version": 1, "ref": "avg_vat@1", "kind": "numeric", "description": "mean monthly VAT",
           "labels": ["tax"], "privacy_unit": "uscc",
           "sql": "SELECT AVG(t.vat_paid) AS avg_vat FROM tax_payments t GROUP BY t.uscc", "datasets": ["tax_payments"],
           "columns_read": {"tax_payments": ["uscc", "vat_paid"]}, "versions_at_publish": {"tax_payments": 1},
           "sha256": SHA, "published_by": "tax_steward", "created_at": "2026-12-06T10:00:00+00:00"}
MODEL = {"name": "default_risk", "version": 1, "ref": "default_risk@1", "state": "published",
         "export_id": "exp_0c058c737c707f52", "job_id": "job_bccf876c57938d4d", "owner_tenant": "bank_a",
         "features": ["avg_vat@1", "industry@1"], "tenant_inputs": ["avg_loan"], "allowed_tenants": ["bank_a"],
         "allowed_purposes": ["credit_decision"], "reason_codes": 2, "score_digits": 2, "certified_epsilon": "0.994",
         "terms_sha256": SHA, "approvals": {"tax_payments": "tax_steward"}, "needs_approval_from": []}
SCORE = {"run_id": "inf_8d1f6f1f50f2fc9b", "model": "default_risk@1", "purpose": "credit_decision",
         "versions": {"tax_payments": 1}, "results": [
             {"subject": SUBJECT, "status": "scored", "score": 0.07, "reasons": ["zero_tax_share"],
              "authorisations": ["auth_9ddc4a54551f0f6c"]},
             {"subject": "91500103MA6MB9HB06", "status": "refused", "reason": "not authorised"}]}
AUTH = {"id": "auth_9ddc4a54551f0f6c", "subject": SUBJECT, "tenant": "bank_a", "purpose": "credit_decision",
        "datasets": ["tax_payments"], "valid_from": "2026-12-06T10:00:00+00:00",
        "valid_until": "2028-01-01T00:00:00+00:00", "consent_sha256": SHA, "registered_by": "tax_steward",
        "state": "active"}
PRODUCT = {"name": "vat_2023_at_least", "version": 1, "ref": "vat_2023_at_least@1", "feature": "vat_2023@1",
           "kind": "at_least", "thresholds": [100000.0, 500000.0], "allowed_tenants": ["bank_a"],
           "allowed_purposes": ["credit_decision"], "max_distinct_claims": 1, "period": "month"}
ANSWER = {"run_id": "ver_51dad167e8ed9b20", "product": "vat_2023_at_least@1", "purpose": "credit_decision",
          "subject": SUBJECT, "claim": 100000, "status": "answered", "answer": "yes"}
USE = {"when": "2026-12-06T10:00:00", "tenant": "bank_a", "actor": "analyst", "purpose": "credit_decision",
       "product_kind": "verification", "product": "vat_2023_at_least@1", "outcome": "answered",
       "authorisations": ["auth_9ddc4a54551f0f6c"], "run_id": "ver_51dad167e8ed9b20", "audit_seq": 47,
       "verified": True}
JOB = {"id": "job_bccf876c57938d4d", "name": "score-default_risk-v1", "tenant": "bank_a", "submitted_by": "analyst",
       "purpose": "credit_decision", "datasets": ["tax_payments"], "state": "awaiting_review", "reason": "…",
       "code_sha256": SHA, "created_at": "2026-12-06T10:00:00", "updated_at": "2026-12-06T10:00:00"}


def _ok(example: Any, status: int = 200) -> dict[int | str, dict[str, Any]]:
    return {status: {"content": {"application/json": {"example": example}}}}


def _page(items: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    return {"items": items[offset:offset + limit], "total": len(items), "offset": offset, "limit": limit}


def _body(summary: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"example": {"summary": summary, "value": value}}


def mount(app: FastAPI, wh: Any, Who: Any) -> None:  # noqa: N803 - the app's authenticated principal type
    """Add the products routes to ``app`` (the facade ``wh``; ``Who`` the authenticated principal)."""
    p = wh.products

    # -- the feature library -----------------------------------------------------------------------
    @app.get("/v1/features", tags=["products"], summary="List library features", response_model=FeaturePage,
             responses={**_ok(_page([FEATURE], 0, 100)), **errors()})
    def list_features(who: Who, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Every published feature definition (every version): SQL over declared columns, no data (paged)."""
        return _page(p.features.list(who), offset, limit)

    @app.post("/v1/features", tags=["products"], status_code=201, summary="Publish a library feature",
              response_model=FeatureOut, responses={**_ok(FEATURE, 201), **errors(
                  "forbidden", "not_found", "query_refused")})
    def publish_feature(body: Annotated[FeatureIn, Body(openapi_examples=_body("mean monthly VAT", {
            "name": "avg_vat", "kind": "numeric", "sql": FEATURE["sql"], "labels": ["tax"]}))], who: Who) -> dict:
        """A steward of every dataset the SQL reads publishes the next version of a feature; the training
        planner checks it (declared columns, unit-only joins, one column named as the feature, GROUP BY the
        privacy unit)."""
        return p.features.publish(who, body.model_dump())

    @app.get("/v1/features/{ref}", tags=["products"], summary="Show a library feature", response_model=FeatureOut,
             responses={**_ok(FEATURE), **errors("not_found")})
    def show_feature(ref: str, who: Who) -> dict[str, Any]:
        """A definition (``name`` for the latest, ``name@version``) with its lineage: datasets, columns,
        versions at publication and now, and the models and training jobs that use it."""
        return p.features.show(who, ref)

    # -- the model catalog ---------------------------------------------------------------------------
    @app.get("/v1/models", tags=["products"], summary="List catalog models", response_model=ModelPage,
             responses={**_ok(_page([MODEL], 0, 100)), **errors()})
    def list_models(who: Who, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Catalog models the caller may see: published ones for its tenant, its own proposals, its datasets'
        (stewards), all (auditors) — paged."""
        return _page(p.models.list(who), offset, limit)

    @app.post("/v1/models", tags=["products"], status_code=201, summary="Propose a catalog model",
              response_model=ModelOut, responses={**_ok(MODEL, 201), **errors(
                  "forbidden", "not_found", "conflict")})
    def propose_model(body: Annotated[ModelIn, Body(openapi_examples=_body("publish the bank's default model", {
            "export_id": "exp_0c058c737c707f52", "name": "default_risk", "tenants": ["bank_a"],
            "purposes": ["credit_decision"], "tenant_inputs": ["avg_loan"], "reason_codes": 2}))],
            who: Who) -> dict[str, Any]:
        """An approved training export (trained on library features) proposed as a catalog model, with its
        terms; a steward of every dataset the job read approves the terms before it is published."""
        return p.models.propose(who, body.export_id, **body.model_dump(exclude={"export_id"}))

    @app.get("/v1/models/{ref}", tags=["products"], summary="Show a catalog model", response_model=ModelOut,
             responses={**_ok(MODEL), **errors("not_found")})
    def show_model(ref: str, who: Who) -> dict[str, Any]:
        """A catalog model: state, terms and their hash, approvals, features, model card."""
        return p.models.show(who, ref)

    @app.post("/v1/models/{ref}/approve", tags=["products"], summary="Approve a catalog model's terms",
              response_model=ModelOut, responses={**_ok(MODEL), **errors("forbidden", "not_found", "conflict")})
    def approve_model(ref: str, body: Annotated[ApproveIn, Body(openapi_examples=_body(
            "the reviewed terms", {"terms_sha256": SHA}))], who: Who) -> dict[str, Any]:
        """A steward approves the exact terms (their hash) for its datasets; the last approval publishes."""
        return p.models.approve(who, ref, body.terms_sha256)

    @app.post("/v1/models/{ref}/score", tags=["products"], summary="Score subjects now (a decision flow)",
              response_model=ScoreOut, responses={**_ok(SCORE), **errors(
                  "forbidden", "not_found", "access_refused", "refused", "quota_exceeded")})
    def score(ref: str, body: Annotated[ScoreIn, Body(openapi_examples=_body("two applicants", {
            "subjects": [SUBJECT, "91500103MA6MB9HB06"], "purpose": "credit_decision",
            "inputs": {SUBJECT: {"avg_loan": 300}, "91500103MA6MB9HB06": {"avg_loan": 120}}}))],
            who: Who) -> dict[str, Any]:
        """Up to 100 subjects scored by a published catalog model; a subject without a valid authorisation of
        this tenant and purpose is refused ('not authorised'), per row. Only scores and declared reason codes
        come back; every subject is audited."""
        return p.inference.score(who, ref, body.subjects, body.purpose, body.inputs)

    @app.post("/v1/models/{ref}/batch", tags=["products"], status_code=201, summary="Score subjects as a batch job",
              response_model=JobOut, responses={**_ok(JOB, 201), **errors(
                  "forbidden", "not_found", "access_refused", "refused", "quota_exceeded")})
    def batch(ref: str, body: Annotated[ScoreIn, Body(openapi_examples=_body("a batch", {
            "subjects": [SUBJECT], "purpose": "credit_decision", "inputs": {SUBJECT: {"avg_loan": 300}}}))],
            who: Who) -> dict[str, Any]:
        """Many subjects scored as a job of kind inference: its export (scores.csv) waits for the stewards
        where the policies require approval, then downloads like any export."""
        return p.inference.submit_batch(who, ref, body.subjects, body.purpose, body.inputs)

    # -- verification products -----------------------------------------------------------------------
    @app.get("/v1/verifications", tags=["products"], summary="List verification products",
             response_model=VerificationPage, responses={**_ok(_page([PRODUCT], 0, 100)), **errors()})
    def list_products(who: Who, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Verification products (an enterprise sees those its tenant may use), paged."""
        return _page(p.verification.list(who), offset, limit)

    @app.post("/v1/verifications", tags=["products"], status_code=201, summary="Define a verification product",
              response_model=VerificationOut, responses={**_ok(PRODUCT, 201), **errors("forbidden", "not_found")})
    def define_product(body: Annotated[VerificationIn, Body(openapi_examples=_body("VAT paid in 2023 ≥ a threshold", {
            "name": "vat_2023_at_least", "feature": "vat_2023@1", "kind": "at_least",
            "thresholds": [100000, 500000], "tenants": ["bank_a"], "purposes": ["credit_decision"]}))],
            who: Who) -> dict[str, Any]:
        """A steward of every dataset the feature reads fixes the claim: thresholds, values or bands, who may
        ask, and how many distinct claims per subject per period."""
        return p.verification.define(who, body.model_dump(exclude_none=True))

    @app.get("/v1/verifications/{ref}", tags=["products"], summary="Show a verification product",
             response_model=VerificationOut, responses={**_ok(PRODUCT), **errors("not_found")})
    def show_product(ref: str, who: Who) -> dict[str, Any]:
        """A verification product's fixed claims and limits."""
        return p.verification.show(who, ref)

    @app.post("/v1/verifications/{ref}/verify", tags=["products"], summary="Verify a claim about one subject",
              response_model=AnswerOut, responses={**_ok(ANSWER), **errors(
                  "forbidden", "not_found", "access_refused", "refused", "quota_exceeded")})
    def verify(ref: str, body: Annotated[VerifyIn, Body(openapi_examples=_body("VAT 2023 ≥ 100000?", {
            "subject": SUBJECT, "purpose": "credit_decision", "claim": 100000}))], who: Who) -> dict[str, Any]:
        """yes / no / unknown (or a band) about an authorised subject; 'not authorised' otherwise. A claim
        must be one of the product's; distinct claims per subject per period are limited."""
        return p.verification.verify(who, ref, body.subject, body.purpose, body.claim)

    # -- authorisations --------------------------------------------------------------------------------
    @app.get("/v1/authorisations", tags=["authorisations"], summary="List authorisations",
             response_model=AuthorisationPage, responses={**_ok(_page([AUTH], 0, 100)), **errors()})
    def list_authorisations(who: Who, subject: Annotated[str | None, Query(max_length=128)] = None,
                            tenant: Annotated[str | None, Query(max_length=64)] = None, active: bool = False,
                            offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Authorisations the caller may see (a subject its own, a tenant those it received, stewards their
        datasets', auditors all), newest first, paged."""
        return _page(wh.authorisations.list(who, subject=subject, tenant=tenant, active=active), offset, limit)

    @app.post("/v1/authorisations", tags=["authorisations"], status_code=201, summary="Register an authorisation",
              response_model=AuthorisationOut, responses={**_ok(AUTH, 201), **errors("forbidden", "not_found")})
    def grant(body: Annotated[AuthorisationIn, Body(openapi_examples=_body("an applicant authorises the bank", {
            "subject": SUBJECT, "tenant": "bank_a", "purpose": "credit_decision", "datasets": ["tax_payments"],
            "valid_until": "2027-12-31", "consent_sha256": SHA}))], who: Who) -> dict[str, Any]:
        """The subject's own account, or a steward of every dataset named, registers a subject's consent (with
        the SHA-256 of the consent document); audited."""
        return wh.authorisations.grant(who, **body.model_dump())

    @app.post("/v1/authorisations/import", tags=["authorisations"], status_code=201,
              summary="Import authorisations in bulk", response_model=ImportOut,
              responses={**_ok({"import_id": "aimp_48a5f2faa4b6dafc", "count": 20, "rows_sha256": SHA}, 201),
                         **errors("forbidden", "not_found")})
    def grant_many(body: Annotated[ImportIn, Body(openapi_examples=_body("consents collected by a steward", {
            "rows": [{k: AUTH[k] for k in ("subject", "tenant", "purpose", "datasets", "consent_sha256")}
                     | {"valid_until": "2027-12-31"}]}))], who: Who) -> dict[str, Any]:
        """A steward's bulk import: all rows or none, one audit record binding their SHA-256."""
        return wh.authorisations.grant_many(who, [r.model_dump() for r in body.rows])

    @app.get("/v1/authorisations/{auth_id}", tags=["authorisations"], summary="Show an authorisation",
             response_model=AuthorisationOut, responses={**_ok(AUTH), **errors("not_found")})
    def show_authorisation(auth_id: str, who: Who) -> dict[str, Any]:
        """One authorisation, if the caller may see it (otherwise not found)."""
        return wh.authorisations.get(who, auth_id)

    @app.delete("/v1/authorisations/{auth_id}", tags=["authorisations"], summary="Revoke an authorisation",
                response_model=AuthorisationOut, responses={**_ok(AUTH | {"state": "revoked"}), **errors(
                    "forbidden", "not_found")})
    def revoke(auth_id: str, who: Who) -> dict[str, Any]:
        """The subject, or a steward of a dataset it names, revokes it; it covers nothing from now on."""
        return wh.authorisations.revoke(who, auth_id)

    @app.get("/v1/subjects/{subject}/activity", tags=["authorisations"], summary="A subject's access log",
             response_model=ActivityOut, responses={**_ok({"subject": SUBJECT, "items": [USE], "total": 1,
                                                             "offset": 0, "limit": 100, "authorisations": [AUTH]}),
                                                    **errors("not_found")})
    def activity(subject: str, who: Who, offset: Offset = 0, limit: Limit = 100) -> dict[str, Any]:
        """Who asked about the subject, when, for which purpose and product, under which authorisation, each
        row checked against its audit record: the subject's own account, auditors and admins (paged)."""
        return p.activity.of(who, subject, offset=offset, limit=limit)
