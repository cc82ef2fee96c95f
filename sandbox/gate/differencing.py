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
``cover``
    ``0 < |S - (E1 ∪ ... ∪ Ek)| < threshold`` for the earlier populations ``Ei`` inside ``S``,
    or ``0 < |T - (S ∪ E1 ∪ ... ∪ Ek)| < threshold`` for an earlier ``T`` containing ``S`` and
    the ``Ei`` inside ``T``: ``q(T) - q(S) - q(E1) - ...`` isolates the rest when the parts are
    disjoint (cells of GROUP BYs, adjoining windows), whatever their number and release order.
    With overlapping parts their union is not derivable and the refusal is conservative.
``meet``
    ``0 < |support(q(A) + q(B) - q(V) - q(M))| < threshold`` (:func:`support`: the units whose
    coefficient is not zero), ``S`` in any of the four roles, ``|V|`` and ``|M|`` within
    ``threshold`` of ``|A ∪ B|`` and ``|A ∩ B|``: ``q(A) + q(B) - q(A ∪ B)`` is
    ``q(A ∩ B)``, so a population a few units from the overlap of two released ones, once
    their union is released too (overlapping time windows: 2012-14, 2014-16, 2012-16, and
    2014 less one firm), or a population ``A ∪ B`` from parts whose overlap ``M`` is released.
``span``
    any combination ``sum y_i q(X_i)``, any rational weights, of ``S`` and up to 16 earlier
    populations around it that is a statistic of fewer than ``threshold`` units and was not
    derivable without ``S`` (:mod:`.span_audit`: atoms of the neighbourhood, exact ranks).
    Catches what the shapes above miss: ``q(A) + q(B) + q(C) - q(A∩B) - q(B∩C) - q(all but
    one)``, weights of 2 (``q(a+b+x) + q(b+c) + q(a+c) - 2 q(a+b+c) = q(x)``), parts that
    overlap or stick out of their whole. The dearest, so it runs last: once every population
    of the query has passed the shapes above.
``union``
    a query's released cells are also checked (and recorded) as one population, their union:
    their sum is derivable, so ``GROUP BY`` with one firm filtered out is caught against
    ``q(all)`` even when no single cell is close to anything.

Reworded filters (``age >= 30`` vs ``age > 29``) select the same units, so they are the same
population (``|S Δ T| = 0``): allowed, and nothing new is learnt. An exact repeat (same
canonical engine SQL on the same pinned versions) is answered from the stored earlier answer
without running (:func:`fingerprint`).

So every combination ``±q(S) ± q(T) ± q(V)`` of three populations (coefficients 1), ``q(A) +
q(B) - q(V) - q(M)`` of four, and whole-less-parts of any number is checked against the whole
ledger, and every combination with any weights within ``S``'s neighbourhood (``span``, for the
small groups that are unions of atoms it tries). Not caught (ARCHITECTURE.md): combinations
that need populations outside that neighbourhood, small groups the ``span`` heuristic does not
try (the least support is NP-hard to find; reconstruction from many subset sums is what DP is
for), differences of statistics other than the populations (two measures), and datasets
without a privacy unit. A refusal says "your population is within ``threshold`` of what
earlier ones give", no more than suppression does.

Populations are roaring bitmaps (``pyroaring``) of dense unit ids (:mod:`.unit_dictionary`:
keyed hashes -> ids in files under the warehouse home; no unit value in the catalog). Cost
per new population, with ``n`` populations in the ledger: ``n`` intersection counts; bitmap
operations only for candidates within ``threshold`` by cardinality (a sorted ledger and binary
search) and past cheap necessary conditions; at most ``MEET_CANDIDATES²/2`` pair counts for
``meet``, where a candidate quadruple builds its support only when a lower bound from intersection
counts alone (:func:`_meet_bound`) is below the threshold (over the 120 random half-sums of 40
firms of ``tests/e2e/test_value_attacks.py``, 36 thousand support builds instead of 2.66 million); ``cover`` unions cached per ledger entry and updated with one count per new entry;
``span`` (nothing for a population already in the ledger) a count per population per outer
level, a count per (atom, neighbour) at most and two bitmap operations per split of an atom
(64 atoms at most: :data:`.span_audit.SPAN_MAX_ATOMS`), exact elimination on at most 17 rows
only when an atom is small.
Check and record happen in the transaction that writes the ``query.released`` audit record,
holding the datasets' :class:`~sandbox.catalog.db.DifferencingHead` rows (``FOR UPDATE``; on SQLite
``BEGIN IMMEDIATE`` already serialises writers), so two concurrent jobs cannot both slip through.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from pyroaring import BitMap, FrozenBitMap
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..catalog.db import Database, DifferencingHead, ReleasedAnswer, ReleasedPopulation
from ..catalog.keys import load_or_create_key
from ..errors import InternalError, QueryRefused
from ..tables.snapshot import Snapshot
from ..tables.uris import Location
from .engine import GatedResult
from .plan import QueryPlan
from .span_audit import span_leak
from .unit_dictionary import DICTIONARY_HEAD, UnitDictionary

RULE = "differencing"


def fingerprint(plan: QueryPlan, versions: Mapping[str, int]) -> str:
    """The canonical identity of a query's answer: the generated engine SQL (aliases, case and
    quoting already normalised by the rewrite), the pinned versions and the release settings."""
    body = {"engine_sql": plan.engine_sql, "versions": {t: versions[t] for t in plan.tables},
            "mode": plan.release_mode, "threshold": plan.min_group_size, "sdc": plan.sdc.model_dump(mode="json")}
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
    #: entries in the order they were added (what the derived sets below have seen)
    order: list[Entry] = field(default_factory=list)
    #: digest -> (union of the populations inside that entry, entries seen): :meth:`cover`
    _covers: dict[str, tuple[BitMap | None, int]] = field(default_factory=dict)

    def add(self, entry: Entry) -> None:
        if entry.digest in self.digests:
            return
        at = bisect.bisect_left(self.cards, entry.cardinality)
        self.cards.insert(at, entry.cardinality)
        self.entries.insert(at, entry)
        self.digests.add(entry.digest)
        self.order.append(entry)

    def window(self, low: int, high: int) -> list[Entry]:
        """Entries with ``low < cardinality < high``."""
        return self.entries[bisect.bisect_right(self.cards, low):bisect.bisect_left(self.cards, high)]

    def cover(self, whole: Entry) -> BitMap | None:
        """The union of this ledger's other populations inside ``whole`` (None if none). Cached
        and brought up to date incrementally: one intersection count per population added since."""
        acc, seen = self._covers.get(whole.digest, (None, 0))
        for x in self.order[seen:]:
            if x.digest != whole.digest and x.bitmap.intersection_cardinality(whole.bitmap) == x.cardinality:
                acc = BitMap(x.bitmap) if acc is None else acc.union(x.bitmap)
        self._covers[whole.digest] = (acc, len(self.order))
        return acc


def entry_of(bitmap: BitMap | FrozenBitMap) -> Entry:
    frozen = FrozenBitMap(bitmap)
    return Entry(len(frozen), frozen, hashlib.sha256(frozen.serialize()).hexdigest())


#: ``meet``: the pairs of earlier populations tried are those among the tightest (smallest,
#: around ``s``) or largest (inside ``s``) this many: a bound on the cost
MEET_CANDIDATES = 24


def support(plus: Sequence[BitMap | FrozenBitMap], minus: Sequence[BitMap | FrozenBitMap]) -> BitMap:
    """The units whose coefficient in ``sum q(plus) - sum q(minus)`` is not zero (two of each
    at most): exactly what that combination of released statistics is a statistic of."""
    def levels(sets: Sequence[BitMap | FrozenBitMap]) -> tuple[BitMap, BitMap]:  # (in one, in two)
        if len(sets) == 1:
            return BitMap(sets[0]), BitMap()
        return BitMap(sets[0]) ^ sets[1], BitMap(sets[0]) & sets[1]
    p1, p2 = levels(plus)
    m1, m2 = levels(minus)
    everyone = BitMap.union(*plus, *minus)
    return everyone - ((p1 & m1) | (p2 & m2))


_Set = BitMap | FrozenBitMap


def _parts(x: _Set, a: _Set, b: _Set, both: _Set) -> tuple[int, int, int, int]:
    """How ``x`` falls across the regions of ``a`` and ``b``, from intersection counts alone (no set
    is built): ``(|x ∩ a|, |x ∩ b|, |x ∩ a ∩ b|, |x - (a ∪ b)|)``; ``both`` is ``a ∩ b``."""
    in_a, in_b, in_both = x.intersection_cardinality(a), x.intersection_cardinality(b), x.intersection_cardinality(both)
    return in_a, in_b, in_both, len(x) - in_a - in_b + in_both


def _meet_bound(odd: int, common: int, v: tuple[int, int, int, int], m: tuple[int, int, int, int]) -> int:
    """A lower bound on ``|support(q(a) + q(b) - q(v) - q(m))|`` from :func:`_parts` of ``v`` and
    ``m`` (``odd = |a Δ b|``, ``common = |a ∩ b|``), so the ``meet`` search skips a pair without
    building a set. The support splits by region, each bounded on its own:
    outside ``a ∪ b`` a unit of ``v`` or ``m`` has a negative coefficient: at least the larger of
    the two counts; in ``a ∩ b`` (weight 2) a unit missing from ``v`` or ``m`` stays: at least the
    larger miss; in ``a Δ b`` (weight 1) every nonzero coefficient is +1 (in neither) or -1 (in
    both), so at least ``|odd - |v ∩ (a Δ b)| - |m ∩ (a Δ b)||`` of them are nonzero."""
    v_odd = v[0] + v[1] - 2 * v[2]
    m_odd = m[0] + m[1] - 2 * m[2]
    return max(v[3], m[3]) + common - min(v[2], m[2]) + abs(odd - v_odd - m_odd)


def find_differencing(s: FrozenBitMap, ledgers: Sequence[Ledger], threshold: int, *,
                      span: bool = True) -> str | None:
    """The shape (``pair``, ``tracker``, ``cover``, ``meet`` or ``span``) by which releasing ``s``
    would disclose fewer than ``threshold`` units against ``ledgers``, or None. See the module
    docstring. ``span=False`` leaves out the ``span`` audit (to measure what it costs)."""
    shape, others = _cheap_shapes(s, ledgers, threshold)
    if shape is None and span and others is not None and span_leak(s, others, threshold):
        return "span"
    return shape


def _cheap_shapes(s: FrozenBitMap, ledgers: Sequence[Ledger],
                 threshold: int) -> tuple[str | None, list[tuple[str, FrozenBitMap, int]] | None]:
    """The shapes but ``span``: (the shape found or None, and when none: what the ``span`` audit
    of ``s`` needs, every other earlier population as (digest, bitmap, ``|s ∩ bitmap|``), or None
    when ``s`` is an earlier population itself: its row adds nothing)."""
    n, t = len(s), threshold

    def window(low: int, high: int) -> Iterable[Entry]:
        for ledger in ledgers:
            yield from ledger.window(low, high)

    def small(w: BitMap) -> bool:
        return 0 < len(w) < t

    for e in window(n - t, n + t):
        if 0 < s.symmetric_difference_cardinality(e.bitmap) < t:
            return "pair", None
    inside: list[tuple[Entry, int]] = []     # earlier populations nearly inside s, with |e ∩ s|
    around: list[tuple[Ledger, Entry]] = []  # earlier populations nearly containing s
    others: list[tuple[str, FrozenBitMap, int]] = []  # for span: every other population, with |e ∩ s|
    repeat = False
    for ledger in ledgers:
        for e in ledger.entries:
            common = s.intersection_cardinality(e.bitmap)
            if common == n == e.cardinality:
                repeat = True
                continue  # the same units: nothing new
            others.append((e.digest, e.bitmap, common))
            # s and e are both parts: q(s) + q(e) - q(v), v close to their union
            if common < t:
                union_card = n + e.cardinality - common
                union = None
                for v in window(union_card - t, union_card + t):
                    if v is e:
                        continue
                    union = union if union is not None else s | e.bitmap
                    if small((s & e.bitmap) | (union ^ v.bitmap)):
                        return "tracker", None
            # s is the union: q(e) + q(v) - q(s), e nearly inside s and v nearly s less e
            if e.cardinality - common < t:
                inside.append((e, common))
                rest = n - common
                for v in window(rest - t, rest + 2 * t):
                    if v is e:
                        continue
                    if small((e.bitmap & v.bitmap) | ((e.bitmap | v.bitmap) ^ s)):
                        return "tracker", None
            if n - common < t:
                around.append((ledger, e))
            # meet, s as one of two overlapping: q(s) + q(e) - q(v) - q(m), v ~ s ∪ e, m ~ s ∩ e.
            # Units of s ∩ e outside v (or m) weigh 1 or 2: fewer than t of them, or no disclosure.
            if common >= t:
                both: BitMap | None = None
                odd = n + e.cardinality - 2 * common  # |s Δ e|: the units of weight 1 on the plus side
                for v in window(n + e.cardinality - common - t, n + e.cardinality - common + t):
                    if v is e:
                        continue
                    both = both if both is not None else s & e.bitmap
                    v_parts = _parts(v.bitmap, s, e.bitmap, both)
                    if common - v_parts[2] >= t or v_parts[3] >= t:
                        continue
                    for m in window(common - t, common + t):
                        if m is e or m is v:
                            continue
                        if _meet_bound(odd, common, v_parts, _parts(m.bitmap, s, e.bitmap, both)) >= t:
                            continue
                        if small(support([s, e.bitmap], [v.bitmap, m.bitmap])):
                            return "meet", None
    # cover: q(s) - q(e1) - q(e2) - ..., the e inside s; and s as one of the parts of an earlier whole
    parts = [e.bitmap for e, common in inside if common == e.cardinality]
    if parts and small(s - BitMap.union(*parts)):
        return "cover", None
    for ledger, whole in around:
        if whole.cardinality > n and s.intersection_cardinality(whole.bitmap) == n:
            rest = ledger.cover(whole)
            if small(whole.bitmap - (s | rest if rest is not None else s)):
                return "cover", None
    # meet, s as the small part: q(a) + q(b) - q(v) - q(s), a and b around s, v ~ a ∪ b.
    # Units of a ∩ b outside s (or v) weigh 1 or 2: fewer than t of them, or no disclosure.
    tight = sorted((e for _, e in around), key=lambda e: e.cardinality)[:MEET_CANDIDATES]
    for i, a in enumerate(tight):
        for b in tight[i + 1:]:
            both = a.bitmap.intersection_cardinality(b.bitmap)
            if both - n >= t:
                continue
            meet = a.bitmap & b.bitmap
            if both - meet.intersection_cardinality(s) >= t:
                continue
            either = a.cardinality + b.cardinality - both
            odd, s_parts = either - both, _parts(s, a.bitmap, b.bitmap, meet)
            for v in window(either - t, either + t):
                if v is a or v is b or _meet_bound(odd, both, _parts(v.bitmap, a.bitmap, b.bitmap, meet), s_parts) >= t:
                    continue
                if small(support([a.bitmap, b.bitmap], [v.bitmap, s])):
                    return "meet", None
    # meet, s as the union: q(a) + q(b) - q(s) - q(m), a and b nearly inside s, m ~ a ∩ b
    large = sorted((e for e, _ in inside), key=lambda e: -e.cardinality)[:MEET_CANDIDATES]
    for i, a in enumerate(large):
        for b in large[i + 1:]:
            both = a.bitmap.intersection_cardinality(b.bitmap)
            if abs(a.cardinality + b.cardinality - both - n) >= t or both < t:
                continue
            meet, s_parts = None, None
            odd = a.cardinality + b.cardinality - 2 * both
            for m in window(both - t, both + t):
                if m is a or m is b:
                    continue
                meet = meet if meet is not None else a.bitmap & b.bitmap
                s_parts = s_parts or _parts(s, a.bitmap, b.bitmap, meet)
                if _meet_bound(odd, both, s_parts, _parts(m.bitmap, a.bitmap, b.bitmap, meet)) >= t:
                    continue
                if small(support([a.bitmap, b.bitmap], [s, m.bitmap])):
                    return "meet", None
    return None, (None if repeat else others)


class DifferencingGuard:
    """The ledger of released populations and the answer cache, over the catalog database.

    Unit ids come from ``units`` (:class:`~.unit_dictionary.UnitDictionary`): call
    :meth:`prepare` before running a query (it builds a new table version's dictionary in a
    transaction of its own), then :meth:`record` inside the query's transaction.

    Thread-safe: in-memory mirrors are refreshed (rows with a higher id than seen) inside the
    serialising transaction, under a process lock. ``span=False`` leaves out the ``span`` audit
    (the benchmark's comparison; never in service).
    """

    def __init__(self, db: Database, units: UnitDictionary, *, span: bool = True) -> None:
        self.db = db
        self.units = units
        self.span = span
        self._lock = threading.Lock()
        self._ledgers: dict[str, Ledger] = {}
        #: head rows known to exist (never deleted): no catalog read for them on later queries
        self._heads: set[str] = set()

    @classmethod
    def for_warehouse(cls, db: Database, home: Path, secrets_dir: Path, *, shared: Location | None = None,
                      span: bool = True) -> DifferencingGuard:
        """The guard of a warehouse: dictionary under ``home/units``, key ``secrets/units.key``;
        with ``shared`` storage (several machines), the dictionary's parts live there."""
        return cls(db, UnitDictionary(db, Path(home) / "units", load_or_create_key(Path(secrets_dir) / "units.key"),
                                      shared), span=span)

    # -- exact repeats

    def cached(self, fp: str) -> GatedResult | None:
        with self.db.read() as s:
            row = s.get(ReleasedAnswer, fp)
            return _result(row.result) if row is not None else None

    # -- before running

    def prepare(self, plan: QueryPlan, snapshots: Mapping[str, Snapshot]) -> None:
        """Make sure the unit dictionaries of the snapshots ``plan`` reads units from exist
        (once per table version; commits new ids on its own, before the query's transaction)."""
        if plan.release_mode != "sdc" or not plan.hidden_indices("units"):
            return
        # The lock rows exist before anyone locks them: two first writers inserting the same head
        # inside their locking transactions would collide (a unique violation on PostgreSQL)
        self._ensure_heads([DICTIONARY_HEAD, *sorted({d for scope in plan.unit_scopes for d in scope})])
        for unit in plan.unit_columns:
            self.units.prepare(snapshots[unit.dataset], unit.column)

    def prepare_version(self, snap: Snapshot, unit: str) -> None:
        """Build a table version's unit dictionary now (the ingest calls it after its commit), so
        that the first sdc query of the version does not: the same work :meth:`prepare` would do."""
        self._ensure_heads([DICTIONARY_HEAD])
        self.units.prepare(snap, unit)

    # -- check and record, inside the caller's transaction

    def record(self, session: Session, plan: QueryPlan, result: GatedResult, fp: str,
               snapshots: Mapping[str, Snapshot] | None = None) -> GatedResult:
        """Refuse (``QueryRefused``, rule ``differencing``) or record ``result``'s populations and
        the answer. Returns the answer to hand out: an identical query committed first wins.
        ``snapshots``: the pinned snapshots ``result`` was computed on (their unit dictionaries
        must have been prepared); needed whenever the plan has a privacy unit."""
        earlier = session.get(ReleasedAnswer, fp)
        if earlier is not None:
            return _result(earlier.result)
        populations = result.populations if plan.unit_columns else []
        if plan.unit_columns and plan.hidden_indices("units") and result.released_groups and not populations:
            raise InternalError("the result of a query with a privacy unit carries no populations")
        if populations:
            if snapshots is None:
                raise InternalError("the differencing guard needs the snapshots the result was computed on")
            candidates = self._candidates(plan, populations, snapshots)  # outside the lock: numpy work
            scopes = sorted({d for s in plan.unit_scopes for d in s})
            for name in scopes:  # a fixed order: no deadlock between two guards
                self._lock_head(session, name)
            with self._lock:
                self._refresh(session, scopes)
                self._check(plan, candidates)
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

    def _ensure_heads(self, names: Sequence[str]) -> None:
        for name in names:
            if name in self._heads:
                continue
            with self.db.read() as s:
                exists = s.get(DifferencingHead, name) is not None
            if not exists:
                try:
                    with self.db.transaction() as s:
                        if s.get(DifferencingHead, name) is None:
                            s.add(DifferencingHead(dataset=name, populations=0))
                except IntegrityError:
                    pass  # a concurrent writer created it first: all we need is that it exists
            self._heads.add(name)

    def _lock_head(self, session: Session, name: str) -> None:
        head = session.execute(select(DifferencingHead).where(DifferencingHead.dataset == name)
                               .with_for_update()).scalar_one_or_none()
        if head is None:
            session.add(DifferencingHead(dataset=name, populations=0))
            session.flush()

    def _refresh(self, session: Session, datasets: Sequence[str]) -> None:
        for name in datasets:
            ledger = self._ledgers.setdefault(name, Ledger())
            rows = session.execute(select(ReleasedPopulation.id, ReleasedPopulation.bitmap)
                                   .where(ReleasedPopulation.dataset == name, ReleasedPopulation.id > ledger.last_id)
                                   .order_by(ReleasedPopulation.id))
            for pid, blob in rows:
                ledger.add(entry_of(FrozenBitMap.deserialize(blob)))
                ledger.last_id = pid

    def _candidates(self, plan: QueryPlan, populations: list[tuple[Any, ...]],
                    snapshots: Mapping[str, Snapshot]) -> dict[int, list[Entry]]:
        """Per unit column: each released cell's population, then their union (if several)."""
        out: dict[int, list[Entry]] = {}
        for j, unit in enumerate(plan.unit_columns):
            side = self.units.sidecar(snapshots[unit.dataset], unit.column)
            cells = [side.bitmap(p[j]) for p in populations]
            entries = [entry_of(b) for b in cells]
            if len(cells) > 1:
                entries.append(entry_of(BitMap.union(*cells)))
            out[j] = entries
        return out

    def _check(self, plan: QueryPlan, candidates: dict[int, list[Entry]]) -> None:
        t = plan.min_group_size
        audits: list[tuple[Entry, bool, list[tuple[str, FrozenBitMap, int]]]] = []
        for j, entries in candidates.items():
            pending = Ledger()  # this query's earlier cells count as released
            ledgers = [self._ledgers[d] for d in plan.unit_scopes[j]] + [pending]
            for k, e in enumerate(entries):
                last = len(entries) > 1 and k == len(entries) - 1  # the union of the query's cells
                shape, others = _cheap_shapes(e.bitmap, ledgers, t)
                if shape is not None:
                    _refuse(t, "union" if last else shape)
                if others is not None:
                    audits.append((e, last, others))
                pending.add(e)
        # span, the dearest, once every population has passed the cheap shapes (the union too)
        if self.span:
            for e, last, others in audits:
                if span_leak(e.bitmap, others, t):
                    _refuse(t, "union" if last else "span")


def _refuse(threshold: int, shape: str) -> NoReturn:
    raise QueryRefused(
        f"a population this query would release differs from an earlier release by fewer "
        f"than {threshold} privacy units ({shape}): together they would disclose a small group",
        details={"rule": RULE, "shape": shape},
    )


def _result(body: dict[str, Any]) -> GatedResult:
    fields = {k: body[k] for k in ("columns", "rows", "suppressed_groups", "released_groups", "decisions", "mode")}
    fields["decisions"] = [*fields["decisions"], {"rule": "repeat", "reason": "an exact repeat of an earlier "
                                                                              "release: the stored answer"}]
    return GatedResult(**fields)
