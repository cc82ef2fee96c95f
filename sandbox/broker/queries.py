"""The broker's choke point: every query a job asks goes through :meth:`Queries.answer`.

check policy → plan (sqlglot) → run on the pinned snapshots → gate (release mode) → audit,
and only then is the result handed back to the sandbox. A refusal is audited too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from dp.budget import Budget
from policies import check_access

from ..auth import Principal
from ..catalog.db import JobQuery
from ..context import Context
from ..errors import AccessRefused, NotFound, QueryRefused, TwhError
from ..gate import GatedResult, TableInfo, plan_query, run_query
from ..gate.differencing import DifferencingGuard, fingerprint
from ..tables.snapshot import Snapshot
from .budget import Budgets, query_key

MAX_SQL_CHARS = 20_000
#: a query running longer than this is stopped and refused (rule ``timeout``)
QUERY_TIMEOUT_S = 60.0
#: under the warehouse home: dp mode's bounded copies of snapshots (sandbox/gate/dp_bounding.py)
BOUNDED_COPIES = "bounded"


class Queries:
    def __init__(self, ctx: Context, manifests: Any) -> None:
        self.ctx = ctx
        self._manifests = manifests  # name -> DatasetManifest (a callable)
        self.budgets = Budgets(ctx, manifests)
        #: the sdc mode's differencing ledger and answer cache (see sandbox/gate/differencing.py)
        self.guard = DifferencingGuard.for_warehouse(ctx.db, ctx.settings.home, ctx.settings.secrets_dir)

    def answer(self, principal: Principal, job_id: str, purpose: str, snapshots: Mapping[str, Snapshot],
               sql: str) -> GatedResult:
        """Plan, run, gate and record one query over the job's pinned snapshots."""
        if not isinstance(sql, str) or not sql.strip():
            raise QueryRefused("the query is empty", details={"rule": "parse"})
        if len(sql) > MAX_SQL_CHARS:
            raise QueryRefused(f"the query is longer than {MAX_SQL_CHARS} characters", details={"rule": "parse"})
        sql_sha = hashlib.sha256(sql.encode("utf-8", "replace")).hexdigest()
        versions: dict[str, int] = {}

        def lookup(name: str) -> TableInfo:
            # A job may read only the datasets its job.yaml declared (and whose access was checked).
            snap = snapshots.get(name)
            if snap is None:
                raise NotFound(f"dataset {name!r} is not among this job's datasets", details={"dataset": name})
            manifest = self._manifests(name)
            policy = manifest.build_policy()
            decision = check_access(policy, principal.tenant, purpose)
            if not decision.allowed:
                raise AccessRefused(decision.reason, details={"rule": decision.rule, "dataset": name})
            versions[name] = snap.version
            return TableInfo(name=name, policy=policy, columns=tuple(c.name for c in manifest.columns),
                             categories=tuple((c.name, tuple(c.categories)) for c in manifest.columns
                                              if c.categories))

        fp: str | None = None
        try:
            plan = plan_query(sql, lookup)
            if plan.release_mode == "sdc":
                # An exact repeat gets the stored answer: nothing runs, nothing new leaves.
                fp = fingerprint(plan, versions)
                repeat = self.guard.cached(fp)
                if repeat is not None:
                    self._record(principal, job_id, sql, sql_sha, versions, "released",
                                 {"mode": "sdc", "cached": True, "released_groups": repeat.released_groups,
                                  "suppressed_groups": repeat.suppressed_groups, "decisions": repeat.decisions})
                    return repeat
            if plan.release_mode == "dp":
                # Reserve BEFORE running (no refund if the run fails); an exact repeat gets the
                # ledger's stored answer instead of fresh noise, and costs nothing.
                key = query_key(plan.engine_sql, versions, plan.dp.epsilon, plan.dp.delta)
                cached = self.budgets.cached(key)
                if cached is not None:
                    result = GatedResult(**{**cached, "columns": list(plan.dp.names)})
                    self._record(principal, job_id, sql, sql_sha, versions, "released",
                                 {"mode": "dp", "cached": True, "released_groups": result.released_groups,
                                  "suppressed_groups": 0, "decisions": result.decisions})
                    return result
                charge_ids = self.budgets.reserve(principal, list(plan.dp.charged),
                                                  Budget(plan.dp.epsilon, plan.dp.delta), job_id=job_id, key=key)
            if fp is not None:  # a new table version's unit dictionary (once; its own transaction)
                self.guard.prepare(plan, snapshots)
            result = run_query(plan, {t: snapshots[t] for t in plan.tables}, engine=self.ctx.settings.engine,
                               timeout_s=QUERY_TIMEOUT_S, copies_dir=self.ctx.settings.home / BOUNDED_COPIES)
        except TwhError as exc:
            self._record(principal, job_id, sql, sql_sha, versions, "refused",
                         {"code": exc.code, "reason": exc.message, "rule": exc.details.get("rule")})
            raise
        if plan.release_mode == "dp":
            self.budgets.store_result(charge_ids, result.to_dict())
        details = {
            "mode": result.mode,
            "released_groups": result.released_groups,
            "suppressed_groups": result.suppressed_groups,
            "decisions": result.decisions,
        }
        if fp is None:
            self._record(principal, job_id, sql, sql_sha, versions, "released", details)
            return result
        # sdc: the differencing check and the ledger update commit with the query.released record.
        answer: list[GatedResult] = []
        try:
            self._record(principal, job_id, sql, sql_sha, versions, "released", details,
                         guard=lambda s: answer.append(self.guard.record(s, plan, result, fp, snapshots)))
        except QueryRefused as exc:
            self._record(principal, job_id, sql, sql_sha, versions, "refused",
                         {"code": exc.code, "reason": exc.message, "rule": exc.details.get("rule")})
            raise
        return answer[0]

    def _record(self, principal: Principal, job_id: str, sql: str, sql_sha: str, versions: dict[str, int],
                outcome: str, details: dict[str, Any], guard: Callable[[Session], None] | None = None) -> None:
        if outcome == "refused" and not self.ctx.audit.refusals.admit(
                principal.actor, job_id, sql_sha, details.get("code"), details.get("rule")):
            return  # past the job's cap: counted into its one summary record (sandbox/audit/caps.py)
        audit_details = {"sql": sql, "sql_sha256": sql_sha, "versions": versions, "outcome": outcome, **details}
        with self.ctx.recorded(principal, f"query.{outcome}", "job", job_id, audit_details) as s:
            if guard is not None:
                guard(s)  # raises to refuse: nothing of this transaction commits
            s.add(JobQuery(job_id=job_id, sql=sql, sql_sha256=sql_sha, versions=versions, outcome=outcome,
                           details=details))
