"""Statistical disclosure control of one query's cells: primary rules, then secondary suppression.

A *cell* is one result row (one group). The engine computes, next to the user's aggregates,
the cell's sizes (rows, privacy units, units with a known value), and for every ``SUM``/``AVG``
the largest per-unit |contributions| and their total (:mod:`.check`'s rewrite). From those:

Primary rules (ACRO's rules and defaults, ``acro/sdcchecks.py``; settings in the policy's
``sdc:`` block, the threshold in ``output.min_group_size``):

``min_group_size``
    fewer than ``threshold`` units (rows without a unit) in the cell, or behind any aggregate.
``dominance``
    (n, k): the ``n`` largest contributions are at least ``k`` of the total (ACRO ``NKCheck``:
    ``top_n / total >= k``; a zero total is not dominated).
``p_percent``
    ``(total - top1 - top2) / top1 < p``: the second largest contributor could estimate the
    largest to within p% (ACRO ``PPercentCheck``; with ``top1 == 0`` the ratio is
    ``total - top1 - top2``, as in ACRO, so an all-zero sum is disclosive).
``zeros``
    a cell with no units whose categories are known (ACRO ``PresenceOfZeroCheck``). Empty cells
    never come back from ``GROUP BY``: they are the missing combinations of the table's grid,
    the product over grouped dimensions of the values seen in any row (suppressed ones too)
    and the dimension's declared categories. They are never shown; when zeros are disclosive
    they count as suppressed (so "suppressed" cannot be told from "empty") and secondary
    suppression protects them like any suppressed cell.

Contributions are magnitudes (``ABS``): ACRO declares dominance undefined for negative values;
for non-negative data the two agree, and for signed data a large negative unit is as
dominant as a large positive one.

Secondary suppression (our own; ACRO has none): the analyst can ask for any margin (a query
grouping by fewer dimensions, or none), so a suppressed cell that is the only one suppressed
along a *line* of the table -- the cells that share all coordinates but one, whose sum is a
margin -- is that margin minus the released cells. Heuristic, iterated to a fixed point: a line
with exactly one suppressed cell (empty cells counted when zeros are disclosive) gets its
smallest released cell suppressed too (not one that is alone on another of its lines: such a
cell is itself a margin). Then every line, and so every margin of any order
(which contains a line through each of its suppressed cells), holds none or at least two
suppressed cells, where the table allows it. Limits: this stops exact recovery by subtracting one margin; it does not
compute protection intervals (an LP audit could still narrow a suppressed count), and it sees
one query's cells -- the differencing guard compares populations across queries.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies import SdcRules

#: Rules that may suppress a cell, in the order they are reported.
SDC_RULES: tuple[str, ...] = ("min_group_size", "dominance", "p_percent", "zeros", "secondary")


@dataclass(frozen=True)
class Contribution:
    """One ``SUM``/``AVG`` of a cell: the total of |contributions| and the largest ones, descending."""

    total: float
    top: tuple[float, ...]


@dataclass(frozen=True)
class Cell:
    key: tuple[Any, ...]
    #: the smallest of the cell's unit (or row) counts
    size: int
    contributions: tuple[Contribution, ...] = ()


@dataclass(frozen=True)
class Assessment:
    """Which cells leave. Counts per rule may overlap (a cell can fail several rules)."""

    #: indices of the cells released, in input order
    released: list[int]
    #: indices of the cells suppressed (primary or secondary)
    suppressed: set[int]
    #: per rule, how many cells it suppressed (``zeros``: empty cells, counted when disclosive)
    by_rule: dict[str, int] = field(default_factory=dict)
    #: empty cells of the table's grid (not in ``suppressed``: they have no row)
    zeros: int = 0
    #: per cell, the primary rules it failed (for tests and reviewers; never released)
    flags: list[list[str]] = field(default_factory=list)


def dominated(c: Contribution, n: int, k: float) -> bool:
    """ACRO ``NKCheck``: the ``n`` largest contributions make up at least ``k`` of the total."""
    if not c.total > 0:
        return False
    return math.fsum(c.top[:n]) >= k * c.total


def p_percent(c: Contribution, p: float) -> bool:
    """ACRO ``PPercentCheck``: what the others add is under ``p`` of the largest."""
    if p <= 0:
        return False
    top1 = c.top[0] if c.top else 0.0
    rest = c.total - math.fsum(c.top[:2])
    ratio = rest if top1 == 0 else rest / top1
    return ratio < p


def primary(cell: Cell, threshold: int, rules: SdcRules) -> list[str]:
    """The primary rules ``cell`` fails (empty: it may be released unless secondary suppression says no)."""
    failed = []
    if cell.size < threshold:
        failed.append("min_group_size")
    if any(dominated(c, rules.dominance_n, rules.dominance_k) for c in cell.contributions):
        failed.append("dominance")
    if any(p_percent(c, rules.p_ratio) for c in cell.contributions):
        failed.append("p_percent")
    return failed


def grid_keys(cells: Sequence[Cell], categories: Sequence[Iterable[Any] | None]) -> list[set[Any]]:
    """Per grouped dimension, the values of the table's grid: seen in any cell, or declared."""
    ndims = len(categories)
    keys: list[set[Any]] = [set(c) if c is not None else set() for c in categories]
    for cell in cells:
        for d in range(ndims):
            keys[d].add(cell.key[d])
    return keys


def secondary(cells: Sequence[Cell], suppressed: set[int], keys: Sequence[set[Any]],
              zeros_disclosive: bool) -> set[int]:
    """Cells to suppress besides ``suppressed`` so that no line holds exactly one suppressed cell."""
    ndims = len(keys)
    if ndims == 0 or not suppressed and not zeros_disclosive:
        return set()
    # Every line: (its dimension, the cells on it), a line being the cells equal but in that dimension.
    lines: list[tuple[int, list[int]]] = []
    for d in range(ndims):
        by_rest: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, cell in enumerate(cells):
            by_rest[cell.key[:d] + cell.key[d + 1:]].append(i)
        lines.extend((d, members) for members in by_rest.values())
    # A cell alone on some line *is* that line's margin: suppressing it hides nothing (its value
    # is the margin), so it cannot protect another cell. Not a candidate.
    lonely = {members[0] for _, members in lines if len(members) == 1}
    out = set(suppressed)
    changed = True
    while changed:
        changed = False
        for d, members in lines:
            zeros = len(keys[d]) - len(members) if zeros_disclosive else 0
            hidden = zeros + sum(1 for i in members if i in out)
            if hidden != 1:
                continue
            candidates = [i for i in members if i not in out and i not in lonely]
            if not candidates:
                # Either the line's margin is the suppressed cell itself (the margin's own query
                # applies the same primary rules to the same units), or every other cell is some
                # margin already: no choice within this query helps. The differencing guard sees
                # those margins' populations differ by the suppressed cell's units.
                continue
            # Smallest first; ties by key, never by row order: the same query (or a reworded
            # one) must suppress the same cells, or two answers together would show them all.
            out.add(min(candidates, key=lambda i: (cells[i].size, _order(cells[i].key))))
            changed = True
    return out - suppressed


def _order(key: tuple[Any, ...]) -> tuple[tuple[bool, str, str], ...]:
    """A total order on group keys of any types (NULLs last), independent of row order."""
    return tuple((v is None, type(v).__name__, str(v)) for v in key)


def assess(cells: Sequence[Cell], threshold: int, rules: SdcRules,
           categories: Sequence[Iterable[Any] | None]) -> Assessment:
    """Primary rules on every cell, then secondary suppression over the table's lines."""
    by_rule = dict.fromkeys(SDC_RULES, 0)
    suppressed: set[int] = set()
    flags = []
    for i, cell in enumerate(cells):
        failed = primary(cell, threshold, rules)
        flags.append(failed)
        for rule in failed:
            by_rule[rule] += 1
        if failed:
            suppressed.add(i)
    keys = grid_keys(cells, categories)
    zeros = math.prod(len(k) for k in keys) - len(cells) if keys else 0
    if rules.zeros_disclosive:
        by_rule["zeros"] = zeros
    extra = secondary(cells, suppressed, keys, rules.zeros_disclosive)
    by_rule["secondary"] = len(extra)
    suppressed |= extra
    released = [i for i in range(len(cells)) if i not in suppressed]
    return Assessment(released, suppressed, by_rule, zeros, flags)
