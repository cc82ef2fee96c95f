"""Inference (推理): a tenant's subjects scored by a catalog model, under each subject's authorisation.

    r = wh.products.inference.score(analyst, "default_risk@1", ["91500000MA5U000001"], "credit_decision",
                                    inputs={"91500000MA5U000001": {"avg_loan": 300}})   # a decision flow
    job = wh.products.inference.submit_batch(analyst, "default_risk@1", subjects, "credit_decision")

Both paths, in this order:

1. **the model** must be published in the catalog for the caller's tenant and purpose, and every
   dataset its features read must allow per-subject results to that tenant and purpose; anything
   else (unknown, only proposed, another tenant's, a training export) answers ``not_found``, audited;
2. **authorisations** (:func:`sandbox.access.authorisations.covering`): a subject is answered only
   under valid authorisations of this tenant and purpose naming every dataset whose policy requires
   it; every other subject is refused with the one reason ``not authorised`` — and never reaches
   the data, so a refused subject costs and looks the same whether or not it exists there;
3. a model with **tenant inputs** (the tenant's own columns) answers at most the model's number of
   distinct input vectors per subject, tenant and month (probing a subject's position on the
   model's surface with varied inputs);
4. **features** of the authorised subjects only (:class:`.runtime.FeatureEngine`), the declared
   encoding, the model (:class:`.runtime.Runtime`): scores rounded to the model's digits and, if
   the model declares them, reason codes (feature names) — never a feature value;
5. **one transaction**: the tenant's daily quota per dataset (every subject asked about counts),
   the authorisations checked again (one revoked meanwhile is refused), the audit record and one
   ``subject_uses`` row per subject (answered or refused). The batch path also writes a job
   (kind ``inference``) and its export (``scores.csv``), pending the stewards of every dataset
   read whose policy requires approval; the decision flow answers at once (no one reviews a
   decision in a decision flow: it is bounded by the quota and the authorisations).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from policies import check_access

from ..access.authorisations import covering
from ..access.users import check_subject_id
from ..auth import SYSTEM, Principal, Role
from ..catalog.db import Export, ExportFile, Job, utcnow
from ..catalog.states import ExportState, JobState
from ..context import Context, require_role
from ..errors import AccessRefused, InvalidInput, NotFound, Refused
from ..jobs.visible import job_dict
from ..release.exports import bundle_hash
from .models import LoadedModel, ModelCatalog
from .runtime import FeatureEngine, Runtime, encode
from .uses import NOT_AUTHORISED, Use, charge, claims_so_far, period_start, record

__all__ = ["MAX_BATCH", "MAX_SCORE", "Inference"]

#: subjects in one synchronous call (a decision flow)
MAX_SCORE = 100
MAX_BATCH = 1_000_000
INPUTS_LIMIT = "the model's limit of distinct inputs for this subject this month is reached"


def _results_sha256(results: Sequence[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(list(results), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class Inference:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any], models: ModelCatalog, engine: FeatureEngine,
                 runtime: Runtime) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self.models = models
        self.engine = engine
        self.runtime = runtime

    # -- checks ------------------------------------------------------------------------------------
    def _model(self, principal: Principal, ref: Any, purpose: Any) -> LoadedModel:
        require_role(principal, Role.ENTERPRISE)
        if not isinstance(purpose, str) or not 1 <= len(purpose) <= 64:
            raise InvalidInput("purpose: what the scores are for (one of the model's purposes)",
                               details={"field": "purpose"})
        try:
            model = self.models.load(ref)
        except InvalidInput:
            model = None
        if model is None or principal.tenant not in model.allowed_tenants:
            # a proposed model, another tenant's, a made-up name, a training export id: all alike
            self.ctx.record(principal, "inference.refused", "model", str(ref)[:80],
                            {"rule": "not_in_catalog", "purpose": purpose})
            raise NotFound(f"model {str(ref)[:80]!r} is not in the catalog (name@version of a published model)")
        if purpose not in model.allowed_purposes:
            self.ctx.record(principal, "inference.refused", "model", model.ref, {"rule": "purpose", "purpose": purpose})
            raise AccessRefused(f"{model.ref} may be used for {', '.join(model.allowed_purposes)}, not {purpose}",
                                details={"rule": "purpose_allowed"})
        for name in model.datasets:
            policy = self._manifests(name).build_policy()
            if not policy.subject_results.allowed:
                raise Refused(f"{name}: its policy does not allow per-subject results (subject_results.allowed)",
                              details={"rule": "subject_results", "dataset": name})
            decision = check_access(policy, principal.tenant, purpose)
            if not decision.allowed:
                raise AccessRefused(f"{name}: {decision.reason}", details={"rule": decision.rule, "dataset": name})
        return model

    def _policies(self, model: LoadedModel) -> tuple[set[str], list[tuple[str, int]], list[str]]:
        """Datasets an authorisation must name; daily limits; datasets whose stewards review batches."""
        required, limits, review = set(), [], []
        for name in model.datasets:
            p = self._manifests(name).build_policy()
            if p.subject_results.authorisation_required:
                required.add(name)
            limits.append((name, p.subject_results.max_subjects_per_day))
            if p.output.require_approval:
                review.append(name)
        return required, limits, review

    @staticmethod
    def _subjects(subjects: Any, most: int) -> list[str]:
        if not isinstance(subjects, list | tuple) or not 1 <= len(subjects) <= most:
            raise InvalidInput(f"subjects: 1 to {most} subject ids", details={"field": "subjects"})
        out = [check_subject_id(s, "subjects") for s in subjects]
        if len(set(out)) != len(out):
            raise InvalidInput("subjects: a subject is listed twice", details={"field": "subjects"})
        return out

    @staticmethod
    def _claims(model: LoadedModel, subjects: list[str], inputs: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The tenant's own inputs per subject, checked, and the claim each is (a digest, "" without)."""
        if not model.tenant_inputs:
            if inputs:
                raise InvalidInput(f"{model.ref} takes no tenant inputs", details={"field": "inputs"})
            return {}, {s: "" for s in subjects}
        if not isinstance(inputs, Mapping):
            raise InvalidInput(f"inputs: {model.ref} needs, per subject, {', '.join(model.tenant_inputs)}",
                               details={"field": "inputs"})
        cats = {f.name for f in model.cfg.categorical}
        got: dict[str, dict[str, Any]] = {}
        claims: dict[str, str] = {}
        for s in subjects:
            row = inputs.get(s)
            if not isinstance(row, Mapping) or set(row) != set(model.tenant_inputs):
                raise InvalidInput(f"inputs: subject {s} needs exactly {', '.join(model.tenant_inputs)}",
                                   details={"field": "inputs"})
            for col, v in row.items():
                ok = isinstance(v, str) and len(v) <= 100 if col in cats else (
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v))
                if not ok:
                    raise InvalidInput(f"inputs: {col} of {s} must be " + ("a short text" if col in cats else
                                                                           "a finite number"),
                                       details={"field": "inputs"})
            got[s] = dict(row)
            claims[s] = hashlib.sha256(json.dumps(row, sort_keys=True).encode()).hexdigest()[:32]
        return got, claims

    # -- the common core -------------------------------------------------------------------------------
    def _evaluate(self, principal: Principal, model: LoadedModel, purpose: str, subjects: list[str],
                  inputs: dict[str, dict[str, Any]], claims: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(subject -> result row, versions) before the transaction; only authorised subjects are computed."""
        required, _, _ = self._policies(model)
        now = utcnow()
        with self.ctx.db.read() as s:
            cover = covering(s, principal.tenant, purpose, required, subjects, now)
            seen = claims_so_far(s, principal.tenant, model.ref, list(cover), period_start("month", now)) \
                if model.tenant_inputs else {}
        rows: dict[str, dict[str, Any]] = {}
        ok: list[str] = []
        for subj in subjects:
            if subj not in cover:
                rows[subj] = {"subject": subj, "status": "refused", "reason": NOT_AUTHORISED}
            elif claims[subj] not in seen.get(subj, set()) and len(seen.get(subj, ())) >= model.max_distinct_inputs:
                rows[subj] = {"subject": subj, "status": "refused", "reason": INPUTS_LIMIT}
            else:
                ok.append(subj)
        versions: dict[str, int] = {}
        if ok:
            columns, versions = self.engine.compute(model.features, ok)
            for col in model.tenant_inputs:
                columns[col] = [inputs[subj][col] for subj in ok]
            x_num, x_cat = encode(columns, model.cfg)
            scores, reasons = self.runtime.score(model, x_num, x_cat)
            for i, subj in enumerate(ok):
                rows[subj] = {"subject": subj, "status": "scored", "score": scores[i],
                              **({"reasons": reasons[i]} if model.reason_codes else {}),
                              "authorisations": cover[subj]}
        return rows, versions

    def _commit(self, s: Any, principal: Principal, model: LoadedModel, purpose: str, subjects: list[str],
                rows: dict[str, dict[str, Any]], claims: dict[str, str], run_id: str, action: str,
                details: dict[str, Any], now: Any) -> list[dict[str, Any]]:
        required, limits, _ = self._policies(model)
        charge(s, limits, principal.tenant, len(subjects), now)
        scored = [subj for subj in subjects if rows[subj]["status"] == "scored"]
        still = covering(s, principal.tenant, purpose, required, scored, now) if scored else {}
        for subj in scored:
            if subj not in still:  # revoked (or expired) since the scores were computed: not released
                rows[subj] = {"subject": subj, "status": "refused", "reason": NOT_AUTHORISED}
        results = [rows[subj] for subj in subjects]
        uses = [Use(r["subject"], claims[r["subject"]], "answered" if r["status"] == "scored" else "refused",
                    ",".join(r.get("authorisations", ()))) for r in results]
        record(s, self.ctx.audit, principal.actor, action, "inference", run_id,
               {**details, "model": model.ref, "purpose": purpose, "results_sha256": _results_sha256(results)},
               uses, tenant=principal.tenant, purpose=purpose, product_kind="model", product=model.ref, now=now)
        return results

    # -- the decision flow ------------------------------------------------------------------------------
    def score(self, principal: Principal, model_ref: str, subjects: Sequence[str], purpose: str,
              inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Score up to :data:`MAX_SCORE` subjects now; refused subjects come back refused, per row."""
        model = self._model(principal, model_ref, purpose)
        subjects = self._subjects(subjects, MAX_SCORE)
        got, claims = self._claims(model, subjects, inputs)
        rows, versions = self._evaluate(principal, model, purpose, subjects, got, claims)
        run_id = "inf_" + secrets.token_hex(8)
        now = utcnow()
        with self.ctx.db.transaction() as s:
            results = self._commit(s, principal, model, purpose, subjects, rows, claims, run_id, "inference.scored",
                                   {"versions": versions, "flow": "decision"}, now)
        return {"run_id": run_id, "model": model.ref, "purpose": purpose, "versions": versions, "results": results}

    # -- the batch flow ---------------------------------------------------------------------------------
    def submit_batch(self, principal: Principal, model_ref: str, subjects: Sequence[str], purpose: str,
                     inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Score up to :data:`MAX_BATCH` subjects as a job (kind ``inference``): its export
        ``scores.csv`` waits for the stewards where the datasets' policies require approval."""
        model = self._model(principal, model_ref, purpose)
        subjects = self._subjects(subjects, MAX_BATCH)
        got, claims = self._claims(model, subjects, inputs)
        rows, versions = self._evaluate(principal, model, purpose, subjects, got, claims)
        _, _, review = self._policies(model)
        job_id = "job_" + secrets.token_hex(8)
        export_id = "exp_" + secrets.token_hex(8)
        now = utcnow()
        request = hashlib.sha256("\n".join([model.ref, purpose, *subjects]).encode()).hexdigest()
        target = JobState.AWAITING_APPROVAL if review else JobState.RELEASED
        with self.ctx.db.transaction() as s:
            spec = {"name": f"score-{model.ref.replace('@', '-v')}", "purpose": purpose,
                    "datasets": list(model.datasets), "entrypoint": "job.py"}
            job = Job(id=job_id, tenant=principal.tenant, submitted_by=principal.name, purpose=purpose,
                      datasets=list(model.datasets), pinned=versions, state=target.value,
                      reason=("waiting for the stewards of " + ", ".join(review)) if review else "no approval required",
                      code_sha256=request, spec=spec, kind="inference", review_required=bool(review),
                      created_at=now, updated_at=now)
            s.add(job)
            s.flush()
            self.ctx.audit.append(s, principal.actor, "job.submitted", "job", job_id,
                                  {"name": spec["name"], "purpose": purpose, "datasets": spec["datasets"],
                                   "code_sha256": request, "kind": "inference"})
            results = self._commit(s, principal, model, purpose, subjects, rows, claims, job_id, "inference.scored",
                                   {"versions": versions, "flow": "batch", "export_id": export_id}, now)
            data = _csv(results, model.reason_codes)
            digest = bundle_hash([("scores.csv", hashlib.sha256(data).hexdigest())])
            state = ExportState.PENDING if review else ExportState.APPROVED
            s.add(Export(id=export_id, job_id=job_id, tenant=principal.tenant, state=state.value, bundle_sha256=digest,
                         needs_approval_from=review, kind="outputs", created_at=now, updated_at=now))
            s.flush()
            s.add(ExportFile(export_id=export_id, name="scores.csv", sha256=hashlib.sha256(data).hexdigest(),
                             size=len(data), data=data))
            s.flush()
            self.ctx.audit.append(s, SYSTEM.actor, "export.requested", "export", export_id,
                                  {"job_id": job_id, "kind": "outputs", "bundle_sha256": digest,
                                   "needs_approval_from": review,
                                   "files": [["scores.csv", hashlib.sha256(data).hexdigest(), len(data)]],
                                   "state": state.value})
            return job_dict(job, principal, s.get(Export, export_id))


def _csv(results: Sequence[dict[str, Any]], reason_codes: int) -> bytes:
    """The batch's one file, written by this code (subject ids are checked: no formula can start one)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject", "status", "score", *[f"reason_{i + 1}" for i in range(reason_codes)], "note"])
    for r in results:
        reasons = list(r.get("reasons") or [])[:reason_codes]
        w.writerow([r["subject"], r["status"], "" if r.get("score") is None else repr(r["score"]),
                    *(reasons + [""] * (reason_codes - len(reasons))), r.get("reason", "")])
    return buf.getvalue().encode()
