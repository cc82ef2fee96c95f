"""A job's files — its submitted code, its logs, a training job's review and kept graph — on the
machine that runs it and, when the warehouse has storage of its own (``TWH_STORAGE_URI``: workers on
several machines), in that storage too, so that whichever machine runs the job, and whichever one
serves a steward, reads the same bytes.

    files = JobFiles(settings)
    files.put_code(job_id, {"job.yaml": b"...", "job.py": b"..."})    # at submission
    files.code_dir(job_id, code_sha256)        # the local copy a worker runs (fetched and checked)
    files.publish(job_id, ["stdout.log"])      # after a run: its logs, to where every machine reads them
    files.read(job_id, "stdout.log")           # bytes or None, from this machine or the shared storage

The local folder (``home/jobs/<id>``) is then a working copy: scratch and sandbox runs happen there.
The code is stored as one object (``jobs/<id>/code.json``, names -> base64) so that file names need
not be object-key-safe, and a worker checks it against the ``code_sha256`` the catalog recorded at
submission before it runs it: bytes swapped in the storage are refused, never run or attributed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from ..errors import InternalError
from ..release.exports import bundle_hash
from ..settings import Settings
from ..tables import objects

CODE_OBJECT = "code.json"


def code_hash(files: dict[str, bytes]) -> str:
    return bundle_hash([(n, hashlib.sha256(b).hexdigest()) for n, b in files.items()])


class JobFiles:
    def __init__(self, settings: Settings) -> None:
        self.jobs_dir = settings.jobs_dir
        root = settings.shared_root
        self.shared = root.child("jobs") if root is not None else None

    def local(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def put_code(self, job_id: str, files: dict[str, bytes]) -> None:
        code_dir = self.local(job_id) / "code"
        code_dir.mkdir(parents=True)
        for name, data in files.items():
            (code_dir / name).write_bytes(data)
        if self.shared is not None:
            bundle = {n: base64.b64encode(b).decode("ascii") for n, b in files.items()}
            objects.write(self.shared.child(job_id, CODE_OBJECT), json.dumps(bundle, sort_keys=True).encode())

    def code_dir(self, job_id: str, code_sha256: str) -> Path:
        """The job's code on this machine (fetched from the shared storage when submitted elsewhere)."""
        code_dir = self.local(job_id) / "code"
        if code_dir.is_dir() or self.shared is None:
            return code_dir
        raw = objects.read(self.shared.child(job_id, CODE_OBJECT))
        if raw is None:
            raise InternalError(f"the code of job {job_id} is missing from the warehouse's storage")
        files = {n: base64.b64decode(b) for n, b in json.loads(raw).items()}
        if code_hash(files) != code_sha256:
            raise InternalError(f"the stored code of job {job_id} is not the code that was submitted",
                                details={"rule": "code_sha256"})
        tmp = self.local(job_id) / ".code-fetch"
        tmp.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        tmp.rename(code_dir)
        return code_dir

    def publish(self, job_id: str, names: list[str]) -> None:
        """Copy the named files of the job's local folder (those that exist) to the shared storage."""
        if self.shared is None:
            return
        for name in names:
            path = self.local(job_id) / name
            if path.is_file():
                objects.write(self.shared.child(job_id, name), path.read_bytes())

    def read(self, job_id: str, name: str) -> bytes | None:
        path = self.local(job_id) / name
        if path.is_file():
            return path.read_bytes()
        if self.shared is None:
            return None
        return objects.read(self.shared.child(job_id, name))

    def code(self, job_id: str) -> dict[str, bytes]:
        """The submitted files by name (for reviewers), wherever the job was submitted."""
        code_dir = self.local(job_id) / "code"
        if code_dir.is_dir():
            return {p.name: p.read_bytes() for p in sorted(code_dir.iterdir()) if p.is_file() and not p.is_symlink()}
        if self.shared is None:
            return {}
        raw = objects.read(self.shared.child(job_id, CODE_OBJECT))
        return {n: base64.b64decode(b) for n, b in sorted(json.loads(raw).items())} if raw else {}
