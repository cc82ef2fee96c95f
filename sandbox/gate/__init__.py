"""The query gate: the only way an analyst's SQL reaches warehouse data.

    plan = plan_query(sql, lookup)          # parse, check against policies, rewrite (sqlglot)
    result = run_query(plan, snapshots)     # DuckDB over pinned snapshots, then release (sdc)
    result.to_dict()                        # the broker's response body

``plan_query`` raises :class:`~sandbox.errors.QueryRefused` with ``details["rule"]`` one of
:data:`RULES`; ``run_query`` raises ``QueryRefused`` (timeout, resource_limit,
engine_rejected) or :class:`~sandbox.errors.InternalError`.
"""

import logging

from .check import plan_query
from .engine import ENGINES, GatedResult, open_connection, run_query
from .modes import RELEASE_MODES
from .plan import RULES, AggregateSpec, BucketRef, ColumnRef, HiddenColumn, QueryPlan, TableInfo
from .release import Released, ReleaseMode, SdcRelease, json_safe

# sqlglot logs unparsed statements (the user's SQL text) at WARNING; the gate reports refusals itself.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

__all__ = [
    "ENGINES",
    "RELEASE_MODES",
    "RULES",
    "AggregateSpec",
    "BucketRef",
    "ColumnRef",
    "GatedResult",
    "HiddenColumn",
    "QueryPlan",
    "ReleaseMode",
    "Released",
    "SdcRelease",
    "TableInfo",
    "json_safe",
    "open_connection",
    "plan_query",
    "run_query",
]
