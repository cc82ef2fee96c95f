"""The differencing guard's ``span`` shape: an exact audit of every linear combination of a
neighbourhood of released populations, in the spirit of Chin & Özsoyoglu's Audit Expert for
SUM queries.

Any combination ``sum y_i q(X_i)`` of released SUM or COUNT statistics, with any rational
weights, is a statistic of the units whose coefficient ``sum y_i [u in X_i]`` is not zero. In a
neighbourhood ``N = {S, T_1 .. T_k}`` every such coefficient is constant on the *atoms* (the
units of ``S ∪ T_1 ∪ ... ∪ T_k`` with the same membership), so the derivable vectors are the
row space of the 0/1 matrix ``M`` (rows: populations, columns: atoms). The ones supported
inside a set ``Z`` of atoms have dimension ``rank(M) - rank(M without Z's columns)``. ``S`` is
refused when that dimension grows with ``S``'s row for some ``Z`` of fewer than ``threshold``
units: ``S`` makes a statistic of a small group derivable that was not before (a leak the
earlier releases already allowed is not ``S``'s doing and does not refuse it).

Which ``Z``: only atoms of fewer than ``threshold`` units can be in one. Each small atom with
the smallest other small atoms while the total stays under ``threshold`` (the dimension only
grows with ``Z``, so this also covers each small atom alone and every subset of those unions).
Finding the smallest support of a derivable vector is NP-hard in general (a minimum-weight
codeword); this is a heuristic over unions of atoms, sound for what it checks: every refusal is
a real combination, and a small group reachable only through another union of atoms is missed.

Exact arithmetic: elimination modulo the prime ``2**61 - 1``. A 0/1 matrix of rank ``r <= 17``
has a non-zero ``r × r`` minor of absolute value at most ``r**(r/2) < 3e10`` (Hadamard), which
the prime cannot divide, so its rank modulo the prime is its rank over the rationals; each
dimension above is a difference of two such ranks: exact, not an estimate.

Which neighbours, at most :data:`SPAN_NEIGHBOURS`: first those that intersect ``S``, the
:data:`SPAN_FIRST` closest by ``|S Δ T|`` (what cancels most of ``S`` while bringing in the
fewest other units, which would need cancelling in turn; from the intersection counts the
other shapes already took); then, level by level, populations disjoint from ``S`` that touch
the neighbourhood, adding the fewest units outside it first (the other parts of a whole ``S``
is a part of). Ties break on the digest: the same ledger gives the same neighbourhood in any
process. A population that would split the atoms past :data:`SPAN_MAX_ATOMS` is left out and
the rest are still tried. Not checked: combinations needing a population outside the
neighbourhood or one left out by the cap.

Cost, per new population: a union of the first level and a count against it (when ``S`` has
``threshold`` units or more that no neighbour has, every combination with ``S`` weighs them:
nothing more to do); a count per other population per outer level; to build the atoms, a count
per (atom, neighbour) until the neighbour's units, or the atoms' units outside it, are all
accounted for (the rest need none), and two bitmap operations per split; elimination on
matrices of at most 17 rows only when some atom is small, once per candidate ``Z``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pyroaring import BitMap, FrozenBitMap

#: the most earlier populations in one audit (17 rows with ``S``: the bound the exactness needs)
SPAN_NEIGHBOURS = 16
#: of which at most this many intersect ``S``: the rest are kept for the outer levels
SPAN_FIRST = 12
#: the most atoms (columns): bounds the bitmap work, ``atoms × neighbours`` counts
SPAN_MAX_ATOMS = 64

_P = 2**61 - 1


def span_leak(s: FrozenBitMap, others: Sequence[tuple[str, FrozenBitMap, int]], threshold: int) -> bool:
    """Whether releasing ``s`` makes a combination of fewer than ``threshold`` units derivable.

    ``others``: the earlier populations other than ``s`` itself, as (digest, bitmap, ``|s ∩ bitmap|``)."""
    hood = _neighbourhood(s, others, threshold)
    if not hood:
        return False
    atoms, rows = _atoms(s, hood)
    small = sorted((size, sig) for size, sig in atoms if size < threshold)
    if not small:
        return False
    large = [sig for size, sig in atoms if size >= threshold]
    columns = large + [sig for _, sig in small]

    def vanishing(first_row: int) -> list[list[int]]:
        matrix = [[(sig >> r) & 1 for sig in columns] for r in range(first_row, rows)]
        return [row[len(large):] for pivot, row in _echelon(matrix) if pivot >= len(large)]

    new, old = vanishing(0), vanishing(1)  # with and without s's row
    if len(new) == len(old):  # old ⊆ new: the same space, nothing new on the small atoms
        return False
    # atoms no such vector touches change no dimension: leave them out of every Z
    live = [j for j in range(len(small)) if any(row[j] for row in new)]
    new, old = [[row[j] for j in live] for row in new], [[row[j] for j in live] for row in old]
    sizes = [small[j][0] for j in live]
    return any(_inside(new, z) > _inside(old, z) for z in _unions(sizes, threshold))


def _neighbourhood(s: FrozenBitMap, others: Sequence[tuple[str, FrozenBitMap, int]],
                   threshold: int) -> list[tuple[FrozenBitMap, int]]:
    """The populations audited with ``s``, each with ``|s ∩ it|``; empty when none can matter."""
    n = len(s)
    seen: set[str] = set()
    touching: list[tuple[int, str, FrozenBitMap, int]] = []
    apart: list[tuple[str, FrozenBitMap]] = []
    for digest, bitmap, common in others:
        if digest in seen:
            continue
        seen.add(digest)
        if common:
            touching.append((n + len(bitmap) - 2 * common, digest, bitmap, common))
        else:
            apart.append((digest, bitmap))
    touching.sort(key=lambda x: x[:2])
    hood = [(bitmap, common) for _, _, bitmap, common in touching[:SPAN_FIRST]]
    if not hood:
        return []
    reach = BitMap()
    reach.update(*(bitmap for bitmap, _ in hood))
    # the units of s no neighbour has are in every combination with s (later levels miss s)
    if n - s.intersection_cardinality(reach) >= threshold:
        return []
    reach |= s
    while len(hood) < SPAN_NEIGHBOURS and apart:
        ranked, left = [], []
        for digest, bitmap in apart:
            inner = bitmap.intersection_cardinality(reach)
            if inner:
                ranked.append((len(bitmap) - inner, -inner, digest, bitmap))
            else:
                left.append((digest, bitmap))
        if not ranked:
            break
        ranked.sort(key=lambda x: x[:3])
        room = SPAN_NEIGHBOURS - len(hood)
        for *_, bitmap in ranked[:room]:
            hood.append((bitmap, 0))
            reach |= bitmap
        apart = left + [(digest, bitmap) for _, _, digest, bitmap in ranked[room:]]
    return hood


def _atoms(s: FrozenBitMap, hood: Sequence[tuple[FrozenBitMap, int]]) -> tuple[list[tuple[int, int]], int]:
    """The atoms of ``s`` and ``hood`` as (number of units, signature: bit ``r`` set when in row
    ``r``; row 0 is ``s``), and the number of rows (a population left out by
    :data:`SPAN_MAX_ATOMS` has none)."""
    atoms: list[tuple[BitMap, int, int]] = [(BitMap(s), len(s), 1)]  # (units, their number, signature)
    covered = BitMap(s)
    rows = 1
    for x, common in hood:
        inner = x.intersection_cardinality(covered)
        # per side of s (0: outside, 1: inside), units of x not yet met in the atoms, and units
        # of the atoms outside x not yet met: once either is spent, the atoms left need no count
        meet = [inner - common, common]
        miss = [len(covered) - len(s) - inner + common, len(s) - common]
        cuts = []
        for a, size, sig in atoms:
            side = sig & 1
            if not meet[side]:
                c = 0
            elif not miss[side]:
                c = size
            else:
                c = a.intersection_cardinality(x)
                meet[side] -= c
                miss[side] -= size - c
            cuts.append(c)
        fresh = len(x) - inner
        splits = sum(1 for (_, size, _), c in zip(atoms, cuts) if 0 < c < size)
        if len(atoms) + splits + (fresh > 0) > SPAN_MAX_ATOMS:
            continue
        bit = 1 << rows
        rows += 1
        refined: list[tuple[BitMap, int, int]] = []
        for (a, size, sig), c in zip(atoms, cuts):
            if c == size:
                refined.append((a, size, sig | bit))
            elif c:
                refined.append((a & x, c, sig | bit))
                refined.append((a - x, size - c, sig))
            else:
                refined.append((a, size, sig))
        if fresh:
            refined.append((BitMap(x) - covered, fresh, bit))
            covered |= x
        atoms = sorted(refined, key=lambda atom: -atom[1])  # the largest spend the budgets first
    return [(size, sig) for _, size, sig in atoms], rows


def _unions(sizes: Sequence[int], threshold: int) -> Iterator[frozenset[int]]:
    """Per small atom (``sizes`` ascending): it with the smallest others, under ``threshold`` in all."""
    seen: set[frozenset[int]] = set()
    for i, size in enumerate(sizes):
        z, total = {i}, size
        for j, other in enumerate(sizes):
            if j == i:
                continue
            if total + other >= threshold:
                break
            z.add(j)
            total += other
        key = frozenset(z)
        if key not in seen:
            seen.add(key)
            yield key


def _inside(basis: list[list[int]], z: frozenset[int]) -> int:
    """The dimension of the span of ``basis``'s vectors that are zero outside the columns ``z``."""
    if not basis:
        return 0
    rest = [[v for j, v in enumerate(row) if j not in z] for row in basis]
    return len(basis) - len(_echelon(rest))


def _echelon(matrix: list[list[int]]) -> list[tuple[int, list[int]]]:
    """Row echelon form modulo ``_P``: (pivot column, row) for each non-zero row left, the
    pivots ascending (so a row's entries before its pivot are zero)."""
    rows = [row[:] for row in matrix if any(row)]
    out: list[tuple[int, list[int]]] = []
    width = len(matrix[0]) if matrix else 0
    for col in range(width):
        at = next((i for i, row in enumerate(rows) if row[col]), None)
        if at is None:
            continue
        pivot = rows.pop(at)
        inverse = pow(pivot[col], _P - 2, _P)
        pivot = [v * inverse % _P for v in pivot]
        out.append((col, pivot))
        rows = [[(v - row[col] * w) % _P for v, w in zip(row, pivot)] if row[col] else row for row in rows]
        rows = [row for row in rows if any(row)]
        if not rows:
            break
    return out
