"""The bridge's own record of which Syft job became which warehouse job.

One JSON file under the bridge's folder (``<home>/syft/bridge/jobs.json``), written atomically
(temporary file + rename) while an exclusive ``flock`` on ``jobs.lock`` is held for the whole
pass, so two ``serve-once`` runs never submit one Syft job twice. It holds ids and states only —
the authoritative record of what happened is the warehouse's audit log, where every step of a
bridged job is written (``syft.job_received`` links the Syft identity to the warehouse job id).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = ["DONE", "FAILED", "REJECTED", "RUNNING", "SUBMITTING", "BridgedJob", "Ledger"]

#: the Syft job states the bridge writes (syft_job.models.JobStatus values), and its own "submitting"
RUNNING, DONE, REJECTED, FAILED = "running", "done", "rejected", "failed"
#: noted before the warehouse job is created: a pass that died here is resumed, never repeated
SUBMITTING = "submitting"


@dataclass(frozen=True)
class BridgedJob:
    syft_user: str
    syft_job: str
    warehouse_user: str
    job_id: str | None  # None: refused before a warehouse job existed
    #: the Syft state last written for it (running | done | rejected | failed), or submitting
    syft_state: str
    reason: str = ""

    @property
    def key(self) -> str:
        return key(self.syft_user, self.syft_job)

    @property
    def finished(self) -> bool:
        return self.syft_state in (DONE, REJECTED, FAILED)

    def moved(self, syft_state: str, reason: str) -> BridgedJob:
        return replace(self, syft_state=syft_state, reason=reason)


def key(syft_user: str, syft_job: str) -> str:
    return f"{syft_user}/{syft_job}"


class Ledger:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._path = folder / "jobs.json"
        self._jobs: dict[str, BridgedJob] = {}

    @contextmanager
    def locked(self) -> Iterator[Ledger]:
        """Hold the bridge's lock for a whole pass; the ledger is re-read under it."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / "jobs.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._jobs = self._read()
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, BridgedJob]:
        if not self._path.exists():
            return {}
        raw = json.loads(self._path.read_text("utf-8"))
        return {k: BridgedJob(**v) for k, v in raw.items()}

    def get(self, syft_user: str, syft_job: str) -> BridgedJob | None:
        return self._jobs.get(key(syft_user, syft_job))

    def all(self) -> list[BridgedJob]:
        return list(self._jobs.values())

    def put(self, job: BridgedJob) -> None:
        self._jobs[job.key] = job
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: asdict(v) for k, v in sorted(self._jobs.items())}, indent=1), "utf-8")
        os.replace(tmp, self._path)
