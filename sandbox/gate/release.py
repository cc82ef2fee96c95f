"""Release modes: what of a query's groups may leave, and in what form.

A mode receives the engine's rows (output columns followed by the plan's hidden counts) and
returns the rows that may leave, JSON-safe, with the hidden counts removed. Modes are picked
from :data:`RELEASE_MODES` by ``Policy.release_mode``, so differential privacy plugs in as one
more entry (it will also need the planner to add clamping and contribution bounds; the plan
carries ``release_mode`` for that reason).

``sdc`` — statistical disclosure control by threshold: a group is released only if it has at
least ``min_group_size`` privacy units (rows when no unit is declared), counted for the group
as a whole and for every aggregated column's non-NULL values; other groups are suppressed and
only their number is reported.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the plan module is typing-only here: modes see plans, never build them
    from .plan import QueryPlan


@dataclass(frozen=True)
class Released:
    """What a mode lets out of one query."""

    rows: list[list[Any]]
    released_groups: int
    suppressed_groups: int
    #: the per-query release decision for the audit and the response (no data values)
    decision: dict[str, Any]


class ReleaseMode(Protocol):
    name: str

    def release(self, plan: QueryPlan, rows: Iterable[Sequence[Any]]) -> Released: ...


def json_safe(value: Any) -> Any:
    """A value as JSON can carry it: ints, floats, strings, booleans, None, lists, dicts.

    Non-finite floats become None (JSON has no NaN); dates and times become ISO 8601 strings;
    decimals become ints when integral, floats otherwise.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return str(value)


class SdcRelease:
    """Threshold suppression (see the module docstring)."""

    name = "sdc"

    def release(self, plan: QueryPlan, rows: Iterable[Sequence[Any]]) -> Released:
        width = len(plan.output_columns)
        expected = width + len(plan.hidden_columns)
        kept: list[list[Any]] = []
        suppressed = 0
        for row in rows:
            if len(row) != expected:  # a plan/engine mismatch: never guess which column is which
                raise ValueError("engine row width does not match the plan")
            # COUNT never returns NULL, but treat one as 0: fail closed.
            size = min(int(n) if n is not None else 0 for n in row[width:])
            if size >= plan.min_group_size:
                kept.append([json_safe(v) for v in row[:width]])
            else:
                suppressed += 1
        decision = {
            "rule": "min_group_size",
            "threshold": plan.min_group_size,
            "unit": [str(u) for u in plan.unit_columns] or "rows",
            "released": len(kept),
            "suppressed": suppressed,
        }
        return Released(kept, len(kept), suppressed, decision)


#: release_mode (from the policy) -> mode. "dp" will be added here.
RELEASE_MODES: dict[str, ReleaseMode] = {"sdc": SdcRelease()}
