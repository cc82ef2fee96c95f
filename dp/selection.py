"""DP partition selection: which group keys may appear when keys are not public.

Uses OpenDP's ``make_laplace_threshold`` (propose-test-release over a map of counts; Rogers
2023, "A Unifying Privacy Analysis Framework for Unknown Domain Algorithms in DP"): every
key's count gets discrete Laplace noise and only keys whose noisy count reaches a threshold
are released. A key held by one unit has a count of at most ``max_rows_per_unit``; the
threshold is chosen so that it survives with probability at most δ. The noisy counts it
returns are themselves the released (ε, δ)-DP counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from .errors import DPError
from .noise import _opendp, calibrate_scale


@dataclass(frozen=True)
class Selected:
    counts: dict[str, int]
    scale: float
    threshold: int
    epsilon: Fraction
    delta: Fraction


def _measurement(scale: float, threshold: int):  # type: ignore[no-untyped-def]
    dp = _opendp()
    domain = dp.map_domain(dp.atom_domain(T="String"), dp.atom_domain(T="i64"))
    metric = dp.l01inf_distance(dp.absolute_distance(T="i64"))
    return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)


def privacy(scale: float, threshold: int, l0: int, linf: int, l1: int | None = None) -> tuple[float, float]:
    """(ε, δ) from OpenDP's map when a unit touches at most ``l0`` keys, adds at most ``linf``
    to one key and ``l1`` (default ``l0*linf``) in all."""
    eps, delta = _measurement(scale, threshold).map((l0, min(l1 or l0 * linf, l0 * linf), linf))
    return float(eps), float(delta)


@lru_cache(maxsize=256)
def calibrate(l0: int, linf: int, epsilon: Fraction, delta: Fraction, l1: int | None = None) -> tuple[float, int]:
    """Scale for ε (L1 sensitivity ``l1``, default ``l0*linf``) and the smallest threshold with δ' <= δ."""
    if delta <= 0:
        raise DPError("partition selection needs delta > 0", code="invalid_budget")
    l1 = min(l1 or l0 * linf, l0 * linf)
    scale = calibrate_scale(l1, epsilon)
    lo, hi = linf, linf
    while True:
        eps, d = privacy(scale, hi, l0, linf, l1)
        if Fraction(eps) > epsilon:
            raise DPError("OpenDP's threshold map charges more epsilon than planned", code="library_error")
        if Fraction(d) <= delta:
            break
        lo, hi = hi, hi * 2
        if hi > 2**40:
            raise DPError("no threshold reaches this delta", code="invalid_budget")
    while lo < hi:  # smallest threshold with delta' <= delta
        mid = (lo + hi) // 2
        if Fraction(privacy(scale, mid, l0, linf, l1)[1]) <= delta:
            hi = mid
        else:
            lo = mid + 1
    return scale, hi


def select(counts: Mapping[str, int], *, l0: int, linf: int, epsilon: Fraction, delta: Fraction,
           l1: int | None = None) -> Selected:
    """Noisy counts of the keys that pass the threshold (keys are strings; counts integers)."""
    scale, threshold = calibrate(l0, linf, epsilon, delta, l1)
    out = _measurement(scale, threshold)({str(k): int(v) for k, v in counts.items()})
    return Selected({str(k): int(v) for k, v in out.items()}, scale, threshold, epsilon, delta)
