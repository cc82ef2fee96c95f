"""The ``span`` audit on its own: combinations of released populations with any weights.

Each attack is one the other shapes (``pair``, ``tracker``, ``cover``, ``meet``) let through:
``find_differencing(..., span=False)`` must answer None for it, the full check ``span``. The
property test holds the audit to a brute-force oracle with exact fractions.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st
from pyroaring import BitMap, FrozenBitMap

from sandbox.gate import span_audit
from sandbox.gate.differencing import Ledger, entry_of, find_differencing
from sandbox.gate.span_audit import SPAN_FIRST, SPAN_MAX_ATOMS, SPAN_NEIGHBOURS, span_leak

T = 10


def _ledger(*populations: Iterable[int]) -> Ledger:
    ledger = Ledger()
    for p in populations:
        ledger.add(entry_of(BitMap(p)))
    return ledger


def _units(*ranges: Iterable[int]) -> FrozenBitMap:
    out = BitMap()
    for r in ranges:
        out |= BitMap(r)
    return FrozenBitMap(out)


def _only_span(s: FrozenBitMap, ledger: Ledger) -> None:
    assert find_differencing(s, [ledger], T, span=False) is None  # the other shapes miss it
    assert find_differencing(s, [ledger], T) == "span"


def test_windows_and_their_overlaps_sum_to_all_less_one() -> None:
    # q(A) + q(B) + q(C) - q(A∩B) - q(B∩C) = q(all); less q(all but unit 0): unit 0
    ledger = _ledger(range(0, 400), range(300, 700), range(600, 1000), range(300, 400), range(600, 700))
    _only_span(_units(range(1, 1000)), ledger)
    assert find_differencing(_units(range(10, 1000)), [ledger], T) is None  # 10 units: allowed


def test_a_weight_of_two() -> None:
    # thirds a, b, c and a lone unit x: q(a+b+x) + q(b+c) + q(a+c) - 2 q(a+b+c) = q(x)
    a, b, c, x = range(0, 300), range(300, 630), range(630, 1000), [2000]
    ledger = _ledger(_units(a, b, x), _units(b, c), _units(a, c))
    _only_span(_units(a, b, c), ledger)
    # with x a group of ten instead, the same combination is allowed
    ten = _ledger(_units(a, b, range(2000, 2010)), _units(b, c), _units(a, c))
    assert find_differencing(_units(a, b, c), [ten], T) is None


def test_weights_are_rationals_not_bits() -> None:
    # modulo 2, (a+b+x) + (b+c) + (a+c) is x: an audit over bits would refuse a+c (the real sum
    # is 2b + x) and then find a+b+c adds nothing
    a, b, c, x = range(0, 300), range(300, 630), range(630, 1000), [2000]
    ledger = _ledger(_units(a, b, x), _units(b, c))
    assert find_differencing(_units(a, c), [ledger], T, span=False) is None
    # (a+b+x) + (b+c) - (a+c) = 2b + x: no small group yet; the whole a+b+c then isolates x
    assert find_differencing(_units(a, c), [ledger], T) is None
    ledger.add(entry_of(_units(a, c)))
    assert find_differencing(_units(a, b, c), [ledger], T) == "span"


def test_several_overlapping_parts_in_any_release_order() -> None:
    # whole W = 0..999; parts A, B, C overlap (A∩B, B∩C released) and C sticks out of W by R
    # (released), leaving unit 999 out: W - A - B - C + A∩B + B∩C + R = unit 999
    populations = {"W": _units(range(0, 1000)), "A": _units(range(0, 400)), "B": _units(range(350, 700)),
                   "C": _units(range(650, 999), range(1000, 1100)), "AB": _units(range(350, 400)),
                   "BC": _units(range(650, 700)), "R": _units(range(1000, 1100))}
    for last, s in populations.items():
        _only_span(s, _ledger(*(p for name, p in populations.items() if name != last)))


def test_a_leak_already_there_is_not_blamed_on_the_new_population() -> None:
    # q(A) + q(B) - q(W) is A∩B (5 units) already; [100, 900) adds nothing about it
    ledger = _ledger(range(0, 500), range(495, 1000), range(0, 1000))
    assert find_differencing(_units(range(100, 900)), [ledger], T) is None


def test_small_atoms_that_no_combination_isolates_are_allowed() -> None:
    # two windows overlapping by 5 units: the overlap is an atom, but not derivable
    assert find_differencing(_units(range(495, 1000)), [_ledger(range(0, 500))], T) is None
    # a two-way table's margins (rows and columns, each ≥ 10) and the total: every cell is a
    # small atom, none is a combination of margins
    cells = {(r, c): range(100 * r + 10 * c, 100 * r + 10 * c + 3) for r in range(4) for c in range(4)}
    rows = [_units(*(cells[r, c] for c in range(4))) for r in range(4)]
    cols = [_units(*(cells[r, c] for r in range(4))) for c in range(4)]
    ledger = _ledger(*rows, *cols[:3])
    assert find_differencing(cols[3], [ledger], T) is None


def test_benign_workloads_are_allowed() -> None:
    # a GROUP BY's disjoint cells and their total, in either order, reworded repeats
    cells = [range(0, 200), range(200, 450), range(450, 700), range(700, 1000)]
    ledger = _ledger(range(1000))
    for cell in cells:
        assert find_differencing(_units(cell), [ledger], T) is None
        ledger.add(entry_of(_units(cell)))
    assert find_differencing(_units(range(1000)), [ledger], T) is None  # the same units again
    parts_first = _ledger(*cells)
    assert find_differencing(_units(range(1000)), [parts_first], T) is None
    # overlapping wide windows, every atom 50 units or more
    windows = _ledger(range(0, 400), range(200, 600), range(350, 800), range(0, 800))
    for s in (range(100, 900), range(300, 1000), range(0, 350), range(600, 1000)):
        assert find_differencing(_units(s), [windows], T) is None
        windows.add(entry_of(_units(s)))


def test_many_populations_stay_bounded() -> None:
    # forty populations in general position, thirty meeting s and ten beside it: SPAN_FIRST of
    # the first, the rest of SPAN_NEIGHBOURS from the others, at most SPAN_MAX_ATOMS atoms
    rng = random.Random(5)
    s = FrozenBitMap(rng.sample(range(2000), 700))
    earlier = [FrozenBitMap(rng.sample(range(2000), 1000)) for _ in range(30)]
    earlier += [FrozenBitMap(p - s) for p in earlier[:10]]
    others = [(str(k), p, len(s & p)) for k, p in enumerate(earlier)]
    hood = span_audit._neighbourhood(s, others, T)
    assert len(hood) == SPAN_NEIGHBOURS and sum(1 for _, common in hood if common) == SPAN_FIRST
    atoms, rows = span_audit._atoms(s, hood)
    assert len(atoms) <= SPAN_MAX_ATOMS and 1 < rows <= len(hood)  # some left out by the cap
    assert len(s) <= sum(size for size, _ in atoms) <= len(s.union(*(p for p, _ in hood)))  # disjoint atoms
    span_leak(s, others, T)


def test_ranks_modulo_the_prime_are_exact() -> None:
    # Hadamard: a 0/1 minor of order r is at most r**(r/2) in absolute value, below the prime
    r = SPAN_NEIGHBOURS + 1
    assert r ** (r / 2) < span_audit._P


# ------------------------------------------------------------------ against an exact oracle


def _rank(rows: list[list[Fraction]]) -> int:
    m = [r[:] for r in rows]
    rank, width = 0, len(m[0]) if m else 0
    for col in range(width):
        pivot = next((i for i in range(rank, len(m)) if m[i][col] != 0), None)
        if pivot is None:
            continue
        m[rank], m[pivot] = m[pivot], m[rank]
        for i in range(len(m)):
            if i != rank and m[i][col] != 0:
                f = m[i][col] / m[rank][col]
                m[i] = [a - f * b for a, b in zip(m[i], m[rank])]
        rank += 1
    return rank


def _new_leaks(s: set[int], earlier: list[set[int]], t: int) -> list[frozenset[int]]:
    """Every set of atoms (fewer than t units) supporting a vector derivable with s, not without."""
    family = [s, *earlier]
    units = sorted(set().union(*family))
    sig: dict[tuple[bool, ...], list[int]] = {}
    for u in units:
        sig.setdefault(tuple(u in p for p in family), []).append(u)
    atoms = list(sig.items())
    small = [k for k, (_, us) in enumerate(atoms) if len(us) < t]

    with_s = [[Fraction(int(key[r])) for key, _ in atoms] for r in range(len(family))]
    ranks = _rank(with_s), _rank(with_s[1:])

    def dim(first: int, z: frozenset[int]) -> int:  # first row 0: with s, 1: without
        rest = [[v for k, v in enumerate(row) if k not in z] for row in with_s[first:]]
        return ranks[first] - (_rank(rest) if rest[0] else 0)

    out = []
    for size in range(1, min(len(small), t - 1) + 1):  # atoms have a unit or more
        for z in map(frozenset, itertools.combinations(small, size)):
            if sum(len(atoms[k][1]) for k in z) < t and dim(0, z) > dim(1, z):
                out.append(frozenset(u for k in z for u in atoms[k][1]))
    return out


families = st.lists(st.frozensets(st.integers(0, 19), min_size=5), min_size=2, max_size=6)


@settings(max_examples=200, deadline=None)
@given(families, st.integers(2, 5))
def test_the_audit_agrees_with_exact_fractions(sets: list[frozenset[int]], t: int) -> None:
    s, earlier = set(sets[0]), [set(p) for p in sets[1:] if set(p) != set(sets[0])]
    if not earlier:
        return
    others = [(str(i), FrozenBitMap(p), len(s & p)) for i, p in enumerate(earlier)]
    said = span_leak(FrozenBitMap(s), others, t)
    leaks = _new_leaks(s, earlier, t)
    assert not said or leaks  # every refusal is a real combination
    # and it finds every leak of one atom, or of all the small atoms together
    atoms_of = {frozenset(u for u in set().union(s, *earlier)
                          if all((u in p) == (v in p) for p in [s, *earlier])) for v in set().union(s, *earlier)}
    small = [a for a in atoms_of if len(a) < t]
    if any(z in atoms_of for z in leaks) or frozenset().union(*small) in leaks:
        assert said
