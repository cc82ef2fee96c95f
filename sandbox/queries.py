"""The broker's choke point: every query a job asks goes through :meth:`Queries.answer`.

check policy → plan (sqlglot) → run on the pinned snapshots → gate (release mode) → audit,
and only then is the result handed back to the sandbox. A refusal is audited too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from policies import check_access

from .auth import Principal
from .context import Context
from .db import JobQuery
from .errors import AccessRefused, NotFound, QueryRefused, TwhError
from .gate import GatedResult, TableInfo, plan_query, run_query
from .snapshot import Snapshot

MAX_SQL_CHARS = 20_000
#: a query running longer than this is stopped and refused (rule ``timeout``)
QUERY_TIMEOUT_S = 60.0


class Queries:
    def __init__(self, ctx: Context, manifests: Any) -> None:
        self.ctx = ctx
        self._manifests = manifests  # name -> DatasetManifest (a callable)

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
            return TableInfo(name=name, policy=policy, columns=tuple(c.name for c in manifest.columns))

        try:
            plan = plan_query(sql, lookup)
            result = run_query(plan, {t: snapshots[t] for t in plan.tables}, engine=self.ctx.settings.engine,
                               timeout_s=QUERY_TIMEOUT_S)
        except TwhError as exc:
            self._record(principal, job_id, sql, sql_sha, versions, "refused",
                         {"code": exc.code, "reason": exc.message, "rule": exc.details.get("rule")})
            raise
        details = {
            "mode": result.mode,
            "released_groups": result.released_groups,
            "suppressed_groups": result.suppressed_groups,
            "decisions": result.decisions,
        }
        self._record(principal, job_id, sql, sql_sha, versions, "released", details)
        return result

    def _record(self, principal: Principal, job_id: str, sql: str, sql_sha: str, versions: dict[str, int],
                outcome: str, details: dict[str, Any]) -> None:
        audit_details = {"sql": sql, "sql_sha256": sql_sha, "versions": versions, "outcome": outcome, **details}
        with self.ctx.recorded(principal, f"query.{outcome}", "job", job_id, audit_details) as s:
            s.add(JobQuery(job_id=job_id, sql=sql, sql_sha256=sql_sha, versions=versions, outcome=outcome,
                           details=details))
