"""Release modes: what of a query's groups may leave, and in what form.

A mode receives the engine's rows (output columns followed by the plan's hidden counts) and
returns the rows that may leave, JSON-safe, with the hidden counts removed. Modes are picked
from :data:`.modes.RELEASE_MODES` by ``Policy.release_mode``, so differential privacy plugs in as one
more entry (it will also need the planner to add clamping and contribution bounds; the plan
carries ``release_mode`` for that reason).

``sdc`` — statistical disclosure control (:mod:`.sdc`): a group is released only if it has at
least ``min_group_size`` privacy units (rows when no unit is declared), counted for the group
as a whole and for every aggregated column's non-NULL values, no ``SUM``/``AVG`` of it is
dominated (n, k) or fails the p% rule, and secondary suppression does not need it to protect
another; suppressed groups are dropped and only their number is reported, per rule. Empty
cells of the table count as suppressed when the policy says zeros are disclosive.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .cellkey import round_count, round_significant
from .sdc import SDC_RULES, Assessment, Cell, Contribution, assess

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
    #: output names when they differ from the plan's engine columns (the dp mode's)
    columns: tuple[str, ...] = ()
    #: further decisions, one per rule that may suppress (e.g. how many cells dominance took)
    rule_decisions: tuple[dict[str, Any], ...] = ()
    #: internal, never released: per released row, per unit column of the plan, the cell's
    #: ``hash(unit)`` values (the differencing guard's populations); empty when the plan collects none
    populations: list[tuple[Any, ...]] = field(default_factory=list, repr=False)
    #: internal, never released: per released row, a digest of the rows in the cell (its record keys'
    #: sum and count): what the sdc release budget counts
    identities: list[str] = field(default_factory=list, repr=False)


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
    """Threshold, dominance, p%, zeros and secondary suppression (see the module docstring)."""

    name = "sdc"

    def release(self, plan: QueryPlan, rows: Iterable[Sequence[Any]]) -> Released:
        kept_rows: list[Sequence[Any]] = []
        verdict = self.assess(plan, rows, kept_rows)
        units = plan.hidden_indices("units")
        kept = [[json_safe(v) for v in published(plan, kept_rows[i])] for i in verdict.released]
        identities = [cell_identity(plan, kept_rows[i]) for i in verdict.released]
        # each cell's hash(unit) values, as the engine gave them (numpy arrays from DuckDB): no copy
        populations = [tuple(() if kept_rows[i][u] is None else kept_rows[i][u] for u in units)
                       for i in verdict.released] if units else []
        suppressed = len(verdict.suppressed) + (verdict.zeros if plan.sdc.zeros_disclosive else 0)
        decision = {
            "rule": "sdc",
            "threshold": plan.min_group_size,
            "unit": [str(u) for u in plan.unit_columns] or "rows",
            "released": len(kept),
            "suppressed": suppressed,
        }
        # Per rule, how many cells it suppressed (a cell failing two rules counts for both).
        settings: dict[str, dict[str, Any]] = {
            "min_group_size": {"threshold": plan.min_group_size},
            "dominance": {"n": plan.sdc.dominance_n, "k": plan.sdc.dominance_k},
            "p_percent": {"p": plan.sdc.p_ratio},
            "zeros": {"disclosive": plan.sdc.zeros_disclosive},
        }
        rule_decisions = tuple({"rule": rule, "suppressed": verdict.by_rule[rule], **settings.get(rule, {})}
                               for rule in SDC_RULES)
        decision["perturbation"] = "cell_key" if plan.perturbation is not None else "none"
        return Released(kept, len(kept), suppressed, decision, rule_decisions=rule_decisions, populations=populations,
                        identities=identities)

    def assess(self, plan: QueryPlan, rows: Iterable[Sequence[Any]],
               seen: list[Sequence[Any]] | None = None) -> Assessment:
        """The SDC verdict on the engine's rows (``seen`` collects the rows, in order)."""
        expected = len(plan.output_columns) + len(plan.hidden_columns)
        sizes, keys = plan.hidden_indices("size"), plan.hidden_indices("key")
        tops, totals = plan.hidden_indices("top"), plan.hidden_indices("total")
        if len(tops) != len(totals):
            raise ValueError("plan has unpaired contribution columns")
        cells: list[Cell] = []
        for row in rows:
            if len(row) != expected:  # a plan/engine mismatch: never guess which column is which
                raise ValueError("engine row width does not match the plan")
            # COUNT never returns NULL, but treat one as 0: fail closed.
            size = min((int(n) if n is not None else 0 for n in (row[i] for i in sizes)), default=0)
            contributions = tuple(
                Contribution(float(row[t] or 0),
                             tuple(sorted((float(v) for v in row[m] or () if v is not None), reverse=True)))
                for m, t in zip(tops, totals)
            )
            cells.append(Cell(tuple(row[i] for i in keys), size, contributions))
            if seen is not None:
                seen.append(row)
        categories = plan.group_categories or (None,) * len(keys)
        return assess(cells, plan.min_group_size, plan.sdc, categories if keys else ())


_MOD64 = 1 << 64


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def cell_identity(plan: QueryPlan, row: Sequence[Any]) -> str:
    """A digest of which rows a released cell holds: the datasets, the sum of the rows' record keys
    and the row count. Same rows, same identity, whatever the query's wording."""
    ckeys = plan.hidden_indices("ckey")
    rows = next((i for i, h in zip(plan.hidden_indices("size"), plan.hidden) if h.name == "__twh_rows"), None)
    body = f"{','.join(sorted(plan.tables))}|{_int(row[ckeys[0]]) % _MOD64 if ckeys else 'nokey'}|" \
           f"{_int(row[rows]) if rows is not None else ''}"
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def published(plan: QueryPlan, row: Sequence[Any]) -> list[Any]:
    """A released row's output values: counts and sums perturbed by the cell-key method (when the
    plan says so), then rounded to the policy's precision. Group keys are left as they are."""
    out = list(row[: len(plan.output_columns)])
    spec = plan.perturbation
    ckeys = plan.hidden_indices("ckey")
    cell_key = _int(row[ckeys[0]]) if ckeys else 0
    width = len(plan.output_columns)
    by_kind: dict[tuple[str, Any], int] = {}
    for j, h in enumerate(plan.hidden):
        if h.kind in ("top", "nonnull"):
            by_kind[(h.kind, h.measure)] = width + j
    specs = {a.output: a for a in plan.aggregates}
    for i, name in enumerate(plan.output_columns):
        agg = specs.get(name)
        if agg is None or out[i] is None:
            continue
        value = out[i]
        if agg.func == "count":
            n = int(value)
            out[i] = spec.count(n, cell_key) if spec is not None else round_count(n, plan.count_base)
            continue
        integral = isinstance(value, int) or (isinstance(value, Decimal) and value == value.to_integral_value())
        x = float(value)
        if spec is None and integral and agg.func == "sum":  # an exact sum of integers stays an integer
            out[i] = int(round_significant(x, plan.significant_digits)) if abs(x) < 2 ** 53 else int(value)
            continue
        if spec is not None and agg.func in ("sum", "avg"):
            tops = row[by_kind[("top", agg.column)]] or ()
            noise = spec.magnitude(cell_key, sorted((abs(float(v)) for v in tops if v is not None), reverse=True))
            if agg.func == "avg":
                n = _int(row[by_kind[("nonnull", agg.column)]])
                noise = noise / n if n else 0.0
            x += noise
        out[i] = round_significant(x, plan.significant_digits)
    return out