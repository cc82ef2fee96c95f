"""Jobs: submit, run in the sandbox, gate the outputs, hand them to the stewards.

The runner side (:meth:`Jobs.run`) is the only place untrusted code executes, and it executes
only inside :func:`sandbox.isolation.runner.run_in_sandbox`. The job's code reaches data solely through the
broker handler built here, which calls :meth:`sandbox.broker.queries.Queries.answer`.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from policies import check_access, query_decision

from ..auth import SYSTEM, Principal, Role
from ..broker.queries import Queries
from ..catalog.db import Dataset, Export, ExportFile, Job, JobQuery, utcnow
from ..catalog.states import ExportState, JobState, check_job_transition
from ..context import Context, get_dataset, grade_allowances, needing_approval, require_role, stewarded_by
from ..errors import AccessRefused, InvalidTransition, NotFound, QuotaExceeded, TwhError
from ..isolation.runner import SandboxLimits, SandboxOutcome, SandboxResult, run_in_sandbox
from ..release.attest import attest
from ..release.exports import bundle_hash
from ..release.outputs import GatedFile, gate_outputs, with_trained
from ..tables import storage
from ..tables.snapshot import Snapshot
from . import leases
from .files import JobFiles, code_hash
from .spec import JobSpec, load_job_files
from .visible import WITHHELD_REASON, job_dict, under_review

__all__ = ["NOTHING_TO_EXPORT", "WITHHELD_REASON", "Jobs", "code_hash", "job_dict"]

#: a job that wrote no files ends failed with this reason (no empty export fills the stewards'
#: queue); when the job needs review, the reason reaches the submitter only as an approved notice
NOTHING_TO_EXPORT = "nothing to export: the job wrote no files to its output folder"

log = logging.getLogger(__name__)


class Jobs:
    def __init__(self, ctx: Context, queries: Queries, manifests: Any, features: Any = None) -> None:
        self.ctx = ctx
        self.queries = queries
        #: the jobs' code and logs: here, and in the shared storage when machines share the warehouse
        self.files = JobFiles(ctx.settings)
        self._manifests = manifests
        #: ``name@version`` -> a library feature (``sandbox.products.features``, handed in by the facade)
        self._features = features

    def _training(self) -> Any:
        from ..training.service import Training  # torch and friends load only for training jobs

        return Training(self.ctx, self.queries, self._manifests, self._dir, self._features)

    # -- paths ----------------------------------------------------------------------------
    def _dir(self, job_id: str) -> Path:
        return self.ctx.settings.jobs_dir / job_id

    # -- submit ---------------------------------------------------------------------------
    def submit(self, principal: Principal, job_dir: Path) -> dict[str, Any]:
        require_role(principal, Role.ENTERPRISE)
        spec, files = load_job_files(Path(job_dir))
        return self.submit_files(principal, spec, files)

    def submit_files(self, principal: Principal, spec: JobSpec, files: dict[str, bytes]) -> dict[str, Any]:
        require_role(principal, Role.ENTERPRISE)
        job_id = "job_" + secrets.token_hex(8)
        for name in spec.datasets:
            with self.ctx.db.read() as s:
                get_dataset(s, name)
                allowed = grade_allowances(s, name)
            manifest = self._manifests(name)
            decision = check_access(manifest.build_policy(), principal.tenant, spec.purpose)
            if decision.allowed:  # core data answers nothing: refused now, not query by query
                decision = query_decision(manifest.grade, manifest.build_policy().release_mode, allowed)
            if not decision.allowed:
                self.ctx.record(principal, "job.refused", "job", job_id,
                                {"dataset": name, "purpose": spec.purpose, "rule": decision.rule,
                                 "reason": decision.reason})
                raise AccessRefused(f"{name}: {decision.reason}", details={"rule": decision.rule, "dataset": name})
        self._check_quota(principal, spec)
        if spec.train is not None:  # a feature query that cannot train is refused now, not after the job ran
            from ..training.service import feature_plan

            feature_plan(spec, self._manifests, self._features)
        review = bool(self._needs_approval(spec.datasets))
        digest = code_hash(files)
        self.files.put_code(job_id, files)
        with self.ctx.recorded(principal, "job.submitted", "job", job_id,
                               {"name": spec.name, "purpose": spec.purpose, "datasets": spec.datasets,
                                "code_sha256": digest}) as s:
            job = Job(id=job_id, tenant=principal.tenant, submitted_by=principal.name, purpose=spec.purpose,
                      datasets=list(spec.datasets), pinned={}, state=JobState.QUEUED.value, reason="",
                      code_sha256=digest, spec=spec.model_dump(), review_required=review)
            s.add(job)
            s.flush()
            s.refresh(job)  # as the catalog stores it (its times), so this answer equals get()'s now
            return self._shown(s, principal, job)

    def _check_quota(self, principal: Principal, spec: JobSpec) -> None:
        """A policy's ``max_jobs_per_day``: jobs reading the dataset one tenant submits per UTC day.
        It bounds how many bits the residual channels before review can carry per day."""
        day = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
        with self.ctx.db.read() as s:
            today = s.execute(select(Job.datasets).where(Job.tenant == principal.tenant,
                                                         Job.created_at >= day)).scalars().all()
        for name in spec.datasets:
            limit = self._manifests(name).build_policy().output.max_jobs_per_day
            if limit is not None and sum(1 for ds in today if name in (ds or [])) >= limit:
                raise QuotaExceeded(f"{name}: tenant {principal.tenant} has submitted {limit} jobs reading it today, "
                                    "the policy's limit (output.max_jobs_per_day); try again tomorrow (UTC)",
                                    details={"rule": "max_jobs_per_day", "dataset": name, "limit": limit})

    def _needs_approval(self, datasets: list[str], s: Any = None) -> list[str]:
        """The datasets whose stewards must approve an export: the policy asks for it, or the grade
        does (important and core data, unless an admin allowed ``no_approval``). ``s``: the open
        transaction to read in, if any."""
        if s is None:
            with self.ctx.db.read() as s:
                return self._needs_approval(datasets, s)
        return needing_approval(s, self._manifests, datasets)

    # -- read -----------------------------------------------------------------------------
    def _visible(self, s: Any, principal: Principal, job: Job) -> bool:
        if principal.role in (Role.ADMIN, Role.AUDITOR):
            return True
        if principal.role is Role.ENTERPRISE:
            return job.tenant == principal.tenant
        return bool(set(job.datasets) & stewarded_by(s, principal.name))

    def _load(self, s: Any, principal: Principal, job_id: str) -> Job:
        job = s.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 40 else None
        if job is None or not self._visible(s, principal, job):
            raise NotFound(f"job {job_id!r} does not exist")
        return job

    def get(self, principal: Principal, job_id: str) -> dict[str, Any]:
        with self.ctx.db.read() as s:
            return self._shown(s, principal, self._load(s, principal, job_id))

    def _shown(self, s: Session, principal: Principal, job: Job) -> dict[str, Any]:
        """``job`` as ``principal`` may see it: :meth:`get`'s answer, and a submit's."""
        export = s.execute(select(Export).where(Export.job_id == job.id)).scalar_one_or_none()
        out = job_dict(job, principal, export)
        hidden = principal.role is Role.ENTERPRISE and (under_review(job, export) or (
            export is not None and export.state == ExportState.PENDING.value))
        out["export"] = ({"id": export.id, "state": export.state, "kind": export.kind}
                         if export is not None and not hidden else None)
        if principal.role is Role.ENTERPRISE:
            # The job chose its queries after seeing gated, not yet approved results: their text and
            # outcomes could carry those results out. Stewards and auditors see them; the submitter doesn't.
            out["queries"] = None
            return out
        qs = s.execute(select(JobQuery).where(JobQuery.job_id == job.id).order_by(JobQuery.id)).scalars()
        out["queries"] = [{"sql": q.sql, "outcome": q.outcome, "versions": q.versions, "details": q.details}
                          for q in qs]
        return out

    def list(self, principal: Principal) -> list[dict[str, Any]]:
        with self.ctx.db.read() as s:
            jobs = s.execute(select(Job).order_by(Job.created_at.desc())).scalars().all()
            exports = {e.job_id: e for e in s.execute(select(Export)).scalars()}
            return [job_dict(j, principal, exports.get(j.id)) for j in jobs if self._visible(s, principal, j)]

    def logs(self, principal: Principal, job_id: str) -> dict[str, str]:
        """The job's stdout/stderr, and a training job's review (membership attack, exact counts,
        training losses — :mod:`sandbox.training.service`): withheld from the enterprise."""
        require_role(principal, Role.STEWARD, Role.AUDITOR, Role.ADMIN)
        with self.ctx.db.read() as s:
            job = self._load(s, principal, job_id)
        read = lambda n: (self.files.read(job.id, n) or b"").decode("utf-8", "replace")  # noqa: E731
        return {"stdout": read("stdout.log"), "stderr": read("stderr.log"),
                "training_review": read("training_review.json")}

    def code(self, principal: Principal, job_id: str) -> dict[str, str]:
        """The job's submitted files (what reviewers read beside its outputs), name -> text."""
        with self.ctx.db.read() as s:
            job = self._load(s, principal, job_id)
        return {n: b[:200_000].decode("utf-8", "replace") for n, b in self.files.code(job.id).items()}

    # -- run ------------------------------------------------------------------------------
    def _transition(self, job_id: str, target: JobState, reason: str, action: str, details: dict[str, Any],
                    owner: str | None = None, **fields: Any) -> Job:
        with self.ctx.db.transaction() as s:
            job = _locked(s, job_id)
            if job is None:
                raise NotFound(f"job {job_id!r} does not exist")
            _check_owner(job, owner)
            check_job_transition(job.state, target)
            started = job.state in (JobState.RUNNING.value, JobState.GATING.value)
            job.state, job.reason, job.updated_at = target.value, reason, utcnow()
            if target not in (JobState.RUNNING, JobState.GATING):
                job.lease_until = None  # ended: nothing left to reap
            for k, v in fields.items():
                setattr(job, k, v)
            s.flush()
            self.ctx.audit.append(s, SYSTEM.actor, action, "job", job_id, {"state": target.value, **details})
            if target is JobState.FAILED and started and job.review_required:
                self._notice(s, job, reason)
            return job

    def _notice(self, s: Any, job: Job, text: str) -> None:
        """A job that needs review and failed (or wrote nothing) leaves its one-line outcome as an
        export of its own: the submitter learns it only if the stewards approve these exact bytes."""
        needs = self._needs_approval(job.datasets, s)
        body = (text.strip() + "\n").encode("utf-8")
        f = GatedFile("outcome.txt", body)
        export_id = "exp_" + secrets.token_hex(8)
        s.add(Export(id=export_id, job_id=job.id, tenant=job.tenant, state=ExportState.PENDING.value,
                     bundle_sha256=bundle_hash([(f.name, f.sha256)]), needs_approval_from=needs, kind="notice"))
        s.flush()
        s.add(ExportFile(export_id=export_id, name=f.name, sha256=f.sha256, size=len(body), data=body))
        s.flush()
        self.ctx.audit.append(s, SYSTEM.actor, "export.requested", "export", export_id,
                              {"job_id": job.id, "kind": "notice", "bundle_sha256": bundle_hash([(f.name, f.sha256)]),
                               "needs_approval_from": needs, "files": [[f.name, f.sha256, len(body)]],
                               "state": ExportState.PENDING.value})

    def claim(self, job_id: str, worker_id: str | None = None, lease_seconds: float | None = None) -> bool:
        """queued → running under a lease held by ``worker_id``, exactly once even with several workers."""
        worker_id = worker_id or self.ctx.settings.worker_id
        lease_seconds = lease_seconds or self.ctx.settings.lease_seconds
        with self.ctx.db.transaction() as s:
            res = s.execute(update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED.value)
                            .values(state=JobState.RUNNING.value, updated_at=utcnow(), worker_id=worker_id,
                                    lease_until=leases.expiry(lease_seconds), attempts=Job.attempts + 1))
            if res.rowcount != 1:
                return False
            self._start(s, job_id, worker_id)
            return True

    def claim_next(self, worker_id: str, lease_seconds: float) -> str | None:
        """Take the oldest queued job (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: workers never wait
        on each other's candidates; on SQLite the write lock serialises claimers)."""
        with self.ctx.db.transaction() as s:
            job_id = s.execute(select(Job.id).where(Job.state == JobState.QUEUED.value)
                               .order_by(Job.created_at, Job.id).limit(1)
                               .with_for_update(skip_locked=True)).scalar_one_or_none()
            if job_id is None:
                return None
            res = s.execute(update(Job).where(Job.id == job_id, Job.state == JobState.QUEUED.value)
                            .values(state=JobState.RUNNING.value, updated_at=utcnow(), worker_id=worker_id,
                                    lease_until=leases.expiry(lease_seconds), attempts=Job.attempts + 1))
            if res.rowcount != 1:  # cannot happen under the row lock; fail safe
                return None
            self._start(s, job_id, worker_id)
            return job_id

    def _start(self, s: Any, job_id: str, worker_id: str) -> None:
        job = s.get(Job, job_id)
        s.refresh(job)
        # A re-queued job keeps the versions it pinned first: its re-run reads the same snapshots.
        pinned = dict(job.pinned or {})
        for name in job.datasets:
            if name not in pinned:
                pinned[name] = s.execute(select(Dataset.current_version).where(Dataset.name == name)).scalar_one()
        job.pinned = pinned
        self.ctx.audit.append(s, SYSTEM.actor, "job.started", "job", job_id,
                              {"state": JobState.RUNNING.value, "pinned_versions": pinned, "worker_id": worker_id,
                               "attempt": job.attempts})

    def run(self, job_id: str) -> dict[str, Any]:
        """Claim ``job_id`` and run it here (the embedded runner: CLI, tests, ``twh serve``'s thread)."""
        if not self.claim(job_id):
            raise InvalidTransition(f"job {job_id} is not queued")
        return self.run_claimed(job_id, self.ctx.settings.worker_id, self.ctx.settings.lease_seconds)

    def run_claimed(self, job_id: str, worker_id: str, lease_seconds: float) -> dict[str, Any]:
        """Run a job this worker claimed, renewing its lease while it runs."""
        with leases.heartbeat(self.ctx.db, job_id, worker_id, lease_seconds):
            try:
                self._run_claimed(job_id, worker_id)
            except TwhError as exc:
                self._fail(job_id, f"{exc.code}: {exc.message}", {"code": exc.code}, worker_id)
            except Exception:  # a bug: the job fails closed, nothing is released
                log.exception("job %s failed in the runner", job_id)
                self._fail(job_id, "internal error in the runner", {"code": "internal_error"}, worker_id)
            finally:  # refusals past the job's cap were counted: one record says how many
                self.ctx.audit.refusals.summarise(job_id)
        with self.ctx.db.read() as s:
            return job_dict(s.get(Job, job_id))

    def _fail(self, job_id: str, reason: str, details: dict[str, Any], owner: str | None = None) -> None:
        try:
            self._transition(job_id, JobState.FAILED, reason, "job.failed", details, owner=owner)
        except InvalidTransition:
            pass  # already ended, or no longer ours (reaped)

    def _run_claimed(self, job_id: str, owner: str) -> None:
        with self.ctx.db.read() as s:
            job = s.get(Job, job_id)
            spec = JobSpec.model_validate(job.spec)
            principal = Principal(job.submitted_by, Role.ENTERPRISE, job.tenant)
            code_sha256 = job.code_sha256
            tables = {n: (s.execute(select(Dataset.table_path).where(Dataset.name == n)).scalar_one(), v)
                      for n, v in job.pinned.items()}
        snapshots: dict[str, Snapshot] = {n: storage.pin_snapshot(self.ctx.table(p), n, v) for n, (p, v) in tables.items()}
        code = self.files.code_dir(job_id, code_sha256)  # submitted on another machine: fetched, checked
        handler = self._broker(principal, job_id, spec, snapshots)
        scratch = self._dir(job_id) / "run"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        st = self.ctx.settings
        limits = SandboxLimits(wall_seconds=st.job_wall_seconds, cpu_seconds=st.job_cpu_seconds,
                               memory_bytes=st.job_memory_mb * 1024 * 1024)
        try:
            result = run_in_sandbox(code, scratch, handler, limits, entrypoint=spec.entrypoint)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        (self._dir(job_id) / "stdout.log").write_bytes(result.stdout)
        (self._dir(job_id) / "stderr.log").write_bytes(result.stderr)
        self.files.publish(job_id, ["stdout.log", "stderr.log"])  # stewards read them on any machine
        summary = _sandbox_summary(result)
        if result.outcome is not SandboxOutcome.SUCCEEDED:
            self._transition(job_id, JobState.FAILED, f"{result.outcome.value}: {result.reason}", "job.failed", summary,
                             owner=owner)
            return
        # A training job: the platform's trainer runs now (features by the broker, its own sandbox).
        trained = self._training().run(principal, job_id, spec, snapshots) if spec.train is not None else []
        if spec.train is not None:
            from ..training.service import GRAPH_FILE, REVIEW_FILE

            self.files.publish(job_id, [REVIEW_FILE, GRAPH_FILE])
        self._transition(job_id, JobState.GATING, "checking outputs", "job.gating", summary, owner=owner)
        gated, problems = gate_outputs(result.outputs)
        files, clashes = with_trained(gated, trained)
        problems += clashes
        if problems:
            self._transition(job_id, JobState.FAILED, "outputs refused: " + "; ".join(problems), "job.failed",
                             {"output_problems": problems}, owner=owner)
            return
        if not files:  # an empty export would only fill the stewards' queue
            self._transition(job_id, JobState.FAILED, NOTHING_TO_EXPORT, "job.failed", {"outputs": 0}, owner=owner)
            return
        self._create_export(job_id, spec, files, owner)

    def _broker(self, principal: Principal, job_id: str, spec: JobSpec, snapshots: dict[str, Snapshot]) -> Any:
        def handle(request: dict[str, Any]) -> dict[str, Any]:
            op = request.get("op")
            try:
                if op == "query":
                    result = self.queries.answer(principal, job_id, spec.purpose, snapshots, request.get("sql"))
                    return {"ok": True, **result.for_job()}  # nothing about suppressed cells
                if op == "datasets":
                    return {"ok": True, "datasets": [self._describe(n, snapshots[n]) for n in spec.datasets]}
                return {"ok": False, "error": {"code": "invalid_input", "message": f"unknown op {str(op)[:40]!r}"}}
            except TwhError as exc:
                return {"ok": False, "error": {"code": exc.code, "message": exc.message,
                                               "rule": exc.details.get("rule")}}
        return handle

    def _describe(self, name: str, snap: Snapshot) -> dict[str, Any]:
        m = self._manifests(name)
        return {"name": name, "version": snap.version, "title": m.title,
                "columns": [{"name": c.name, "type": c.type, "role": c.role.value} for c in m.columns]}

    def _create_export(self, job_id: str, spec: JobSpec, files: list[GatedFile], owner: str | None = None) -> None:
        needs = self._needs_approval(spec.datasets)
        kind = "outputs"
        digest = bundle_hash([(f.name, f.sha256) for f in files])
        export_id = "exp_" + secrets.token_hex(8)
        target = JobState.AWAITING_APPROVAL if needs else JobState.RELEASED
        with self.ctx.db.transaction() as s:
            job = _locked(s, job_id)
            _check_owner(job, owner)
            check_job_transition(job.state, target)
            job.state, job.updated_at, job.lease_until = target.value, utcnow(), None
            job.reason = "waiting for the stewards of " + ", ".join(needs) if needs else "no approval required"
            s.add(Export(id=export_id, job_id=job_id, tenant=job.tenant, state="pending" if needs else "approved",
                         bundle_sha256=digest, needs_approval_from=needs, kind=kind))
            s.flush()
            for f in files:
                s.add(ExportFile(export_id=export_id, name=f.name, sha256=f.sha256, size=len(f.data), data=f.data))
            s.flush()
            # approved at once (no dataset needs a steward): signed now, in this transaction
            signed = {} if needs else attest(self.ctx, s, s.get(Export, export_id), job)
            self.ctx.audit.append(s, SYSTEM.actor, "export.requested", "export", export_id,
                                  {"job_id": job_id, "kind": kind, "bundle_sha256": digest, "needs_approval_from": needs,
                                   "files": [[f.name, f.sha256, len(f.data)] for f in files],
                                   "state": "pending" if needs else "approved", **signed})

    # -- worker ---------------------------------------------------------------------------
    def queued(self) -> list[str]:
        with self.ctx.db.read() as s:
            return list(s.execute(select(Job.id).where(Job.state == JobState.QUEUED.value)
                                  .order_by(Job.created_at)).scalars())

    def recover(self) -> int:
        """After a restart: end the jobs this worker identity held (its previous process is gone),
        and any whose lease expired. Jobs other live workers hold are left alone."""
        return self.reap(also_worker=self.ctx.settings.worker_id)

    def reap(self, also_worker: str | None = None) -> int:
        """End running/gating jobs whose lease expired (or held by ``also_worker``) as their kind
        declares (:data:`sandbox.jobs.leases.ON_LOST_LEASE`): failed, or back to the queue."""
        active = [JobState.RUNNING.value, JobState.GATING.value]

        def lapsed(now: Any) -> Any:
            cond = or_(Job.lease_until.is_(None), Job.lease_until < now)
            return or_(cond, Job.worker_id == also_worker) if also_worker else cond

        with self.ctx.db.read() as s:
            candidates = list(s.execute(select(Job.id).where(Job.state.in_(active), lapsed(utcnow()))).scalars())
        reaped = 0
        for job_id in candidates:
            with self.ctx.db.transaction() as s:
                job = s.execute(select(Job).where(Job.id == job_id, Job.state.in_(active), lapsed(utcnow()))
                                .with_for_update(skip_locked=True)).scalar_one_or_none()
                if job is None:  # renewed, ended or being reaped by someone else meanwhile
                    continue
                target = leases.lost_lease_target(job.kind, job.attempts)
                details = {"state": target.value, "lease_lost": True, "worker_id": job.worker_id,
                           "attempt": job.attempts, "kind": job.kind}
                check_job_transition(job.state, target)
                if target is JobState.QUEUED:
                    job.reason, action = "its worker stopped; queued again", "job.requeued"
                else:
                    job.reason, action = "its worker stopped while the job ran; nothing was released", "job.failed"
                job.state, job.updated_at, job.worker_id, job.lease_until = target.value, utcnow(), None, None
                s.flush()
                self.ctx.audit.append(s, SYSTEM.actor, action, "job", job_id, details)
                if target is JobState.FAILED and job.review_required:
                    self._notice(s, job, job.reason)
                reaped += 1
        return reaped


def _locked(s: Any, job_id: str) -> Job | None:
    """The job's row, locked for this transaction (PostgreSQL; SQLite's write lock covers it)."""
    return s.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one_or_none()


def _check_owner(job: Job, owner: str | None) -> None:
    """Fencing: a worker's transition applies only while it still holds the job."""
    if owner is not None and job.worker_id != owner:
        raise InvalidTransition(f"job {job.id} is no longer held by worker {owner} (its lease was lost)")


def _sandbox_summary(r: SandboxResult) -> dict[str, Any]:
    return {
        "outcome": r.outcome.value, "exit_code": r.exit_code, "reason": r.reason,
        "wall_seconds": round(r.wall_seconds, 3), "broker_requests": r.broker_requests,
        "outputs": [[o.name, o.sha256, o.size] for o in r.outputs],
        "rejected": [list(x) for x in r.rejected], "leftover_processes_killed": r.leftover_processes_killed,
        "stdout_bytes": len(r.stdout) + r.stdout_dropped, "stderr_bytes": len(r.stderr) + r.stderr_dropped,
    }
