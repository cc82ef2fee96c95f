"""The model catalog: approved DP model exports published, by their stewards, for inference.

    m = wh.products.models.propose(analyst, export_id, name="default_risk", tenants=["bank_a"],
                                   purposes=["credit_decision"], tenant_inputs=["avg_loan"], reason_codes=2)
    wh.products.models.approve(tax_steward, "default_risk@1", m["terms_sha256"])   # … every dataset's steward
    wh.products.models.load("default_risk@1")      # -> LoadedModel (trusted: the inference runtime)

Only an **approved** training export can be proposed: its ``model.safetensors`` and
``model_card.json`` as the stewards released them, the card in the platform's format, naming the
export's job, its weights hash the file's; the job trained on **library features** (by name), so
inference computes exactly the inputs it learnt from. Every model input is a library feature or
declared a *tenant input* (the tenant's own column, supplied per subject). The proposal's terms —
tenants, purposes, reason codes, rounding, the weights, the features — are hashed
(``terms_sha256``); a steward of every dataset the training job read approves that hash, and only
then is the model published. The owner tenant's enterprise users or a steward of one of those
datasets propose. Weights are checked against the declared model's tensors (or the checked
graph's) before anything is stored; nothing a user wrote ever runs (declarative models run in
NumPy, graphs are interpreted by the platform).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from ..auth import Principal, Role
from ..catalog.db import Export, ExportFile, Job, utcnow
from ..catalog.products import CatalogModel
from ..catalog.states import ExportState
from ..context import Context, stewarded_by
from ..errors import Conflict, Forbidden, InvalidInput, NotFound
from ..jobs.spec import JobSpec
from ..release.exports import seniors_only
from ..training.library import NamedFeature
from ..training.service import GRAPH_FILE
from .features import FeatureLibrary, parse_ref

__all__ = ["LoadedModel", "ModelCatalog", "model_dict"]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
CARD_FORMAT = "twh-model-card/1"


@dataclass(frozen=True)
class LoadedModel:
    """A published catalog model, as the inference runtime reads it (immutable, cached)."""

    id: int
    ref: str
    cfg: Any  # dp.training.TrainConfig
    weights: dict[str, Any]  # name -> numpy array (checked)
    graph: dict[str, Any] | None
    features: tuple[NamedFeature, ...]
    tenant_inputs: tuple[str, ...]
    #: datasets the model's library features read at inference (policies and authorisations apply)
    datasets: tuple[str, ...]
    allowed_tenants: tuple[str, ...]
    allowed_purposes: tuple[str, ...]
    reason_codes: int
    score_digits: int
    max_distinct_inputs: int
    owner_tenant: str


def model_dict(m: CatalogModel) -> dict[str, Any]:
    out = {"name": m.name, "version": m.version, "ref": f"{m.name}@{m.version}", "state": m.state,
           "description": m.description, "export_id": m.export_id, "job_id": m.job_id, "owner_tenant": m.owner_tenant,
           "features": list(m.features), "tenant_inputs": list(m.tenant_inputs), "datasets": list(m.datasets),
           "allowed_tenants": list(m.allowed_tenants), "allowed_purposes": list(m.allowed_purposes),
           "reason_codes": m.reason_codes, "score_digits": m.score_digits, "max_distinct_inputs": m.max_distinct_inputs,
           "certified_epsilon": m.certified_epsilon, "weights_sha256": m.weights_sha256,
           "model_kind": (m.config.get("model") or {}).get("kind"), "terms_sha256": m.terms_sha256,
           "approvals": dict(m.approvals), "proposed_by": m.proposed_by,
           "created_at": m.created_at.isoformat() if m.created_at else None,
           "published_at": m.published_at.isoformat() if m.published_at else None,
           "card": m.card}
    return out


def _words(values: Any, field: str) -> list[str]:
    if (not isinstance(values, list | tuple) or not 1 <= len(values) <= 100 or len(set(values)) != len(values)
            or not all(isinstance(v, str) and _WORD.match(v) for v in values)):
        raise InvalidInput(f"{field}: 1 to 100 distinct names", details={"field": field})
    return list(values)


def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise InvalidInput(f"{field}: an integer from {lo} to {hi}", details={"field": field})
    return value


def terms_sha256(terms: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(terms, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class ModelCatalog:
    def __init__(self, ctx: Context, manifests: Callable[[str], Any], features: FeatureLibrary) -> None:
        self.ctx = ctx
        self._manifests = manifests
        self._features = features
        self._loaded: dict[int, LoadedModel] = {}

    # -- propose / approve ------------------------------------------------------------------------
    def propose(self, principal: Principal, export_id: str, *, name: str, tenants: Sequence[str],
                purposes: Sequence[str], description: str = "", tenant_inputs: Sequence[str] = (),
                reason_codes: int = 0, score_digits: int = 2, max_distinct_inputs: int = 1) -> dict[str, Any]:
        from dp.training.forward import expected_shapes
        from dp.training.graph import check_graph
        from dp.training.weights import check_weights, read_safetensors

        if principal.role not in (Role.ENTERPRISE, Role.STEWARD):
            raise Forbidden("the model's owner tenant or a steward of its datasets proposes a catalog model")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput("name: lower-case letters, digits and _", details={"field": "name"})
        tenants, purposes = _words(tenants, "tenants"), _words(purposes, "purposes")
        if not isinstance(description, str) or len(description) > 2000:
            raise InvalidInput("description: at most 2000 characters", details={"field": "description"})
        reason_codes = _int(reason_codes, "reason_codes", 0, 10)
        score_digits = _int(score_digits, "score_digits", 0, 6)
        max_distinct_inputs = _int(max_distinct_inputs, "max_distinct_inputs", 1, 100)
        with self.ctx.db.read() as s:
            e = s.get(Export, export_id) if isinstance(export_id, str) and len(export_id) <= 40 else None
            job = s.get(Job, e.job_id) if e is not None else None
            mine = stewarded_by(s, principal.name) if principal.role is Role.STEWARD else set()
            visible = job is not None and (job.tenant == principal.tenant if principal.role is Role.ENTERPRISE
                                           else bool(set(job.datasets) & mine))
            if e is None or job is None or not visible:
                raise NotFound(f"export {str(export_id)[:40]!r} does not exist")
            if e.state != ExportState.APPROVED.value or e.kind != "outputs":
                raise Conflict(f"export {e.id} is {e.state}: only an approved training export can be published")
            files = {f.name: f.data for f in s.execute(select(ExportFile).where(ExportFile.export_id == e.id)).scalars()}
            spec = JobSpec.model_validate(job.spec)
            owner, job_id, job_datasets = job.tenant, job.id, list(job.datasets)
        if "model.safetensors" not in files or "model_card.json" not in files or spec.train is None:
            raise InvalidInput(f"export {e.id} holds no trained model (model.safetensors and model_card.json)",
                               details={"field": "export_id"})
        try:
            card = json.loads(files["model_card.json"])
        except ValueError:
            raise InvalidInput("the export's model card does not parse") from None
        weights_sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
        hashes = card.get("hashes") if isinstance(card, dict) else None
        if (not isinstance(card, dict) or card.get("format") != CARD_FORMAT or (card.get("job") or {}).get("id") != job_id
                or not isinstance(hashes, dict) or hashes.get("weights_sha256") != weights_sha):
            raise InvalidInput("the model card is not the platform's card of this export's job and weights",
                               details={"field": "export_id"})
        refs = list(spec.train.feature_refs)
        if not refs or (card.get("data") or {}).get("features") != refs:
            raise InvalidInput("the model was not trained on library features (train: features: [name@version, …]); "
                               "inference can only compute inputs the library defines", details={"field": "export_id"})
        cfg = spec.train.to_config()
        named = [self._features.resolve(r) for r in refs]
        library = {nf.name for nf in named}
        inputs = list(cfg.feature_columns)
        tenant_inputs = list(tenant_inputs)
        bad = [c for c in tenant_inputs if c not in inputs or c in library]
        if bad or len(set(tenant_inputs)) != len(tenant_inputs):
            raise InvalidInput(f"tenant_inputs: {', '.join(bad) or 'a duplicate'}: each must be a model input that "
                               "no library feature computes", details={"field": "tenant_inputs"})
        orphans = [c for c in inputs if c not in library and c not in tenant_inputs]
        if orphans:
            raise InvalidInput(f"model inputs {', '.join(orphans)} come from neither the library nor the tenant; "
                               "declare them tenant_inputs (the tenant supplies them) or train on library features",
                               details={"field": "tenant_inputs"})
        feature_datasets = sorted({d for nf in named for d in nf.datasets})
        graph = None
        try:
            arrays = read_safetensors(files["model.safetensors"])
            if cfg.model.kind == "custom":
                from ..jobs.files import JobFiles  # kept by the machine that trained it, and shared

                kept = JobFiles(self.ctx.settings).read(job_id, GRAPH_FILE)
                graph = json.loads(kept) if kept is not None else None
                checked = check_graph(graph)
                if checked.sha256 != hashes.get("graph_sha256"):
                    raise InvalidInput("the kept graph is not the one the card names")
                check_weights(arrays, checked.shapes)
            else:
                check_weights(arrays, expected_shapes(cfg))
        except InvalidInput:
            raise
        except Exception as exc:  # dp.training's refusals and parse errors: the weights do not fit the model
            raise InvalidInput(f"the export's weights do not fit its model ({type(exc).__name__})") from None
        epsilon = f"{float((card.get('privacy') or {}).get('epsilon', 0)):.6g}"
        proposer_datasets = sorted(set(job_datasets) & stewarded_by_safe(self, principal))
        with self.ctx.db.transaction() as s:
            if s.execute(select(CatalogModel.id).where(CatalogModel.export_id == e.id)).first() is not None:
                raise Conflict(f"export {e.id} is already in the catalog")
            version = (s.execute(select(func.max(CatalogModel.version)).where(CatalogModel.name == name)).scalar()
                       or 0) + 1
            terms = {"name": name, "version": version, "export_id": e.id, "weights_sha256": weights_sha,
                     "features": {nf.ref: nf.sha256 for nf in named}, "tenant_inputs": tenant_inputs,
                     "tenants": tenants, "purposes": purposes, "reason_codes": reason_codes,
                     "score_digits": score_digits, "max_distinct_inputs": max_distinct_inputs,
                     "datasets": job_datasets, "graph_sha256": hashes.get("graph_sha256")}
            row = CatalogModel(name=name, version=version, description=description, export_id=e.id, job_id=job_id,
                               owner_tenant=owner, features=refs, tenant_inputs=tenant_inputs, config=cfg.to_dict(),
                               card=card, weights=files["model.safetensors"], weights_sha256=weights_sha, graph=graph,
                               certified_epsilon=epsilon, datasets=feature_datasets, allowed_tenants=tenants,
                               allowed_purposes=purposes, reason_codes=reason_codes, score_digits=score_digits,
                               max_distinct_inputs=max_distinct_inputs, terms_sha256=terms_sha256(terms),
                               approvals={}, state="proposed", proposed_by=principal.name)
            row.approvals = {d: principal.name for d in proposer_datasets}
            s.add(row)
            s.flush()
            self.ctx.audit.append(s, principal.actor, "model.proposed", "model", f"{name}@{version}",
                                  {"terms": terms, "terms_sha256": row.terms_sha256, "job_id": job_id,
                                   "needs_approval_from": job_datasets})
            self._maybe_publish(s, row, job_datasets, principal)
            return self._dict(row, job_datasets)

    def approve(self, principal: Principal, ref: str, terms: str) -> dict[str, Any]:
        """A steward approves the exact terms (``terms_sha256``) for every dataset it holds."""
        if principal.role is not Role.STEWARD:
            raise Forbidden("a steward of the model's datasets approves its publication")
        with self.ctx.db.transaction() as s:
            row = self._row(s, ref, lock=True)
            job_datasets = list(s.get(Job, row.job_id).datasets)
            held = sorted(set(job_datasets) & stewarded_by(s, principal.name))
            if not held:
                raise NotFound(f"model {str(ref)[:80]!r} does not exist")
            # important data (GB/T 43697): only its senior stewards decide, as for its exports
            seniors = {d: only for d in held if (only := seniors_only(s, d)) is not None and principal.name not in only}
            mine = [d for d in held if d not in seniors]
            if not mine:
                raise Forbidden("important data: only its senior stewards approve a model trained on it ("
                                + "; ".join(f"{d}: {', '.join(v) or 'none named'}" for d, v in sorted(seniors.items()))
                                + ")", details={"senior_stewards": seniors})
            if not isinstance(terms, str) or terms != row.terms_sha256:
                raise Conflict("the terms you reviewed are not this model's (terms_sha256 differs)",
                               details={"terms_sha256": row.terms_sha256})
            if row.state == "published":
                return self._dict(row, job_datasets)
            row.approvals = {**row.approvals, **{d: principal.name for d in mine}}
            s.flush()
            self.ctx.audit.append(s, principal.actor, "model.approved", "model", f"{row.name}@{row.version}",
                                  {"terms_sha256": row.terms_sha256, "datasets": mine})
            self._maybe_publish(s, row, job_datasets, principal)
            return self._dict(row, job_datasets)

    def _maybe_publish(self, s: Any, row: CatalogModel, job_datasets: list[str], principal: Principal) -> None:
        if row.state != "published" and set(job_datasets) <= set(row.approvals):
            row.state, row.published_at = "published", utcnow()
            s.flush()
            self.ctx.audit.append(s, principal.actor, "model.published", "model", f"{row.name}@{row.version}",
                                  {"terms_sha256": row.terms_sha256, "approvals": row.approvals})

    # -- read ---------------------------------------------------------------------------------------
    def _row(self, s: Any, ref: Any, lock: bool = False) -> CatalogModel:
        name, version = parse_ref(ref, "model")
        q = select(CatalogModel).where(CatalogModel.name == name)
        q = q.where(CatalogModel.version == version) if version is not None else q.order_by(
            CatalogModel.version.desc()).limit(1)
        row = s.execute(q.with_for_update() if lock else q).scalars().first()
        if row is None:
            raise NotFound(f"model {str(ref)[:80]!r} does not exist")
        return row

    def _visible(self, s: Any, principal: Principal, row: CatalogModel) -> bool:
        if principal.role in (Role.ADMIN, Role.AUDITOR):
            return True
        if principal.role is Role.STEWARD:
            return bool(set(s.get(Job, row.job_id).datasets) & stewarded_by(s, principal.name))
        if principal.role is Role.ENTERPRISE:
            return row.owner_tenant == principal.tenant or (row.state == "published"
                                                            and principal.tenant in row.allowed_tenants)
        return row.state == "published"

    def _dict(self, row: CatalogModel, job_datasets: list[str]) -> dict[str, Any]:
        out = model_dict(row)
        out["needs_approval_from"] = [d for d in job_datasets if d not in row.approvals]
        return out

    def show(self, principal: Principal, ref: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            row = self._row(s, ref)
            if not self._visible(s, principal, row):
                raise NotFound(f"model {str(ref)[:80]!r} does not exist")
            return self._dict(row, list(s.get(Job, row.job_id).datasets))

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            rows = s.execute(select(CatalogModel).order_by(CatalogModel.name, CatalogModel.version)).scalars().all()
            return [self._dict(r, list(s.get(Job, r.job_id).datasets)) for r in rows if self._visible(s, principal, r)]

    def load(self, ref: str) -> LoadedModel | None:
        """The published model ``ref`` (name@version) for the runtime; None when there is none
        (unknown, only proposed): the caller refuses as for any non-catalog model."""
        from dp.training.spec import TrainConfig
        from dp.training.weights import read_safetensors

        name, version = parse_ref(ref, "model")
        if version is None:
            raise InvalidInput("model: name the version (name@version): a decision binds one model",
                               details={"field": "model"})
        with self.ctx.db.read() as s:
            row = s.execute(select(CatalogModel).where(CatalogModel.name == name, CatalogModel.version == version,
                                                       CatalogModel.state == "published")).scalar_one_or_none()
            if row is None:
                return None
            if row.id in self._loaded:
                return self._loaded[row.id]
            loaded = LoadedModel(
                id=row.id, ref=f"{row.name}@{row.version}", cfg=TrainConfig.from_dict(row.config),
                weights=read_safetensors(row.weights), graph=row.graph,
                features=tuple(self._features.resolve(r) for r in row.features),
                tenant_inputs=tuple(row.tenant_inputs), datasets=tuple(row.datasets),
                allowed_tenants=tuple(row.allowed_tenants), allowed_purposes=tuple(row.allowed_purposes),
                reason_codes=row.reason_codes, score_digits=row.score_digits,
                max_distinct_inputs=row.max_distinct_inputs, owner_tenant=row.owner_tenant)
        self._loaded[loaded.id] = loaded
        return loaded


def stewarded_by_safe(catalog: ModelCatalog, principal: Principal) -> set[str]:
    if principal.role is not Role.STEWARD:
        return set()
    with catalog.ctx.db.read() as s:
        return stewarded_by(s, principal.name)
