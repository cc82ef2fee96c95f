"""DP quantiles: OpenDP's ``make_quantile_score_candidates`` (Smith 2011) scored over declared
candidates, then ``make_noisy_max`` (report-noisy-max with Gumbel noise = the exponential
mechanism) picks one. Candidates come from the declared bounds, never from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .errors import DPError
from .noise import _opendp


@dataclass(frozen=True)
class Quantile:
    value: int
    epsilon: Fraction
    scale: float


def candidates(lo: int, hi: int, count: int = 1024) -> list[int]:
    """Evenly spaced integer candidates across the declared bounds (grid units)."""
    if hi <= lo or count < 2:
        raise DPError("candidates need lo < hi and at least two of them", code="invalid_bounds")
    step = max(1, (hi - lo) // (count - 1))
    out = list(range(lo, hi, step))
    return out if out[-1] == hi else [*out, hi]


def quantile(values: Sequence[int], cands: Sequence[int], alpha: float, epsilon: Fraction,
             rows_per_unit: int = 1) -> Quantile:
    """The ``alpha``-quantile of ``values`` among ``cands``, ε-DP when a unit adds at most
    ``rows_per_unit`` values."""
    dp = _opendp()
    if not 0 <= alpha <= 1:
        raise DPError("alpha must be in [0, 1]")
    score = dp.t.make_quantile_score_candidates(dp.vector_domain(dp.atom_domain(T="i64")),
                                                dp.symmetric_distance(), list(cands), alpha)
    d_out = score.map(rows_per_unit)  # L-inf sensitivity of the scores
    # the exponential mechanism's epsilon is 2·d_out/scale for an (unknown-size) score vector
    scale = float(Fraction(2 * d_out) / epsilon)
    while True:
        meas = score >> dp.m.make_noisy_max(score.output_domain, score.output_metric,
                                            dp.max_divergence(), scale=scale, negate=True)
        if Fraction(meas.map(rows_per_unit)) <= epsilon:
            break
        scale = scale * (1 + 1e-12)
    index = meas([int(v) for v in values])
    return Quantile(int(cands[index]), epsilon, scale)


# --------------------------------------------------------------------------- from a noisy histogram
#
# The gate's quantiles: the engine counts (weighted, fixed-point) rows per bin of a public grid
# of QUANTILE_BINS equal-width bins over the declared bounds; the vector of all cells' bins gets
# discrete Laplace noise (:func:`dp.noise.laplace`, L1 sensitivity = a unit's total weight), and
# OpenDP's ``make_quantiles_from_counts`` turns each cell's noisy counts into its quantiles. That
# last step reads only noisy counts and public edges: post-processing, so every quantile of a
# column (a median and a p90 alike) costs the histogram's ε once, and nothing more.

#: equal-width bins over a measure's declared bounds (the quantiles' resolution is (hi-lo)/128)
QUANTILE_BINS = 128


def bin_edges(lo: float, hi: float, bins: int = QUANTILE_BINS) -> list[float]:
    """``bins + 1`` public edges over the declared bounds (never from data)."""
    if not lo < hi or bins < 1:
        raise DPError("bin edges need lo < hi and at least one bin", code="invalid_bounds")
    width = (hi - lo) / bins
    return [lo + i * width for i in range(bins)] + [hi]


def from_noisy_counts(counts: Sequence[float], edges: Sequence[float], alphas: Sequence[float]) -> list[float | None]:
    """Quantiles ``alphas`` of one cell from its noisy bin counts (post-processing only).

    The noisy counts are used as they are, negatives included: clipping them at 0 would add
    positive mass to every empty bin and pull quantiles toward the middle of the bounds (measured:
    a median 35% too high on 3,000 rows over 128 bins). A cell whose noisy total is not positive
    has no quantile (None). Interpolation is linear within a bin (OpenDP ``"linear"``); results
    are clamped to the bounds.
    """
    if len(counts) + 1 != len(edges):
        raise DPError("a histogram needs one count per bin")
    values = [float(c) for c in counts]
    if sum(values) <= 0:
        return [None] * len(alphas)
    out = _from_counts(tuple(float(e) for e in edges), tuple(float(a) for a in alphas))(values)
    lo, hi = float(edges[0]), float(edges[-1])
    return [min(max(float(v), lo), hi) for v in out]


@lru_cache(maxsize=64)
def _from_counts(edges: tuple[float, ...], alphas: tuple[float, ...]):  # type: ignore[no-untyped-def]
    dp = _opendp()
    return dp.t.make_quantiles_from_counts(bin_edges=list(edges), alphas=list(alphas), interpolation="linear",
                                           TA=float, F=float)
