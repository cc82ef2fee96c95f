"""What a load is, before any row moves: its plan, its idempotency key, and the book it writes.

    plan = LoadPlan(kind, target, options, name, is_file, source)
    load_id = load_id_for(dataset, source_sha256, mode)     # same file, same mode -> same id

Both landing engines (the streaming path, :mod:`.ingest`, and Spark, :mod:`.spark`) share these;
:class:`LoadBook` names the catalog steps the Spark path borrows from the streaming one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from connectors import ContractReport, SourceError

    from ..auth import Principal
    from ..context import Context
    from ..tables.uris import Location


def load_id_for(dataset: str, source_sha256: str, mode: str = "append") -> str:
    key = f"{dataset}\0{source_sha256}" if mode == "append" else f"{dataset}\0{source_sha256}\0{mode}"
    return "ld_" + hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class LoadPlan:
    """What to read: a connector kind, its target and options, and how to name it."""

    kind: str
    target: Any
    options: dict[str, Any]
    name: str
    is_file: bool
    source: dict[str, Any]


def validation_summary(report: ContractReport | None, rejected: int) -> dict[str, Any]:
    if report is None:
        return {"contract": None, "success": True, "rows_quarantined": rejected}
    return {"contract": "great_expectations", "success": report.success, "checks": len(report.results),
            "rows_checked": report.rows_checked, "rows_quarantined": rejected, "seconds": round(report.seconds, 3)}


class LoadBook(Protocol):
    """The catalog side of a load: idempotency, drift refusals, quarantines, the version record."""

    ctx: Context

    def already_loaded(self, dataset: str, table: Location, load_id: str, principal: Principal, name: str,
                       source_sha: str | None) -> dict[str, Any] | None: ...

    def refuse_drift(self, principal: Principal, dataset: str, plan: LoadPlan, exc: SourceError) -> None: ...

    def quarantine(self, principal: Principal, dataset: str, load_id: str, plan: LoadPlan, content: dict[str, Any],
                   contract: ContractReport) -> None: ...

    def record(self, principal: Principal, dataset: str, load_id: str, version: int, rows: int,
               lineage: dict[str, Any], *, quarantined: int = 0) -> dict[str, Any]: ...
