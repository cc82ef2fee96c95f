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
   the authorisations checked again (one revoked meanwhile is refused), the audit record and the
   run's per-subject rows, answered or refused (:func:`.uses.record_run`). The batch path also writes a job
   (kind ``inference``) and its export (``scores.csv``), pending the stewards of every dataset
   read whose policy requires approval; the decision flow answers at once (no one reviews a
   decision in a decision flow: it is bounded by the quota and the authorisations).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ..access.authorisations import Coverage, covering, head_version
from ..access.users import SUBJECT_ID, check_subject_id
from ..auth import SYSTEM, Principal, Role
from ..catalog.db import Export, ExportFile, Job, utcnow
from ..catalog.states import ExportState, JobState
from ..context import Context, needing_approval, require_role
from ..errors import AccessRefused, InvalidInput, NotFound
from ..jobs.visible import job_dict
from ..release.exports import bundle_hash
from .models import LoadedModel, ModelCatalog
from .runtime import SMALL, FeatureEngine, Runtime, encode
from .uses import NOT_AUTHORISED, Rows, charge, check_subject_results, claims_so_far, period_start, record_run

__all__ = ["MAX_BATCH", "MAX_SCORE", "Inference"]

#: subjects in one synchronous call (a decision flow)
MAX_SCORE = 100
MAX_BATCH = 1_000_000
INPUTS_LIMIT = "the model's limit of distinct inputs for this subject this month is reached"


class Inference:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any], models: ModelCatalog, engine: FeatureEngine,
                 runtime: Runtime) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self.models = models
        self.engine = engine
        self.runtime = runtime
        self.coverage = Coverage()

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
        check_subject_results(self._manifests, model.datasets, principal.tenant, purpose)
        return model

    def _policies(self, model: LoadedModel) -> tuple[set[str], list[tuple[str, int]]]:
        """Datasets an authorisation must name; daily limits."""
        required, limits = set(), []
        for name in model.datasets:
            p = self._manifests(name).build_policy()
            if p.subject_results.authorisation_required:
                required.add(name)
            limits.append((name, p.subject_results.max_subjects_per_day))
        return required, limits

    @staticmethod
    def _subjects(subjects: Any, most: int) -> tuple[list[str], Any]:
        """The subject ids, checked all at once (a batch has up to a million), and as an Arrow array."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if not isinstance(subjects, list | tuple) or not 1 <= len(subjects) <= most:
            raise InvalidInput(f"subjects: 1 to {most} subject ids", details={"field": "subjects"})
        try:
            arr = pa.array(subjects, pa.string())
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arr = None
        if arr is None or arr.null_count or not pc.all(pc.match_substring_regex(arr, SUBJECT_ID.pattern)).as_py():
            bad = next((x for x in subjects if not isinstance(x, str) or not SUBJECT_ID.match(x)), None)
            check_subject_id(bad, "subjects")  # raises, naming the rule
        if pc.count_distinct(arr).as_py() != len(arr):
            raise InvalidInput("subjects: a subject is listed twice", details={"field": "subjects"})
        return list(subjects), arr

    @staticmethod
    def _claims(model: LoadedModel, subjects: list[str], inputs: Any) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """The tenant's own inputs per subject, checked, and the claim each is (a digest, "" without)."""
        if not model.tenant_inputs:
            if inputs:
                raise InvalidInput(f"{model.ref} takes no tenant inputs", details={"field": "inputs"})
            return {}, {}
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
    def _evaluate(self, principal: Principal, model: LoadedModel, purpose: str, subjects: list[str], arr: Any,
                  inputs: dict[str, dict[str, Any]], claims: dict[str, str]) -> _Run:
        """Every subject's row before the transaction, as columns; only authorised subjects are computed."""
        import pyarrow as pa
        import pyarrow.compute as pc

        required, _ = self._policies(model)
        run = _Run(subjects, arr, utcnow())
        with self.ctx.db.read() as s:
            if len(subjects) <= SMALL:
                cover = covering(s, principal.tenant, purpose, required, subjects, run.started)
                ids = pa.array([",".join(cover[x]) if x in cover else None for x in subjects], pa.string())
            else:  # one head read, then the tenant's authorisations checked in DuckDB (cached per head)
                run.head, ids, run.until = self.coverage.check(s, principal.tenant, purpose, required, arr, run.started)
        ok = pc.is_valid(ids).to_numpy(zero_copy_only=False).copy()
        if model.tenant_inputs:
            covered = [subjects[i] for i in np.flatnonzero(ok)]
            seen = claims_so_far(self.ctx.db, principal.tenant, model.ref, covered, period_start("month", run.started))
            for i in np.flatnonzero(ok):
                mine = seen.get(subjects[i], set())
                if claims[subjects[i]] not in mine and len(mine) >= model.max_distinct_inputs:
                    ok[i] = False
                    run.limited.add(int(i))
        run.ok = ok
        run.auths = pc.fill_null(ids, "")
        idx = np.flatnonzero(ok)
        if idx.size:
            chosen = arr.take(pa.array(idx))
            small = idx.size <= SMALL
            columns, run.versions = (self.engine.lookup if small else self.engine.compute)(
                model.features, chosen.to_pylist() if small else chosen)
            for col in model.tenant_inputs:
                columns[col] = [inputs[subjects[i]][col] for i in idx]
            x_num, x_cat = encode(columns, model.cfg)
            scores, reasons = self.runtime.score(model, x_num, x_cat)
            run.score[idx] = scores
            if model.reason_codes:
                run.reasons = [[] for _ in subjects]
                for k, i in enumerate(idx):
                    run.reasons[i] = reasons[k]
        return run

    def _commit(self, s: Any, principal: Principal, model: LoadedModel, purpose: str, run: _Run,
                claims: dict[str, str], run_id: str, flow: str, details: dict[str, Any]) -> None:
        """Quota, the authorisations once more (a revocation or expiry since :meth:`_evaluate` withdraws
        the answer), the audit record and the run's rows — in ``s``'s transaction."""
        import pyarrow as pa

        required, limits = self._policies(model)
        now = utcnow()
        charge(s, limits, principal.tenant, len(run.subjects), now)
        if run.ok.any():
            if run.head is None:
                scored = [run.subjects[i] for i in np.flatnonzero(run.ok)]
                still = covering(s, principal.tenant, purpose, required, scored, now)
                run.refuse(np.array([x not in still for x in run.subjects]) & run.ok)
            elif head_version(s, principal.tenant, purpose) != run.head:  # changed meanwhile: check again
                _, again, _ = self.coverage.check(s, principal.tenant, purpose, required, run.arr, now)
                run.refuse(~again.is_valid().to_numpy(zero_copy_only=False))
            else:  # unchanged: only an expiry since can withdraw a subject
                run.refuse(run.until <= np.datetime64(now.replace(tzinfo=None), "us"))
        claim = pa.array([claims[x] for x in run.subjects], pa.string()) if model.tenant_inputs else \
            pa.array([""] * len(run.subjects), pa.string())
        rows = Rows(run.arr, claim, run.outcomes(), run.authorisations())  # all Arrow: no Python loop
        record_run(s, self.ctx.audit, principal.actor, "inference.scored", run_id,
                   {**details, "model": model.ref, "purpose": purpose, "versions": run.versions},
                   rows, flow=flow, tenant=principal.tenant, purpose=purpose, product_kind="model",
                   product=model.ref, now=now)

    # -- the decision flow ------------------------------------------------------------------------------
    def score(self, principal: Principal, model_ref: str, subjects: Sequence[str], purpose: str,
              inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Score up to :data:`MAX_SCORE` subjects now; refused subjects come back refused, per row."""
        model = self._model(principal, model_ref, purpose)
        subjects, arr = self._subjects(subjects, MAX_SCORE)
        got, claims = self._claims(model, subjects, inputs)
        run = self._evaluate(principal, model, purpose, subjects, arr, got, claims)
        run_id = "inf_" + secrets.token_hex(8)
        with self.ctx.db.transaction() as s:
            self._commit(s, principal, model, purpose, run, claims, run_id, "decision", {})
        return {"run_id": run_id, "model": model.ref, "purpose": purpose, "versions": run.versions,
                "results": run.results(model.reason_codes)}

    # -- the batch flow ---------------------------------------------------------------------------------
    def submit_batch(self, principal: Principal, model_ref: str, subjects: Sequence[str], purpose: str,
                     inputs: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """Score up to :data:`MAX_BATCH` subjects as a job (kind ``inference``): its export
        ``scores.csv`` waits for the stewards where the datasets' policies require approval."""
        model = self._model(principal, model_ref, purpose)
        subjects, arr = self._subjects(subjects, MAX_BATCH)
        got, claims = self._claims(model, subjects, inputs)
        run = self._evaluate(principal, model, purpose, subjects, arr, got, claims)
        # a batch's stewards: as for an export of those datasets (policy or grade: important data,
        # its senior stewards)
        with self.ctx.db.read() as s:
            review = needing_approval(s, self._manifests, list(model.datasets))
        job_id = "job_" + secrets.token_hex(8)
        export_id = "exp_" + secrets.token_hex(8)
        now = utcnow()
        request = hashlib.sha256("\n".join([model.ref, purpose, *subjects]).encode()).hexdigest()
        target = JobState.AWAITING_APPROVAL if review else JobState.RELEASED
        with self.ctx.db.transaction() as s:
            spec = {"name": f"score-{model.ref.replace('@', '-v')}", "purpose": purpose,
                    "datasets": list(model.datasets), "entrypoint": "job.py"}
            job = Job(id=job_id, tenant=principal.tenant, submitted_by=principal.name, purpose=purpose,
                      datasets=list(model.datasets), pinned=run.versions, state=target.value,
                      reason=("waiting for the stewards of " + ", ".join(review)) if review else "no approval required",
                      code_sha256=request, spec=spec, kind="inference", review_required=bool(review),
                      created_at=now, updated_at=now)
            s.add(job)
            s.flush()
            self.ctx.audit.append(s, principal.actor, "job.submitted", "job", job_id,
                                  {"name": spec["name"], "purpose": purpose, "datasets": spec["datasets"],
                                   "code_sha256": request, "kind": "inference"})
            self._commit(s, principal, model, purpose, run, claims, job_id, "batch", {"export_id": export_id})
            data = run.csv(model.reason_codes)
            sha = hashlib.sha256(data).hexdigest()
            digest = bundle_hash([("scores.csv", sha)])
            state = ExportState.PENDING if review else ExportState.APPROVED
            s.add(Export(id=export_id, job_id=job_id, tenant=principal.tenant, state=state.value, bundle_sha256=digest,
                         needs_approval_from=review, kind="outputs", created_at=now, updated_at=now))
            s.flush()
            s.add(ExportFile(export_id=export_id, name="scores.csv", sha256=sha, size=len(data), data=data))
            s.flush()
            self.ctx.audit.append(s, SYSTEM.actor, "export.requested", "export", export_id,
                                  {"job_id": job_id, "kind": "outputs", "bundle_sha256": digest,
                                   "needs_approval_from": review, "files": [["scores.csv", sha, len(data)]],
                                   "state": state.value})
            return job_dict(job, principal, s.get(Export, export_id))


class _Run:
    """One request's rows, as columns (a batch has a million at most: no dict per subject)."""

    def __init__(self, subjects: list[str], arr: Any, started: Any) -> None:
        n = len(subjects)
        self.subjects, self.arr, self.started = subjects, arr, started
        self.ok = np.zeros(n, dtype=bool)
        self.score = np.full(n, np.nan)
        self.reasons: list[list[str]] | None = None
        self.auths: Any = None  # Arrow strings, "" where not covered
        self.until: Any = None  # per subject, when its covering authorisations first expire (batches)
        self.head: int | None = None  # the authorisation head version read (batches)
        self.limited: set[int] = set()
        self.versions: dict[str, int] = {}

    def refuse(self, mask: Any) -> None:
        self.ok &= ~np.asarray(mask, dtype=bool)

    def notes(self) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        notes = pc.if_else(pa.array(self.ok), "", NOT_AUTHORISED)
        if self.limited:
            notes = notes.to_pylist()
            for i in self.limited:
                notes[i] = INPUTS_LIMIT
            notes = pa.array(notes, pa.string())
        return notes

    def outcomes(self) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        return pc.if_else(pa.array(self.ok), "answered", "refused")

    def authorisations(self) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        return pc.if_else(pa.array(self.ok), self.auths, "")

    def results(self, reason_codes: int) -> list[dict[str, Any]]:
        notes, auths = self.notes().to_pylist(), self.authorisations().to_pylist()
        out = []
        for i, subj in enumerate(self.subjects):
            if self.ok[i]:
                out.append({"subject": subj, "status": "scored", "score": float(self.score[i]),
                            **({"reasons": self.reasons[i]} if reason_codes and self.reasons else {}),
                            "authorisations": auths[i].split(",")})
            else:
                out.append({"subject": subj, "status": "refused", "reason": notes[i]})
        return out

    def csv(self, reason_codes: int) -> bytes:
        """The batch's one file, written here (subject ids are checked: no formula can start one)."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv

        cols: dict[str, Any] = {"subject": self.arr,
                                "status": pc.if_else(pa.array(self.ok), "scored", "refused"),
                                "score": pa.array(self.score, pa.float64(), from_pandas=True)}
        for k in range(reason_codes):
            cols[f"reason_{k + 1}"] = pa.array([r[k] if len(r) > k else "" for r in self.reasons or
                                                [[]] * len(self.subjects)], pa.string())
        cols["note"] = self.notes()
        buf = io.BytesIO()
        pacsv.write_csv(pa.table(cols), buf, pacsv.WriteOptions(quoting_style="needed"))
        return buf.getvalue()
