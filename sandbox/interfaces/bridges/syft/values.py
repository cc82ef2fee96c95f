"""The PySyft bridge's values: its configuration, and what publishing and a pass report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ....errors import InvalidInput

__all__ = ["PublishedDataset", "SyftBridgeConfig", "SyftJobOutcome"]


@dataclass(frozen=True)
class SyftBridgeConfig:
    """Who the bridge is on the Syft side and whom each Syft identity acts as in the warehouse."""

    #: Syft data scientist email → warehouse enterprise user name (only these are served)
    users: Mapping[str, str]
    #: the warehouse user (steward or admin) in whose name mock data is generated and published
    publisher: str
    #: purpose for jobs whose submission states none (None: such jobs are refused)
    default_purpose: str | None = None
    mock_rows: int = 1000
    mock_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", MappingProxyType(dict(self.users)))  # frozen all the way down
        if not self.users:
            raise InvalidInput("the Syft bridge needs at least one data scientist mapped to a warehouse user")
        if not 0 < self.mock_rows <= 100_000:
            raise InvalidInput("mock_rows must be between 1 and 100000", details={"field": "mock_rows"})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SyftBridgeConfig:
        """From a parsed ``syft-bridge.yaml`` (``users``, ``publisher``, optional the rest)."""
        allowed = {"users", "publisher", "default_purpose", "mock_rows", "mock_seed"}
        extra = set(raw) - allowed
        if extra or not isinstance(raw.get("users"), dict) or not isinstance(raw.get("publisher"), str):
            raise InvalidInput("syft bridge config: `users` (mapping) and `publisher` are required; "
                               f"allowed keys: {', '.join(sorted(allowed))}")
        return cls(users={str(k): str(v) for k, v in raw["users"].items()}, publisher=raw["publisher"],
                   default_purpose=raw.get("default_purpose"), mock_rows=int(raw.get("mock_rows", 1000)),
                   mock_seed=int(raw.get("mock_seed", 0)))


@dataclass(frozen=True)
class PublishedDataset:
    name: str
    mock_sha256: str
    rows: int
    audience: tuple[str, ...]


@dataclass(frozen=True)
class SyftJobOutcome:
    """What one pass did for one Syft job."""

    syft_user: str
    syft_job: str
    job_id: str | None
    syft_state: str
    reason: str
    files: tuple[str, ...] = field(default_factory=tuple)
