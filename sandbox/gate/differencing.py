"""The differencing guard: no two releases may differ by a few privacy units.

A threshold on each cell does not stop ``Q(all) - Q(all but one)``. The guard keeps, per
dataset and across all tenants and versions, the *populations* (sets of privacy units) of every
cell the sdc mode released, as compressed bitmaps of unit ids, and refuses a query (rule
``differencing``) that would release a population ``S`` such that, for earlier released
populations ``T``, ``V`` (of the same datasets, or earlier cells of the same query):

``pair``
    ``0 < |S Δ T| < threshold``: ``q(S) - q(T)`` is a statistic of fewer than ``threshold``
    units. Catches all-vs-all-but-one (a ``WHERE`` that drops one firm), overlapping or shifted
    time windows, complements (``q(all) - q(T)`` with ``not T`` small), and the individual
    tracker ``q(A) - q(A and not B)``.
``tracker``
    ``0 < |W| < threshold`` with ``W = (S ∩ T) ∪ ((S ∪ T) Δ V)``, in either role (``S`` a part or
    the union): ``q(S) + q(T) - q(V)`` weighs exactly the units of ``W``. Catches the general
    tracker ``q(C or T) + q(C or not T) - q(all) = q(C)``, in any release order, and two cells
    of one query adding up to an earlier population but a few units.
``union``
    a query's released cells are also checked (and recorded) as one population, their union:
    their sum is derivable, so ``GROUP BY`` with one firm filtered out is caught against
    ``q(all)`` even when no single cell is close to anything.

Reworded filters (``age >= 30`` vs ``age > 29``) select the same units, so they are the same
population (``|S Δ T| = 0``): allowed, and nothing new is learnt. An exact repeat (same
canonical engine SQL on the same pinned versions) is answered from the stored earlier answer
without running (:func:`fingerprint`).

Not caught (documented in ARCHITECTURE.md): sums of three or more earlier populations
(reconstruction from many subset sums: that is what DP is for), differences of statistics
other than the populations (e.g. two measures), and datasets without a privacy unit (no unit
ids to compare). A refusal itself says "your population is within ``threshold`` of an earlier
one", no more than suppression does.

Populations are roaring bitmaps (``pyroaring``) over dense unit ids from one persisted
dictionary (:class:`~sandbox.db.UnitId`). Checks prune by cardinality (``|S Δ T| >= ||S| -
|T||``), so a ledger of many populations costs one intersection count per entry. Check and
record happen in the transaction that writes the ``query.released`` audit record, holding the
datasets' :class:`~sandbox.db.DifferencingHead` rows (``FOR UPDATE``; on SQLite ``BEGIN
IMMEDIATE`` already serialises writers), so two concurrent jobs cannot both slip through.
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyroaring import BitMap, FrozenBitMap
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from ..db import Database, DifferencingHead, ReleasedAnswer, ReleasedPopulation, UnitId
from ..errors import QueryRefused
from .engine import GatedResult
from .plan import QueryPlan

RULE = "differencing"


def fingerprint(plan: QueryPlan, versions: Mapping[str, int]) -> str:
    """The canonical identity of a query's answer: the generated engine SQL (aliases, case and
    quoting already normalised by the rewrite), the pinned versions and the release settings."""
    body = {"engine_sql": plan.engine_sql, "versions": {t: versions[t] for t in plan.tables},
            "mode": plan.release_mode, "threshold": plan.min_group_size, "sdc": plan.sdc.model_dump()}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class Entry:
    cardinality: int
    bitmap: FrozenBitMap
    digest: str


@dataclass
class Ledger:
    """Released populations of one dataset, ordered by cardinality (in-memory mirror)."""

    entries: list[Entry] = field(default_factory=list)
    cards: list[int] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)
    last_id: int = 0

    def add(self, entry: Entry) -> None:
        if entry.digest in self.digests:
            return
        at = bisect.bisect_left(self.cards, entry.cardinality)
        self.cards.insert(at, entry.cardinality)
        self.entries.insert(at, entry)
        self.digests.add(entry.digest)

    def window(self, low: int, high: int) -> list[Entry]:
        """Entries with ``low < cardinality < high``."""
        return self.entries[bisect.bisect_right(self.cards, low):bisect.bisect_left(self.cards, high)]


def entry_of(bitmap: BitMap | FrozenBitMap) -> Entry:
    frozen = FrozenBitMap(bitmap)
    return Entry(len(frozen), frozen, hashlib.sha256(frozen.serialize()).hexdigest())


def find_differencing(s: FrozenBitMap, ledgers: Sequence[Ledger], threshold: int) -> str | None:
    """The shape (``pair`` or ``tracker``) by which releasing ``s`` would disclose fewer than
    ``threshold`` units against ``ledgers``, or None. See the module docstring."""
    n, t = len(s), threshold
    entries = [e for ledger in ledgers for e in ledger.entries]

    def window(low: int, high: int) -> Iterable[Entry]:
        for ledger in ledgers:
            yield from ledger.window(low, high)

    def small(w: BitMap) -> bool:
        return 0 < len(w) < t

    for e in window(n - t, n + t):
        if 0 < s.symmetric_difference_cardinality(e.bitmap) < t:
            return "pair"
    for e in entries:
        common = s.intersection_cardinality(e.bitmap)
        # s and e are both parts: q(s) + q(e) - q(v), v close to their union
        if common < t:
            union_card = n + e.cardinality - common
            union = None
            for v in window(union_card - t, union_card + t):
                if v is e:
                    continue
                union = union if union is not None else s | e.bitmap
                if small((s & e.bitmap) | (union ^ v.bitmap)):
                    return "tracker"
        # s is the union: q(e) + q(v) - q(s), e nearly inside s and v nearly s less e
        if e.cardinality - common < t:
            rest = n - common
            for v in window(rest - t, rest + 2 * t):
                if v is e:
                    continue
                if small((e.bitmap & v.bitmap) | ((e.bitmap | v.bitmap) ^ s)):
                    return "tracker"
    return None


class DifferencingGuard:
    """The ledger of released populations and the answer cache, over the catalog database.

    Thread-safe: in-memory mirrors are refreshed (rows with a higher id than seen) inside the
    serialising transaction, under a process lock.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock = threading.Lock()
        self._ids: dict[str, int] = {}
        self._max_id = 0
        self._ledgers: dict[str, Ledger] = {}

    # -- exact repeats

    def cached(self, fp: str) -> GatedResult | None:
        with self.db.read() as s:
            row = s.get(ReleasedAnswer, fp)
            return _result(row.result) if row is not None else None

    # -- check and record, inside the caller's transaction

    def record(self, session: Session, plan: QueryPlan, result: GatedResult, fp: str) -> GatedResult:
        """Refuse (``QueryRefused``, rule ``differencing``) or record ``result``'s populations and
        the answer. Returns the answer to hand out: an identical query committed first wins."""
        earlier = session.get(ReleasedAnswer, fp)
        if earlier is not None:
            return _result(earlier.result)
        populations = result.populations if plan.unit_columns else []
        if populations:
            scopes = sorted({d for s in plan.unit_scopes for d in s})
            for name in ["*", *scopes]:  # a fixed order: no deadlock between two guards
                self._lock_head(session, name)
            with self._lock:
                self._refresh(session, scopes)
                new_ids: dict[str, int] = {}
                candidates = self._candidates(plan, populations, new_ids)
                self._check(plan, candidates)
            if new_ids:
                # Core (not ORM) executemany: the first query over a dataset may bring a million units.
                session.execute(insert(UnitId.__table__), [{"id": i, "value": v} for v, i in new_ids.items()])
            for j, entries in candidates.items():
                for dataset in plan.unit_scopes[j]:
                    ledger = self._ledgers[dataset]
                    fresh = {e.digest: e for e in entries if e.digest not in ledger.digests}
                    for e in fresh.values():
                        session.add(ReleasedPopulation(dataset=dataset, cardinality=e.cardinality, digest=e.digest,
                                                       bitmap=e.bitmap.serialize()))
                    head = session.get(DifferencingHead, dataset)
                    head.populations += len(fresh)
        session.add(ReleasedAnswer(fingerprint=fp, result=result.to_dict()))
        session.flush()
        return result

    def _lock_head(self, session: Session, name: str) -> None:
        head = session.execute(select(DifferencingHead).where(DifferencingHead.dataset == name)
                               .with_for_update()).scalar_one_or_none()
        if head is None:
            session.add(DifferencingHead(dataset=name, populations=0))
            session.flush()

    def _refresh(self, session: Session, datasets: Sequence[str]) -> None:
        for i, v in session.execute(select(UnitId.id, UnitId.value).where(UnitId.id > self._max_id)):
            self._ids[v] = i
            self._max_id = max(self._max_id, i)
        for name in datasets:
            ledger = self._ledgers.setdefault(name, Ledger())
            rows = session.execute(select(ReleasedPopulation.id, ReleasedPopulation.bitmap)
                                   .where(ReleasedPopulation.dataset == name, ReleasedPopulation.id > ledger.last_id)
                                   .order_by(ReleasedPopulation.id))
            for pid, blob in rows:
                ledger.add(entry_of(FrozenBitMap.deserialize(blob)))
                ledger.last_id = pid

    def _candidates(self, plan: QueryPlan, populations: list[tuple[list[str], ...]],
                    new_ids: dict[str, int]) -> dict[int, list[Entry]]:
        """Per unit column: each released cell's population, then their union (if several)."""
        def ids(values: list[str]) -> BitMap:
            try:
                return BitMap(array("I", map(self._ids.__getitem__, values)))
            except KeyError:
                out = BitMap()
                for v in values:
                    i = self._ids.get(v) or new_ids.get(v)
                    if i is None:
                        i = new_ids[v] = self._max_id + len(new_ids) + 1
                    out.add(i)
                return out

        out: dict[int, list[Entry]] = {}
        for j in range(len(plan.unit_columns)):
            cells = [ids(p[j]) for p in populations]
            entries = [entry_of(b) for b in cells]
            if len(cells) > 1:
                entries.append(entry_of(BitMap.union(*cells)))
            out[j] = entries
        return out

    def _check(self, plan: QueryPlan, candidates: dict[int, list[Entry]]) -> None:
        for j, entries in candidates.items():
            pending = Ledger()  # this query's earlier cells count as released
            ledgers = [self._ledgers[d] for d in plan.unit_scopes[j]] + [pending]
            for k, e in enumerate(entries):
                shape = find_differencing(e.bitmap, ledgers, plan.min_group_size)
                if shape is not None and len(entries) > 1 and k == len(entries) - 1:
                    shape = "union"  # the last entry of several is the union of the query's cells
                if shape is not None:
                    raise QueryRefused(
                        f"a population this query would release differs from an earlier release by fewer "
                        f"than {plan.min_group_size} privacy units ({shape}): together they would disclose "
                        "a small group",
                        details={"rule": RULE, "shape": shape},
                    )
                pending.add(e)


def _result(body: dict[str, Any]) -> GatedResult:
    fields = {k: body[k] for k in ("columns", "rows", "suppressed_groups", "released_groups", "decisions", "mode")}
    fields["decisions"] = [*fields["decisions"], {"rule": "repeat", "reason": "an exact repeat of an earlier "
                                                                              "release: the stored answer"}]
    return GatedResult(**fields)
