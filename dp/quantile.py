"""DP quantiles: OpenDP's ``make_quantile_score_candidates`` (Smith 2011) scored over declared
candidates, then ``make_noisy_max`` (report-noisy-max with Gumbel noise = the exponential
mechanism) picks one. Candidates come from the declared bounds, never from the data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

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
