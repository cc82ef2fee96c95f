"""The broker's choke point: every query a job asks goes through :meth:`Queries.answer`.

check policy → plan (sqlglot) → the release mode's lookup and reservation → run on the pinned
snapshots → gate (release mode) → the mode's record, in the audit transaction, and only then is
the result handed back to the sandbox. A refusal is audited too. The modes are one registry
(:mod:`.modes`): this module has no per-mode branch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy.orm import Session

from policies import check_access, query_decision

from ..auth import Principal
from ..catalog.db import JobQuery
from ..context import Context, grade_allowances
from ..errors import AccessRefused, InternalError, NotFound, QueryRefused, TwhError
from ..gate import GatedResult, TableInfo, plan_query, run_query
from ..gate.differencing import DifferencingGuard
from ..tables.snapshot import Snapshot
from .budget import Budgets
from .modes import Ask, build_modes, mode_key

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
        self.guard = DifferencingGuard.for_warehouse(ctx.db, ctx.settings.home, ctx.settings.secrets_dir,
                                                      shared=ctx.settings.shared_root)
        #: the sdc mode's release budget (distinct populations per tenant and period)
        self.releases = self.budgets.releases
        #: release mode -> what happens around a gated run (lookup, reserve, record): one registry
        self.modes = build_modes(self.guard, self.releases, self.budgets)

    def answer(self, principal: Principal, job_id: str, purpose: str, snapshots: Mapping[str, Snapshot],
               sql: str) -> GatedResult:
        """Plan, run, gate and record one query over the job's pinned snapshots."""
        if not isinstance(sql, str) or not sql.strip():
            raise QueryRefused("the query is empty", details={"rule": "parse"})
        if len(sql) > MAX_SQL_CHARS:
            raise QueryRefused(f"the query is longer than {MAX_SQL_CHARS} characters", details={"rule": "parse"})
        sql_sha = hashlib.sha256(sql.encode("utf-8", "replace")).hexdigest()
        versions: dict[str, int] = {}
        allowed: dict[str, frozenset[str]] = {}

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
            with self.ctx.db.read() as s:
                allowed[name] = grade_allowances(s, name)
            graded = query_decision(manifest.grade, policy.release_mode, allowed[name])
            if not graded.allowed:  # core data: nothing leaves, not even aggregates (GB/T 43697)
                raise QueryRefused(f"{name}: {graded.reason}", details={"rule": graded.rule, "dataset": name})
            versions[name] = snap.version
            return TableInfo(name=name, policy=policy, columns=tuple(c.name for c in manifest.columns),
                             categories=tuple((c.name, tuple(c.categories)) for c in manifest.columns
                                              if c.categories))

        try:
            plan = plan_query(sql, lookup)
            for name in plan.tables:  # a join's release mode must suit every dataset's grade too
                graded = query_decision(self._manifests(name).grade, plan.release_mode, allowed.get(name, ()))
                if not graded.allowed:
                    raise QueryRefused(f"{name}: {graded.reason}", details={"rule": graded.rule, "dataset": name})
            mode = self.modes.get(mode_key(plan))
            if mode is None:
                raise InternalError(f"no broker mode for release mode {plan.release_mode!r}")
            ask = Ask(principal, job_id, plan, versions, snapshots)
            repeat = mode.lookup(ask)
            if repeat is not None:
                # An exact repeat gets the stored answer: nothing runs, nothing new leaves.
                self._record(principal, job_id, sql, sql_sha, versions, "released",
                             {"mode": mode.name, "cached": True, "released_groups": repeat.released_groups,
                              "suppressed_groups": repeat.suppressed_groups, "decisions": repeat.decisions})
                return repeat
            held = mode.reserve(ask)
            mode.prepare(ask)
            result = run_query(plan, {t: snapshots[t] for t in plan.tables}, engine=self.ctx.settings.engine,
                               timeout_s=QUERY_TIMEOUT_S, copies_dir=self.ctx.settings.home / BOUNDED_COPIES)
            mode.after_run(ask, held, result)
        except TwhError as exc:
            self._record(principal, job_id, sql, sql_sha, versions, "refused",
                         {"code": exc.code, "reason": exc.message, "rule": exc.details.get("rule")})
            raise
        details = {"mode": mode.name, "released_groups": result.released_groups,
                   "suppressed_groups": result.suppressed_groups, "decisions": result.decisions}
        answer: list[GatedResult] = []

        def in_transaction(s: Session) -> None:
            final, more = mode.record(s, ask, result)  # raises to refuse: nothing of this transaction commits
            details.update(more)
            answer.append(final)

        try:
            self._record(principal, job_id, sql, sql_sha, versions, "released", details, guard=in_transaction)
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
