"""The DP budget ledger: reserve before a query runs, never refund, never overspend.

    budgets.reserve(principal, ["bank_loans"], Budget.of("0.1"), job_id=..., kind="query")

* **Before the run.** :meth:`Queries.answer` reserves the query's (ε, δ) after planning and
  before the engine runs; a job that fails afterwards keeps its charge (no refunds: a failure
  can depend on the data, and a refund would make that dependence free).
* **Concurrency-safe.** A reservation locks its budget rows (``SELECT ... FOR UPDATE`` on
  PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), re-reads what was spent, and
  adds the charge in exact arithmetic (:class:`dp.budget.Budget`, fractions) — the ledger's
  sum and the head always agree exactly. Several datasets are locked in name order.
* **One budget per dataset**, shared by all tenants (colluding tenants cannot pool), unless
  the policy gives tenants shares (``per_tenant``); tenants without a share draw on what the
  shares leave. ``period: month|year`` restarts the budget each calendar period (UTC).
* **Audited** in the same transaction (``budget.reserved``), with ε and δ as exact text.
* **Exact repeats** (same engine SQL, same snapshot versions, same ε) return the answer the
  ledger stored for the first one: averaging repeated answers gains nothing and costs nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dp.budget import Budget, from_text, to_fraction
from policies import ANY_TENANT, Policy

from ..auth import Principal, Role
from ..catalog.db import BudgetCharge, BudgetHead, Export, Job
from ..catalog.states import under_review
from ..context import Context, get_dataset, stewards_of
from ..errors import BudgetExhausted, Forbidden, InvalidInput, NotFound
from .periods import period_key
from .release_budget import ReleaseLedger

SHARED = "*"


def _frac_text(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}"


def scope_budget(policy: Policy, tenant: str) -> tuple[str, Budget]:
    """The scope a tenant draws from and that scope's total (ε, δ)."""
    if policy.dp is None:
        raise InvalidInput("the dataset's policy declares no DP budget")
    b = policy.dp.budget
    total = Budget.of(b.epsilon, b.delta)
    shares = {t: to_fraction(v) for t, v in b.per_tenant.items()}
    if tenant in shares:
        return tenant, total.scaled(shares[tenant])
    return SHARED, total.scaled(1 - sum(shares.values(), Fraction(0)))


def _scope_total(policy: Policy, scope: str) -> Budget:
    assert policy.dp is not None
    b = policy.dp.budget
    total = Budget.of(b.epsilon, b.delta)
    shares = {t: to_fraction(v) for t, v in b.per_tenant.items()}
    return total.scaled(shares[scope] if scope in shares else 1 - sum(shares.values(), Fraction(0)))


def query_key(engine_sql: str, versions: dict[str, int], epsilon: Fraction, delta: Fraction) -> str:
    text = json.dumps({"sql": engine_sql, "versions": sorted(versions.items()), "epsilon": _frac_text(epsilon),
                       "delta": _frac_text(delta)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Budgets:
    def __init__(self, ctx: Context, manifests: Any) -> None:
        self.ctx = ctx
        self._manifests = manifests
        #: the sdc release budget (distinct populations), shown beside the ε budget
        self.releases = ReleaseLedger(manifests)

    def _policy(self, dataset: str) -> Policy:
        return self._manifests(dataset).build_policy()

    def _ensure_heads(self, keys: list[tuple[str, str, str]]) -> None:
        for dataset, period, scope in keys:
            with self.ctx.db.read() as s:
                if s.get(BudgetHead, (dataset, period, scope)) is not None:
                    continue
            try:
                with self.ctx.db.transaction() as s:
                    if s.get(BudgetHead, (dataset, period, scope)) is None:
                        s.add(BudgetHead(dataset=dataset, period=period, scope=scope, spent_epsilon="0",
                                         spent_delta="0"))
            except IntegrityError:
                pass  # created concurrently: fine

    def reserve(self, principal: Principal, datasets: list[str], charge: Budget, *, job_id: str | None,
                kind: str = "query", key: str | None = None, shared: bool = False,
                guard: Callable[[Session], None] | None = None) -> list[int]:
        """Charge ``charge`` to every dataset in ``datasets`` or to none; raise BudgetExhausted (a
        QueryRefused; rule ``dp_budget``) when any of them has too little left.

        ``shared`` charges the shared pool whoever asks (a release made once for every tenant,
        such as a synthetic table). ``guard`` runs inside the transaction once the budget rows
        are locked, before the charge; whatever it raises undoes the reservation (e.g. "already
        generated")."""
        if charge.is_zero():
            raise InvalidInput("a reservation must charge some epsilon")
        plans = []
        for name in sorted(set(datasets)):  # lock order: by name, so two jobs never deadlock
            policy = self._policy(name)
            if shared:
                if policy.dp is None:
                    raise InvalidInput("the dataset's policy declares no DP budget")
                scope, total = SHARED, _scope_total(policy, SHARED)
            else:
                scope, total = scope_budget(policy, principal.tenant)
            assert policy.dp is not None
            plans.append((name, period_key(policy.dp.budget.period), scope, total))
        self._ensure_heads([(n, p, s) for n, p, s, _ in plans])
        details = {"datasets": [p[0] for p in plans], "epsilon": _frac_text(charge.epsilon),
                   "delta": _frac_text(charge.delta), "kind": kind, "job_id": job_id, "query_key": key,
                   "scopes": {p[0]: p[2] for p in plans}, "periods": {p[0]: p[1] for p in plans}}
        ids: list[int] = []
        with self.ctx.recorded(principal, "budget.reserved", "dataset", ",".join(details["datasets"]), details) as s:
            heads = [s.execute(select(BudgetHead).where(
                BudgetHead.dataset == name, BudgetHead.period == period, BudgetHead.scope == scope)
                .with_for_update()).scalar_one() for name, period, scope, _ in plans]
            if guard is not None:  # under the locks, before anything is charged
                guard(s)
            for (name, period, scope, total), head in zip(plans, heads):
                spent = from_text(head.spent_epsilon, head.spent_delta)
                after = spent + charge
                if not after.fits(total):
                    left = total - spent if spent.fits(total) else Budget.zero()
                    raise BudgetExhausted(
                        f"the privacy budget of {name!r} has {float(left.epsilon):.6g} epsilon left "
                        f"(this query needs {float(charge.epsilon):.6g})",
                        details={"rule": "dp_budget", "dataset": name, "scope": scope, "period": period})
                head.spent_epsilon = _frac_text(after.epsilon)
                head.spent_delta = _frac_text(after.delta)
                row = BudgetCharge(dataset=name, period=period, scope=scope, tenant=principal.tenant,
                                   actor=principal.name, job_id=job_id, kind=kind,
                                   epsilon=_frac_text(charge.epsilon), delta=_frac_text(charge.delta), query_key=key)
                s.add(row)
                s.flush()
                ids.append(row.id)
        return ids

    def cached(self, key: str) -> dict[str, Any] | None:
        with self.ctx.db.read() as s:
            row = s.execute(select(BudgetCharge.result).where(BudgetCharge.query_key == key,
                                                              BudgetCharge.result.is_not(None))
                            .order_by(BudgetCharge.id).limit(1)).first()
        return row[0] if row and row[0] else None

    def store_result(self, charge_ids: list[int], result: dict[str, Any]) -> None:
        if not charge_ids:
            return
        with self.ctx.db.transaction() as s:
            row = s.get(BudgetCharge, charge_ids[0])
            if row is not None:
                row.result = result

    def show(self, principal: Principal, dataset: str) -> dict[str, Any]:
        """History and what remains, per scope and period. Stewards, auditors and admins see all
        tenants' charges; an enterprise user of an allowed tenant sees totals and its own."""
        with self.ctx.db.read() as s:
            ds = get_dataset(s, dataset)
            is_steward = principal.name in stewards_of(s, ds.id)
        policy = self._policy(dataset)
        if principal.role is Role.SUBJECT:  # a data subject reads its own activity, not ledgers
            raise Forbidden(f"{principal.name} is a data subject: budgets are for stewards, auditors and tenants")
        if principal.role is Role.ENTERPRISE:
            if not (ANY_TENANT in policy.tenants or principal.tenant in policy.tenants):
                raise NotFound(f"dataset {dataset!r} does not exist", details={"dataset": dataset})
        elif principal.role is Role.STEWARD and not is_steward:
            raise Forbidden(f"{principal.name} does not steward {dataset!r}")
        releases = self._release_view(principal, dataset) if policy.release_mode == "sdc" else None
        if policy.dp is None:
            return {"dataset": dataset, "budget": None, "scopes": [], "history": [], "release_budget": releases}
        b = policy.dp.budget
        with self.ctx.db.read() as s:
            heads = s.execute(select(BudgetHead).where(BudgetHead.dataset == dataset)).scalars().all()
            charges = s.execute(select(BudgetCharge).where(BudgetCharge.dataset == dataset)
                                .order_by(BudgetCharge.id)).scalars().all()
        current = period_key(b.period)
        scopes = [SHARED, *b.per_tenant]
        out_scopes = []
        for scope in scopes:
            total = _scope_total(policy, scope)
            head = next((h for h in heads if h.period == current and h.scope == scope), None)
            spent = from_text(head.spent_epsilon, head.spent_delta) if head else Budget.zero()
            left = total - spent if spent.fits(total) else Budget.zero()
            out_scopes.append({"scope": scope, "period": current, "total": total.to_dict(), "spent": spent.to_dict(),
                               "remaining": left.to_dict()})
        budget = {"epsilon": str(b.epsilon), "delta": str(b.delta), "period": b.period,
                  "per_tenant": {k: str(v) for k, v in b.per_tenant.items()}}
        if principal.role is Role.ENTERPRISE:
            return {"dataset": dataset, "budget": budget, "history": None, "release_budget": releases,
                    "scopes": self._enterprise_scopes(policy, charges, current)}
        history = [{"id": c.id, "at": c.created_at.isoformat() if c.created_at else None, "tenant": c.tenant,
                    "actor": c.actor, "job_id": c.job_id, "kind": c.kind, "period": c.period, "scope": c.scope,
                    "epsilon": from_text(c.epsilon, c.delta).to_dict()["epsilon"],
                    "delta": from_text(c.epsilon, c.delta).to_dict()["delta"], "cached_answer": c.result is not None}
                   for c in charges]
        return {"dataset": dataset, "budget": budget, "scopes": out_scopes, "history": history,
                "release_budget": releases}

    def _release_view(self, principal: Principal, dataset: str) -> dict[str, Any]:
        """The sdc release budget: populations used this period (an enterprise: its own tenant's,
        not counting jobs under review) and the limits."""
        with self.ctx.db.read() as s:
            if principal.role is not Role.ENTERPRISE:
                return self.releases.show(s, dataset, None)
            hidden = {j.id for j, e in s.execute(select(Job, Export).outerjoin(Export, Export.job_id == Job.id)
                                                 .where(Job.tenant == principal.tenant)).all() if under_review(j, e)}
            return self.releases.show(s, dataset, principal.tenant, exclude_jobs=hidden)

    def _enterprise_scopes(self, policy: Policy, charges: list[BudgetCharge], current: str) -> list[dict[str, Any]]:
        """What an enterprise sees: per scope, this period's totals over charges of jobs the stewards
        have decided, and never one charge or one job's spending. A job under review could
        otherwise count its queries into the total it can watch (ARCHITECTURE.md, "Channels before
        approval"); so could any job of any tenant sharing the scope."""
        with self.ctx.db.read() as s:
            ids = {c.job_id for c in charges if c.job_id}
            jobs = {j.id: j for j in s.execute(select(Job).where(Job.id.in_(ids))).scalars()} if ids else {}
            exports = {e.job_id: e for e in s.execute(select(Export).where(Export.job_id.in_(ids))).scalars()} \
                if ids else {}
        hidden = {i for i, j in jobs.items() if under_review(j, exports.get(i))}
        assert policy.dp is not None
        out = []
        for scope in [SHARED, *policy.dp.budget.per_tenant]:
            total = _scope_total(policy, scope)
            spent = Budget.zero()
            for c in charges:
                if c.period == current and c.scope == scope and c.job_id not in hidden:
                    spent = spent + from_text(c.epsilon, c.delta)
            left = total - spent if spent.fits(total) else Budget.zero()
            out.append({"scope": scope, "period": current, "total": total.to_dict(), "spent": spent.to_dict(),
                        "remaining": left.to_dict(), "jobs_under_review_not_counted": True})
        return out

