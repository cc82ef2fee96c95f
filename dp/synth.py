"""DP synthetic tables: an MST-style synthesiser (McKenna, Miklau & Sheldon 2021), simplified.

    domains = [Domain.categorical("industry", ["C", "F", "G"]), Domain.numeric("amount", 0, 500)]
    out = synthesize(domains, {"industry": arr1, "amount": arr2}, rows=5000,
                     epsilon=Fraction(1), max_rows_per_unit=5)
    out.table, out.epsilon, out.measurements, out.edges

What it does, with the whole ε accounted exactly (``sum(m.epsilon for m in measurements) == epsilon``):

1. **Bins from declarations only.** Every modelled column has a finite declared domain: a list
   of categories, or ``[lo, hi]`` cut into equal-width bins (small integer ranges: one bin per
   integer), plus a null bin when the column is nullable. Values outside a categorical domain
   (or nulls in a non-nullable column) drop their row; numbers are clamped. A value no steward
   declared can therefore never be a category of the output.
2. **One-way marginals** (ε/3 in all, split evenly): a histogram per column, released with
   OpenDP's discrete Laplace (:func:`dp.noise.laplace`). A unit has at most
   ``max_rows_per_unit`` rows (the caller bounds them), so each histogram's L1 sensitivity is m.
3. **Structure** (ε/3, split evenly over the tree's edges): Kruskal's maximum spanning tree in
   which each edge is chosen by the exponential mechanism (OpenDP ``make_noisy_max``, Gumbel
   noise) scoring every candidate pair by the L1 distance between its true two-way marginal
   and the independence estimate from the *noisy* one-ways (sensitivity m). The number of edges
   is fixed in advance from public facts (the domains), so the split is too.
4. **Two-way marginals** (the rest of ε, split evenly) on the chosen edges, discrete Laplace.
5. **Sampling** (post-processing, costs nothing): each tree is rooted, the root drawn from its
   noisy one-way, every child from the noisy two-way conditioned on its parent (negative counts
   clipped to zero). Numbers are drawn uniformly within their bin.

What it preserves: every column's distribution over its declared bins, and the strongest
pairwise dependencies (those on the tree). What it does not: dependencies off the tree,
within-bin shape, and anything tying rows to units (rows are independent draws).

The caller (the application) must bound each unit to ``max_rows_per_unit`` rows before calling;
this module trusts that bound, as :mod:`dp.noise` trusts its sensitivity.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .errors import DPError
from .noise import _opendp, laplace

#: bins of a numeric column with a wide declared range
NUMERIC_BINS = 16
#: an integer range up to this many values gets one bin per integer
INTEGER_AS_CATEGORIES = 64
#: a pair whose two-way table would have more cells is never an edge (decided from domains only)
MAX_PAIR_CELLS = 1 << 18


@dataclass(frozen=True)
class Domain:
    """A modelled column's declared domain: categories, or a numeric range cut into bins."""

    name: str
    categories: tuple[Any, ...] = ()
    lo: float = 0.0
    hi: float = 0.0
    bins: int = 0
    integer: bool = False
    nullable: bool = False

    @classmethod
    def categorical(cls, name: str, values: Sequence[Any], nullable: bool = False) -> Domain:
        vals = tuple(values)
        if not vals or len(set(vals)) != len(vals):
            raise DPError(f"categories of {name!r} must be distinct and non-empty", code="invalid_bounds")
        return cls(name, categories=vals, nullable=nullable)

    @classmethod
    def numeric(cls, name: str, lo: float, hi: float, *, integer: bool = False, nullable: bool = False,
                bins: int = NUMERIC_BINS) -> Domain:
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise DPError(f"bounds of {name!r} must be finite with lo < hi", code="invalid_bounds")
        if integer:
            ilo, ihi = math.ceil(lo), math.floor(hi)
            if ihi < ilo:
                raise DPError(f"bounds of {name!r} contain no integer", code="invalid_bounds")
            if ihi - ilo + 1 <= INTEGER_AS_CATEGORIES:
                return cls(name, categories=tuple(range(ilo, ihi + 1)), nullable=nullable)
            return cls(name, lo=float(ilo), hi=float(ihi + 1), bins=bins, integer=True, nullable=nullable)
        return cls(name, lo=float(lo), hi=float(hi), bins=bins, nullable=nullable)

    @property
    def size(self) -> int:
        """Bins, the null bin included (it is the last one)."""
        return (len(self.categories) or self.bins) + (1 if self.nullable else 0)

    def encode(self, values: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Bin indexes, and a mask of rows whose value lies outside the declared domain."""
        nulls = np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
        null_bin = self.size - 1
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        if self.categories:
            idx = pc.index_in(values, value_set=pa.array(list(self.categories)).cast(values.type))
            codes = np.asarray(pc.fill_null(idx, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
            outside = (codes < 0) & ~nulls
        else:
            x = np.asarray(pc.fill_null(pc.cast(values, pa.float64()), self.lo).to_numpy(zero_copy_only=False))
            x = np.clip(np.nan_to_num(x, nan=self.lo), self.lo, self.hi)  # declared bounds only
            width = (self.hi - self.lo) / self.bins
            codes = np.minimum(((x - self.lo) // width).astype(np.int64), self.bins - 1)
            outside = np.zeros(len(codes), dtype=bool)
        if self.nullable:
            codes = np.where(nulls, null_bin, codes)
        else:
            outside |= nulls
        return codes, outside

    def decode(self, codes: np.ndarray, rng: np.random.Generator) -> pa.Array:
        nullable_mask = codes == self.size - 1 if self.nullable else np.zeros(len(codes), dtype=bool)
        safe = np.where(nullable_mask, 0, codes)
        if self.categories:
            cats = np.array(self.categories, dtype=object)
            values = cats[safe]
            return pa.array(list(values), mask=nullable_mask)
        width = (self.hi - self.lo) / self.bins
        left = self.lo + safe * width
        if self.integer:  # integers in [ceil(left), ceil(left + width) - 1]
            a = np.ceil(left).astype(np.int64)
            b = np.maximum(a, np.ceil(left + width).astype(np.int64) - 1)
            return pa.array(rng.integers(a, b + 1), type=pa.int64(), mask=nullable_mask)
        return pa.array(left + rng.random(len(codes)) * width, type=pa.float64(), mask=nullable_mask)


@dataclass(frozen=True)
class Measurement:
    """One release of the mechanism and the ε it spent."""

    what: str
    epsilon: Fraction
    scale: float


@dataclass(frozen=True)
class Synthetic:
    table: pa.Table
    epsilon: Fraction
    measurements: tuple[Measurement, ...]
    edges: tuple[tuple[str, str], ...]

    def accounting(self) -> dict[str, Any]:
        return {"epsilon": f"{self.epsilon.numerator}/{self.epsilon.denominator}",
                "measurements": [{"what": m.what, "epsilon": f"{m.epsilon.numerator}/{m.epsilon.denominator}",
                                  "scale": m.scale} for m in self.measurements],
                "edges": [list(e) for e in self.edges]}


def planned_edges(domains: Sequence[Domain]) -> int:
    """How many tree edges the mechanism selects: fixed by the domains alone (public)."""
    parent = list(range(len(domains)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    edges = 0
    for i, j in combinations(range(len(domains)), 2):
        if domains[i].size * domains[j].size <= MAX_PAIR_CELLS and find(i) != find(j):
            parent[find(i)] = find(j)
            edges += 1
    return edges


def split_epsilon(epsilon: Fraction, columns: int, edges: int) -> tuple[Fraction, Fraction, Fraction]:
    """(one-ways, selection, two-ways) in all: ε/3 each when there are edges, else all one-ways."""
    if edges == 0:
        return epsilon, Fraction(0), Fraction(0)
    third = epsilon / 3
    return third, third, epsilon - 2 * third


def synthesize(domains: Sequence[Domain], data: Mapping[str, pa.Array | pa.ChunkedArray], *, rows: int,
               epsilon: Fraction, max_rows_per_unit: int) -> Synthetic:
    """``rows`` synthetic rows of the modelled columns, (ε, 0)-DP for a unit with at most
    ``max_rows_per_unit`` rows in ``data``."""
    if not domains:
        raise DPError("no column has a declared domain to model", code="invalid_parameter")
    if not isinstance(epsilon, Fraction) or epsilon <= 0:
        raise DPError("epsilon must be a Fraction > 0", code="invalid_budget")
    if rows < 1 or max_rows_per_unit < 1:
        raise DPError("rows and max_rows_per_unit must be >= 1")
    m = int(max_rows_per_unit)
    d = len(domains)
    codes, outside = [], None
    for dom in domains:
        c, out = dom.encode(data[dom.name])
        codes.append(c)
        outside = out if outside is None else outside | out
    assert outside is not None
    keep = ~outside
    codes = [c[keep] for c in codes]
    k = planned_edges(domains)
    e_one, e_sel, e_two = split_epsilon(epsilon, d, k)
    measurements: list[Measurement] = []

    ones: list[np.ndarray] = []
    for dom, c in zip(domains, codes):
        noisy = laplace(np.bincount(c, minlength=dom.size).tolist(), m, e_one / d)
        measurements.append(Measurement(f"marginal:{dom.name}", e_one / d, noisy.scale))
        ones.append(np.asarray(noisy.values, dtype=np.float64))

    edges = _select_tree(domains, codes, ones, k, e_sel, m, measurements) if k else []
    twos: dict[tuple[int, int], np.ndarray] = {}
    for i, j in edges:
        table = _pair_counts(codes[i], codes[j], domains[i].size, domains[j].size)
        noisy = laplace(table.ravel().tolist(), m, e_two / k)
        measurements.append(Measurement(f"marginal:{domains[i].name}×{domains[j].name}", e_two / k, noisy.scale))
        twos[(i, j)] = np.asarray(noisy.values, dtype=np.float64).reshape(table.shape)

    spent = sum((x.epsilon for x in measurements), Fraction(0))
    if spent != epsilon:  # exact arithmetic: this is a bug, never a rounding
        raise DPError(f"accounting mismatch: spent {spent}, charged {epsilon}", code="library_error")

    rng = np.random.default_rng(secrets.randbits(128))  # sampling is post-processing
    sampled = _sample(domains, ones, twos, rows, rng)
    table = pa.table({dom.name: dom.decode(sampled[i], rng) for i, dom in enumerate(domains)})
    return Synthetic(table, epsilon, tuple(measurements),
                     tuple((domains[i].name, domains[j].name) for i, j in edges))


def _pair_counts(a: np.ndarray, b: np.ndarray, na: int, nb: int) -> np.ndarray:
    return np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb)


def _probabilities(counts: np.ndarray) -> np.ndarray:
    p = np.clip(counts, 0, None)
    total = p.sum()
    return p / total if total > 0 else np.full(len(counts), 1 / len(counts))


def _select_tree(domains: Sequence[Domain], codes: list[np.ndarray], ones: list[np.ndarray], k: int,
                 e_sel: Fraction, m: int, measurements: list[Measurement]) -> list[tuple[int, int]]:
    """Kruskal's maximum spanning tree, each edge picked by the exponential mechanism."""
    n_est = max(1.0, float(np.mean([np.clip(o, 0, None).sum() for o in ones])))
    probs = [_probabilities(o) for o in ones]
    candidates = [(i, j) for i, j in combinations(range(len(domains)), 2)
                  if domains[i].size * domains[j].size <= MAX_PAIR_CELLS]
    scores = {}
    for i, j in candidates:
        estimate = np.rint(np.outer(probs[i], probs[j]) * n_est).astype(np.int64)  # public
        true = _pair_counts(codes[i], codes[j], domains[i].size, domains[j].size)
        scores[(i, j)] = int(np.abs(true - estimate).sum())  # a unit moves it by at most m
    parent = list(range(len(domains)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    chosen: list[tuple[int, int]] = []
    per_round = e_sel / k
    for _ in range(k):
        options = [e for e in candidates if find(e[0]) != find(e[1])]
        index, scale = _noisy_max([scores[e] for e in options], m, per_round)
        measurements.append(Measurement("select_edge", per_round, scale))
        i, j = options[index]
        parent[find(i)] = find(j)
        chosen.append((i, j))
    return chosen


def _noisy_max(scores: list[int], sensitivity: int, epsilon: Fraction) -> tuple[int, float]:
    """The exponential mechanism via OpenDP's report-noisy-max (Gumbel), calibrated by its map."""
    dp = _opendp()
    domain = dp.vector_domain(dp.atom_domain(T="i64"))
    metric = dp.linf_distance(T="i64")  # not monotonic: scores may move in both directions
    scale = float(Fraction(2 * sensitivity) / epsilon)
    for _ in range(64):
        meas = dp.m.make_noisy_max(domain, metric, dp.max_divergence(), scale=scale)
        if Fraction(meas.map(sensitivity)) <= epsilon:
            return int(meas(scores)), scale
        scale = math.nextafter(scale, math.inf)
    raise DPError("could not calibrate the selection's scale", code="library_error")


def _sample(domains: Sequence[Domain], ones: list[np.ndarray], twos: dict[tuple[int, int], np.ndarray],
            rows: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Ancestral sampling over the forest: roots from one-ways, children given their parent."""
    d = len(domains)
    adjacent: dict[int, list[tuple[int, np.ndarray]]] = {i: [] for i in range(d)}
    for (i, j), t in twos.items():
        adjacent[i].append((j, t))      # t[parent=i, child=j]
        adjacent[j].append((i, t.T))
    out: list[np.ndarray | None] = [None] * d
    for root in range(d):
        if out[root] is not None:
            continue
        out[root] = rng.choice(domains[root].size, size=rows, p=_probabilities(ones[root]))
        stack = [root]
        while stack:
            p = stack.pop()
            for child, table in adjacent[p]:
                if out[child] is not None:
                    continue
                fallback = _probabilities(ones[child])
                cond = np.clip(table, 0, None)
                sums = cond.sum(axis=1, keepdims=True)
                cond = np.where(sums > 0, cond / np.where(sums > 0, sums, 1), fallback)
                parent_codes = out[p]
                assert parent_codes is not None
                child_codes = np.empty(rows, dtype=np.int64)
                for v in np.unique(parent_codes):
                    at = np.flatnonzero(parent_codes == v)
                    child_codes[at] = rng.choice(domains[child].size, size=len(at), p=cond[v])
                out[child] = child_codes
                stack.append(child)
    return [c for c in out if c is not None]
