"""Release modes at the broker: what happens around a gated run, one object per mode.

    mode = modes[mode_key(plan)]                   # "sdc:cell_key", "sdc:none" or "dp"
    answer = mode.lookup(ask)                      # a stored answer: nothing runs, nothing new leaves
    held = mode.reserve(ask)                       # before the run (dp: the ε charge, no refunds)
    mode.prepare(ask); result = run_query(...); mode.after_run(ask, held, result)
    final = mode.record(session, ask, result)      # in the query.released audit transaction; may refuse

:meth:`sandbox.broker.queries.Queries.answer` calls these in that order for every mode, so the
choke point has no per-mode branch. A new mode is one class and one registry entry.

* ``sdc:cell_key`` / ``sdc:none`` — repeats come from the differencing guard's answer store; the
  guard and the release budget (:mod:`.release_budget`) check and record the released cells in
  the audit transaction. The cell-key perturbation itself happens in the gate
  (:mod:`sandbox.gate.cellkey`), so both read the same pipeline.
* ``dp`` — repeats come from the budget ledger's stored result; ε is reserved before the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session

from dp.budget import Budget

from ..auth import Principal
from ..gate import GatedResult, QueryPlan
from ..gate.differencing import DifferencingGuard, fingerprint
from ..tables.snapshot import Snapshot
from .budget import Budgets, query_key
from .release_budget import ReleaseLedger


@dataclass(frozen=True)
class Ask:
    """One query being answered: who asks, for which job, the plan and the pinned snapshots."""

    principal: Principal
    job_id: str
    plan: QueryPlan
    versions: Mapping[str, int]
    snapshots: Mapping[str, Snapshot]


class BrokerMode(Protocol):
    name: str

    def lookup(self, ask: Ask) -> GatedResult | None: ...

    def reserve(self, ask: Ask) -> Any: ...

    def prepare(self, ask: Ask) -> None: ...

    def after_run(self, ask: Ask, held: Any, result: GatedResult) -> None: ...

    def record(self, s: Session, ask: Ask, result: GatedResult) -> tuple[GatedResult, dict[str, Any]]: ...


def mode_key(plan: QueryPlan) -> str:
    if plan.release_mode == "sdc":
        return "sdc:cell_key" if plan.perturbation is not None else "sdc:none"
    return plan.release_mode


class SdcMode:
    """Disclosure control; ``perturbed`` says whether the gate applied the cell-key method."""

    def __init__(self, name: str, guard: DifferencingGuard, ledger: ReleaseLedger) -> None:
        self.name = name
        self.guard = guard
        self.ledger = ledger

    def lookup(self, ask: Ask) -> GatedResult | None:
        return self.guard.cached(fingerprint(ask.plan, ask.versions))

    def reserve(self, ask: Ask) -> None:
        return None

    def prepare(self, ask: Ask) -> None:
        self.guard.prepare(ask.plan, ask.snapshots)  # a new table version's unit dictionary, once

    def after_run(self, ask: Ask, held: Any, result: GatedResult) -> None:
        return None

    def record(self, s: Session, ask: Ask, result: GatedResult) -> tuple[GatedResult, dict[str, Any]]:
        # the guard first: it locks the datasets' heads, under which the release budget counts too
        final = self.guard.record(s, ask.plan, result, fingerprint(ask.plan, ask.versions), ask.snapshots)
        charged = self.ledger.charge(s, ask.principal.tenant, ask.job_id, ask.plan.tables, result.identities)
        return final, {"release_budget": charged}


class DpMode:
    name = "dp"

    def __init__(self, budgets: Budgets) -> None:
        self.budgets = budgets

    @staticmethod
    def _key(ask: Ask) -> str:
        return query_key(ask.plan.engine_sql, dict(ask.versions), ask.plan.dp.epsilon, ask.plan.dp.delta)

    def lookup(self, ask: Ask) -> GatedResult | None:
        cached = self.budgets.cached(self._key(ask))
        return None if cached is None else GatedResult(**{**cached, "columns": list(ask.plan.dp.names)})

    def reserve(self, ask: Ask) -> list[int]:
        # BEFORE running, never refunded: a failed run has still seen the data
        return self.budgets.reserve(ask.principal, list(ask.plan.dp.charged),
                                    Budget(ask.plan.dp.epsilon, ask.plan.dp.delta), job_id=ask.job_id,
                                    key=self._key(ask))

    def prepare(self, ask: Ask) -> None:
        return None

    def after_run(self, ask: Ask, held: list[int], result: GatedResult) -> None:
        self.budgets.store_result(held, result.to_dict())

    def record(self, s: Session, ask: Ask, result: GatedResult) -> tuple[GatedResult, dict[str, Any]]:
        return result, {}


def build_modes(guard: DifferencingGuard, ledger: ReleaseLedger, budgets: Budgets) -> dict[str, BrokerMode]:
    """The registry: one entry per release mode the gate can plan."""
    return {"sdc:cell_key": SdcMode("sdc:cell_key", guard, ledger), "sdc:none": SdcMode("sdc:none", guard, ledger),
            "dp": DpMode(budgets)}
