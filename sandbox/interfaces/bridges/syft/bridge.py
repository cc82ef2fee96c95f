"""The warehouse as a PySyft data owner (syft 0.10 + syft-rds 0.6).

syft 0.10 is a file-sync engine: a *datasite* is a folder tree per email, synchronised between
peers over a transport (Google Drive in production; an in-process mock Drive for tests,
``SyftRDSClient.pair_with_mock_drive_service_connection``). syft-rds adds datasets (a public mock
folder shared with chosen peers, a private folder that never leaves the owner) and jobs (code in
``app_data/job/inbox/<ds>/…``, state and outputs in ``app_data/job/review/<ds>/…``).

What maps to what::

    Syft (syft-rds)                              warehouse
    ─────────────────────────────────────────    ─────────────────────────────────────────────
    data owner (the bridge's email)          ←→  the warehouse; `publisher` acts for it
    dataset mock files                       ←   sandbox.datasets.mock (manifest only, never the table)
    dataset private files                    ←   twh_dataset.json: a pointer naming the dataset
    data scientist (peer email)              →   an enterprise user, from `users` (fail closed)
    job (code + entrypoint)                  →   a warehouse job (syft_code.translate), queued
    job state pending/approved               →   running (never `approved`: Syft's runner would
                                                 run run.sh on this host, outside the sandbox)
    job state rejected + reason              ←   policy refusal at submission, or export denied
    job state failed                         ←   warehouse job failed (details withheld)
    job state done + outputs/                ←   export approved: exactly the downloaded bytes

A pass (:meth:`SyftBridge.serve_once`) syncs, takes in new Syft jobs, optionally runs them here
(the embedded runner, as ``twh job run``), reflects every open job's warehouse state back to
Syft, and syncs again. Every warehouse action is a facade call as the mapped enterprise user,
so the usual audit records are written (``job.submitted``, ``export.downloaded``, …) with that
user as actor; the bridge adds ``syft.published``, ``syft.peer_approved``, ``syft.job_received``
(Syft identity ↔ job id), ``syft.job_refused`` and ``syft.job_returned``.

Modules: this one (the bridge), :mod:`.syft_code` (a submission → a warehouse job; the README
published with each dataset), :mod:`.syft_ledger` (which Syft job is which warehouse job),
:mod:`.syft_values` (config and reports), :mod:`.syft_cli` (``twh syft …``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ....auth import SYSTEM, Principal, Role
from ....errors import InternalError, InvalidInput, InvalidTransition, JobSpecInvalid, TwhError
from ....jobs.service import code_hash
from ....warehouse import Warehouse
from .code import SyftJobCode, dataset_readme, translate
from .ledger import FAILED, REJECTED, RUNNING, SUBMITTING, BridgedJob, Ledger
from .values import PublishedDataset, SyftBridgeConfig, SyftJobOutcome

__all__ = ["POINTER_FILE", "UNMAPPED", "PublishedDataset", "SyftBridge", "SyftBridgeConfig", "SyftJobOutcome",
           "login_data_owner"]

log = logging.getLogger(__name__)

#: the only file of a published dataset's private side
POINTER_FILE = "twh_dataset.json"
#: an unmapped Syft identity gets exactly this (and the data owner's log the email)
UNMAPPED = "this data scientist is not registered with the training warehouse"


def login_data_owner(email: str, token_path: Path | None) -> Any:
    """The warehouse's Syft data-owner client over syft's configured transport (``syft_rds.login_do``).

    syft 0.10's only real transport is Google Drive (credentials at ``token_path``); tests use its
    in-process mock Drive (``SyftRDSClient.pair_with_mock_drive_service_connection``) instead.
    """
    from syft_rds import login_do

    with _quiet():
        return login_do(email=email, token_path=token_path)


class SyftBridge:
    """One warehouse acting as one Syft data owner through ``rds`` (a ``SyftRDSClient`` with the DO role)."""

    def __init__(self, wh: Warehouse, rds: Any, config: SyftBridgeConfig, *, folder: Path | None = None) -> None:
        if not rds.has_do_role:
            raise InvalidInput("the Syft client must be logged in as a data owner (login_do)")
        self.wh = wh
        self.rds = rds
        self.config = config
        self.folder = folder or wh.settings.home / "syft" / "bridge"
        self.ledger = Ledger(self.folder)

    @property
    def email(self) -> str:
        return self.rds.email

    # -- publish --------------------------------------------------------------------------
    def publish(self, names: Iterable[str] | None = None, *, replace: bool = False) -> list[PublishedDataset]:
        """Publish datasets (default: every one the publisher can see) as Syft datasets.

        Mock side: the mock table from the manifest (:mod:`sandbox.datasets.mock`) as ``<name>.csv`` and a
        README with the schema and how to query. Private side: :data:`POINTER_FILE` only.
        A dataset already published is left alone unless ``replace``.
        """
        publisher = self.wh.users.principal(self.config.publisher)
        if publisher.role not in (Role.STEWARD, Role.ADMIN):
            raise InvalidInput(f"the Syft publisher {publisher.name!r} must be a steward or an admin")
        wanted = list(names) if names is not None else [d["name"] for d in self.wh.datasets.list(publisher)]
        audience = tuple(sorted(self.config.users))
        out = []
        for name in wanted:
            self.wh.datasets.show(publisher, name)  # NotFound for a dataset that does not exist
            if self._syft_has_dataset(name):
                if not replace:
                    continue
                with _quiet():
                    self.rds.delete_dataset(name, require_confirmation=False, sync=False)
            out.append(self._publish_one(publisher, name, audience))
        with _quiet():
            self.rds.sync()
        return out

    def _syft_has_dataset(self, name: str) -> bool:
        try:
            self.rds.dataset_manager.get(name=name, datasite=self.email)
            return True
        except FileNotFoundError:
            return False

    def _publish_one(self, publisher: Principal, name: str, audience: tuple[str, ...]) -> PublishedDataset:
        manifest = self.wh.manifest(name)
        mock = self.wh.datasets.mock(publisher, name, rows=self.config.mock_rows, seed=self.config.mock_seed,
                                     fmt="csv")  # audited: dataset.mock_downloaded
        staging = self.folder / "staging" / name
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "mock").mkdir(parents=True)
        (staging / "private").mkdir()
        (staging / "mock" / f"{name}.csv").write_bytes(mock)
        readme = staging / "README.md"
        readme.write_text(dataset_readme(name, manifest), "utf-8")
        pointer = {"kind": "training-warehouse-dataset", "dataset": name, "datasite": self.email,
                   "access": "jobs only: twh_job.query(sql) inside the warehouse sandbox; outputs after "
                             "the stewards approve them"}
        (staging / "private" / POINTER_FILE).write_text(json.dumps(pointer, indent=1), "utf-8")
        kind = str(getattr(manifest.provider_kind, "value", manifest.provider_kind))
        with _quiet():  # upload_private=False: the private side stays in this datasite (it is only a pointer anyway)
            self.rds.create_dataset(name=name, mock_path=staging / "mock", private_path=staging / "private",
                                    summary=(manifest.title or name)[:200], readme_path=readme,
                                    tags=["training-warehouse", kind], users=list(audience),
                                    upload_private=False, sync=False)
        shutil.rmtree(staging, ignore_errors=True)  # syft copied what it keeps into its datasite
        digest = hashlib.sha256(mock).hexdigest()
        self.wh.ctx.record(publisher, "syft.published", "dataset", name,
                           {"syft_datasite": self.email, "mock_sha256": digest, "rows": self.config.mock_rows,
                            "audience": list(audience)})
        return PublishedDataset(name, digest, self.config.mock_rows, audience)

    def published(self) -> list[str]:
        return sorted(d.name for d in self.rds.dataset_manager.get_all(datasite=self.email))

    # -- peers ----------------------------------------------------------------------------
    def approve_peers(self) -> list[str]:
        """Approve pending Syft peer requests from the mapped data scientists; others wait for a person."""
        with _quiet():
            self.rds.load_peers()
        approved = []
        for peer in list(self.rds.peer_manager.requested_by_peer_peers):
            user = self.config.users.get(peer.email)
            if user is None:
                continue
            with _quiet():
                self.rds.approve_peer_request(peer.email)
            self.wh.ctx.record(SYSTEM, "syft.peer_approved", "syft_peer", peer.email[:200],
                               {"syft_user": peer.email, "warehouse_user": user, "syft_datasite": self.email})
            approved.append(peer.email)
        return approved

    # -- jobs -----------------------------------------------------------------------------
    def serve_once(self, *, run: bool = True) -> list[SyftJobOutcome]:
        """One pass: take in new Syft jobs, run them here if ``run``, send back what is decided.

        Idempotent: a pass that dies anywhere is finished by the next one (a job being submitted
        is found again by name and code hash, never submitted twice; a release is re-delivered).
        """
        outcomes: dict[tuple[str, str], SyftJobOutcome] = {}

        def note(o: SyftJobOutcome | None) -> None:
            if o is not None:
                outcomes[(o.syft_user, o.syft_job)] = o

        with self.ledger.locked():
            self.approve_peers()
            with _quiet():
                self.rds.sync()
                self.rds.job_client.scan_inbox()  # received → pending (syft's own validation)
            storage = self.rds.job_client.manager
            for ref in list(storage.iter_submission_refs(self.email)):
                known = self.ledger.get(ref.ds_email, ref.job_name)
                if known is None or known.syft_state == SUBMITTING:
                    note(self._take_in(storage, ref, known))
            open_jobs = [b for b in self.ledger.all() if not b.finished and b.job_id is not None]
            if run:
                for bridged in open_jobs:
                    self._run(bridged.job_id)
            for bridged in open_jobs:
                try:
                    note(self._reflect(storage, bridged))
                except TwhError as exc:  # one job's trouble never stops the others; retried next pass
                    log.warning("syft job %s: %s", bridged.key, exc.message)
            with _quiet():
                self.rds.sync()
        return list(outcomes.values())

    def _take_in(self, storage: Any, ref: Any, known: BridgedJob | None) -> SyftJobOutcome | None:
        from syft_job.job_ref import JobStateNotFoundError
        from syft_job.models import JobStatus

        try:
            state = storage.read_state(ref)
        except JobStateNotFoundError:
            return None  # not validated by syft yet: next pass
        resumable = (JobStatus.RUNNING,) if known is not None else ()  # we may have written it, then died
        if state.status not in (JobStatus.PENDING, JobStatus.APPROVED, *resumable):
            return None  # decided outside the bridge: not ours to touch
        # Identity from the path syft derives it from (the inbox folder only that peer may write),
        # never from the submission's own config.yaml.
        syft_user, syft_job = ref.ds_email, ref.job_name
        ids = {"syft_user": syft_user, "syft_job": syft_job, "syft_datasite": self.email}
        user = self.config.users.get(syft_user)
        principal = self._enterprise(user) if user else None
        if principal is None:
            log.warning("syft job %s/%s from an unmapped identity refused", syft_user, syft_job)
            self.wh.ctx.record(SYSTEM, "syft.job_refused", "syft_job", f"{syft_user}/{syft_job}"[:200],
                               {**ids, "code": "unmapped", "reason": UNMAPPED})
            return self._refuse(storage, ref, state, BridgedJob(syft_user, syft_job, "", None, REJECTED), UNMAPPED)
        bridged = BridgedJob(syft_user, syft_job, principal.name, None, REJECTED)
        try:
            spec, files = self._translate(storage, ref)
        except TwhError as exc:
            self.wh.ctx.record(principal, "syft.job_refused", "syft_job", f"{syft_user}/{syft_job}"[:200],
                               {**ids, "code": exc.code, "reason": exc.message})
            return self._refuse(storage, ref, state, bridged, f"{exc.code}: {exc.message}")
        digest = code_hash(files)
        job = self._already_submitted(principal, spec.name, digest) if known is not None else None
        if job is None:
            # Noted before submitting: if this pass dies after the job exists, the next pass finds
            # that job (by name and code hash) instead of submitting the code a second time.
            self.ledger.put(BridgedJob(syft_user, syft_job, principal.name, None, SUBMITTING))
            try:
                job = self.wh.jobs.submit_files(principal, spec, files)  # policy checked; audited job.submitted
            except TwhError as exc:
                self.wh.ctx.record(principal, "syft.job_refused", "syft_job", f"{syft_user}/{syft_job}"[:200],
                                   {**ids, "code": exc.code, "reason": exc.message})
                return self._refuse(storage, ref, state, bridged, f"{exc.code}: {exc.message}")
        self.wh.ctx.record(principal, "syft.job_received", "job", job["id"],
                           {**ids, "code_sha256": digest, "datasets": list(spec.datasets), "purpose": spec.purpose})
        bridged = BridgedJob(syft_user, syft_job, principal.name, job["id"], RUNNING,
                             f"accepted by the training warehouse as {job['id']}")
        # `running`, never `approved`: syft's own runner executes approved jobs' run.sh on this
        # host, outside the sandbox.
        state.status = JobStatus.RUNNING
        state.approved_by, state.approved_at = None, None
        state.approval_method = "training-warehouse"
        state.review_reason = bridged.reason
        storage.write_state(ref, state)
        self.ledger.put(bridged)
        return _outcome(bridged)

    def _translate(self, storage: Any, ref: Any) -> tuple[Any, dict[str, bytes]]:
        try:
            meta = storage.read_submission(ref)
        except Exception as exc:  # noqa: BLE001 - syft's migration/IO errors: refuse, never crash the pass
            raise JobSpecInvalid("the Syft submission's config.yaml cannot be read") from exc
        declared = (meta.datasets or {}).get(self.email) if meta.datasets else None
        code = SyftJobCode(ref.job_name, storage.submission_dir(ref) / "code", meta.entrypoint,
                           tuple(declared) if declared else None)
        try:
            return translate(code, self.published(), self.config.default_purpose)
        except OSError as exc:
            raise JobSpecInvalid("the Syft submission's files cannot be read") from exc

    def _already_submitted(self, principal: Principal, name: str, digest: str) -> dict[str, Any] | None:
        for job in self.wh.jobs.list(principal):
            if job["name"] == name and job["code_sha256"] == digest and job["submitted_by"] == principal.name:
                return job
        return None

    def _refuse(self, storage: Any, ref: Any, state: Any, bridged: BridgedJob, reason: str) -> SyftJobOutcome:
        from syft_job.models import JobStatus

        state.status = JobStatus.REJECTED
        state.rejected_by, state.rejected_at = self.email, datetime.now(UTC)
        state.review_reason = reason[:1000]
        storage.write_state(ref, state)
        bridged = bridged.moved(REJECTED, state.review_reason)
        self.ledger.put(bridged)
        return _outcome(bridged)

    def _enterprise(self, user: str) -> Principal | None:
        try:
            p = self.wh.users.principal(user)
        except TwhError:
            return None
        return p if p.role is Role.ENTERPRISE else None  # only an enterprise user submits jobs

    def _run(self, job_id: str) -> None:
        try:
            self.wh.jobs.run(job_id)
        except InvalidTransition:
            pass  # not queued: running or ended elsewhere (a worker took it)

    def _reflect(self, storage: Any, bridged: BridgedJob) -> SyftJobOutcome | None:
        """Write the warehouse job's state into the Syft job; outputs only for an approved export."""
        from syft_job.models import JobStatus

        principal = self._enterprise(bridged.warehouse_user)
        if principal is None:
            return None  # the user was removed: nothing is released
        job = self.wh.jobs.get(principal, bridged.job_id)
        try:
            ref = storage.find_submission_ref(self.email, bridged.syft_job, bridged.syft_user)
        except (FileNotFoundError, ValueError):
            bridged = bridged.moved(FAILED, "the Syft submission was withdrawn; nothing was sent back")
            self.ledger.put(bridged)
            return _outcome(bridged)
        state = storage.read_state(ref)
        files: tuple[str, ...] = ()
        ids = {"syft_user": bridged.syft_user, "syft_job": bridged.syft_job, "syft_datasite": self.email}
        if job["state"] == "released":
            export = self.wh.exports.get(principal, job["export"]["id"])
            files = self._deliver(storage, ref, principal, export["id"])
            self.wh.ctx.record(principal, "syft.job_returned", "job", job["id"],
                               {**ids, "export_id": export["id"], "bundle_sha256": export["bundle_sha256"],
                                "files": list(files)})
            state.status, state.return_code = JobStatus.DONE, 0
            state.completed_at = datetime.now(UTC)
            reason = f"released by the warehouse's stewards (export {export['id']})"
        elif job["state"] == "denied":
            export = self.wh.exports.get(principal, job["export"]["id"])
            why = "; ".join(a["reason"] for a in export["approvals"] if a["decision"] == "deny")
            state.status = JobStatus.REJECTED
            state.rejected_by, state.rejected_at = self.email, datetime.now(UTC)
            reason = f"export denied by a steward: {why}"
        elif job["state"] == "failed":
            state.status, state.completed_at = JobStatus.FAILED, datetime.now(UTC)
            reason = job["reason"]  # as the enterprise sees it: details withheld
        else:  # queued | running | gating | awaiting_approval: nothing leaves yet
            reason = job["reason"] or job["state"]
            if reason == bridged.reason:
                return None
            state.status = JobStatus.RUNNING
        state.review_reason = reason[:1000]
        storage.write_state(ref, state)
        bridged = bridged.moved(state.status.value, state.review_reason)
        self.ledger.put(bridged)
        return _outcome(bridged, files)

    def _deliver(self, storage: Any, ref: Any, principal: Principal, export_id: str) -> tuple[str, ...]:
        """Download the approved export as the mapped user (audited, re-hashed) into the Syft job's outputs."""
        from syft_perms import SyftPermContext

        released = self.wh.exports.download(principal, export_id)
        outputs = storage.review_dir(ref) / "outputs"
        shutil.rmtree(outputs, ignore_errors=True)  # only the approved bytes, nothing left over
        outputs.mkdir(parents=True)
        names = []
        for f in released:
            name = Path(f.name).name  # the gate allows plain names only; never a path
            if hashlib.sha256(f.data).hexdigest() != f.sha256:
                raise InternalError(f"{name}: released bytes do not match their approved hash")
            (outputs / name).write_bytes(f.data)
            names.append(name)
        datasite = self.rds.syftbox_folder / self.email
        folder = SyftPermContext(datasite=datasite).open(str(outputs.relative_to(datasite)) + "/")
        folder.grant_read_access(ref.ds_email)  # that peer only
        return tuple(sorted(names))


def _outcome(b: BridgedJob, files: tuple[str, ...] = ()) -> SyftJobOutcome:
    return SyftJobOutcome(b.syft_user, b.syft_job, b.job_id, b.syft_state, b.reason, files)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """syft reports progress with print(); the bridge's callers (CLI, service) keep their stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield
