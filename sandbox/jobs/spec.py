"""``job.yaml``: what a job declares it will read, and why.

::

    name: default-rate-by-industry-district
    purpose: credit_risk
    datasets: [enterprise_registry, bank_loans]
    entrypoint: job.py            # optional, default job.py
    train: {...}                  # optional: a DP training job (see sandbox.training.spec)
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import JobSpecInvalid
from ..training.spec import TrainBlock
from .folder import MAX_JOB_BYTES, MAX_JOB_FILES, read_job_folder

__all__ = ["MAX_JOB_BYTES", "MAX_JOB_FILES", "JobSpec", "load_job_files", "parse_job_spec", "read_job_folder"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
_ENTRY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.py$")


class JobSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    purpose: str = Field(min_length=1, max_length=64)
    datasets: list[str] = Field(min_length=1, max_length=16)
    entrypoint: str = "job.py"
    #: a DP training job: the broker builds the features, the platform's trainer trains
    train: TrainBlock | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"job name {v!r} must match {_NAME.pattern}")
        return v

    @field_validator("entrypoint")
    @classmethod
    def _entry(cls, v: str) -> str:
        if not _ENTRY.match(v):
            raise ValueError(f"entrypoint {v!r} must be a .py file name in the job folder")
        return v

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a dataset is listed twice")
        return v


def load_job_files(job_dir: Path) -> tuple[JobSpec, dict[str, bytes]]:
    """Read and validate a job folder: ``job.yaml`` plus regular files only, size-capped."""
    files = read_job_folder(job_dir)
    spec = parse_job_spec(files["job.yaml"])
    if spec.entrypoint not in files:
        raise JobSpecInvalid(f"entrypoint {spec.entrypoint} is not in the job folder")
    return spec, files


def parse_job_spec(raw: bytes | str) -> JobSpec:
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise JobSpecInvalid(f"job.yaml is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise JobSpecInvalid("job.yaml must be a mapping")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise JobSpecInvalid(f"job.yaml: {field}: {err['msg']}", details={"field": field}) from exc
    if spec.train is not None:
        spec.train.to_config()  # semantic checks (ranges, δ, model) at submission, not at run time
    return spec
