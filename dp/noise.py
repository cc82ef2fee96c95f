"""Noise from OpenDP's vetted samplers only, on integers.

Every released number is an integer count or a fixed-point integer (see :mod:`dp.grid`) plus
**discrete** Laplace noise (``opendp.measurements.make_laplace`` on an integer domain, Canonne,
Kamath & Steinke 2020), sampled from OpenDP's CSPRNG-backed sampler. There is no float Laplace
here (Mironov 2012: the low bits of float Laplace noise reveal the value it was added to) and no
way to pass a seed: callers cannot choose the randomness.

Calibration is exact on our side and checked on OpenDP's: for an L1 sensitivity Δ (an integer,
in grid units) and a charge ε (a Fraction), the scale is the smallest float ≥ Δ/ε whose
OpenDP privacy map says ≤ ε, so the ε charged to a budget is never smaller than the ε OpenDP
proves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

from .errors import DPError

_MAX_I64 = 2**63 - 1


@lru_cache(maxsize=1)
def _opendp() -> Any:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp


def calibrate_scale(sensitivity: int, epsilon: Fraction) -> float:
    """The discrete Laplace scale that makes an L1-sensitivity-``sensitivity`` query ε-DP.

    >>> calibrate_scale(1, Fraction(1, 2))
    2.0
    """
    if not isinstance(sensitivity, int) or sensitivity < 1:
        raise DPError(f"sensitivity must be a positive integer, got {sensitivity!r}")
    if epsilon <= 0:
        raise DPError("epsilon must be > 0 to release a noisy value", code="invalid_budget")
    exact = Fraction(sensitivity) / epsilon
    scale = float(exact)
    if Fraction(scale) < exact:  # float() rounds to nearest: never below the exact scale
        scale = math.nextafter(scale, math.inf)
    # OpenDP's map rounds conservatively; step up until it proves <= epsilon.
    for _ in range(64):
        if Fraction(laplace_epsilon(sensitivity, scale)) <= epsilon:
            return scale
        scale = math.nextafter(scale, math.inf)
    raise DPError("could not calibrate a noise scale for this epsilon", code="library_error")


def laplace_epsilon(sensitivity: int, scale: float) -> float:
    """ε as OpenDP's privacy map computes it for a discrete Laplace vector mechanism."""
    return float(_vector_laplace(scale).map(sensitivity))


@lru_cache(maxsize=256)
def _vector_laplace(scale: float) -> Any:
    dp = _opendp()
    return dp.m.make_laplace(dp.vector_domain(dp.atom_domain(T="i64")), dp.l1_distance(T="i64"), scale=scale)


@dataclass(frozen=True)
class NoisyVector:
    """Integers released with discrete Laplace noise, and how they were noised."""

    values: tuple[int, ...]
    scale: float
    sensitivity: int
    epsilon: Fraction

    def ci_halfwidth(self, alpha: float = 0.05) -> int:
        return laplace_ci_halfwidth(self.scale, alpha)


def laplace(values: Sequence[int], sensitivity: int, epsilon: Fraction) -> NoisyVector:
    """Release ``values`` (integers; L1 sensitivity ``sensitivity`` as a whole vector) under ε.

    One OpenDP measurement over the whole vector: the vector is ε-DP, whatever its length.
    """
    ints = [int(v) for v in values]
    if any(abs(v) > _MAX_I64 // 2 for v in ints):
        raise DPError("a value is too large for the integer noise domain")
    scale = calibrate_scale(sensitivity, epsilon)
    out = _vector_laplace(scale)(ints) if ints else []
    return NoisyVector(tuple(int(v) for v in out), scale, sensitivity, epsilon)


def laplace_ci_halfwidth(scale: float, alpha: float = 0.05) -> int:
    """Smallest integer t with P(|Z| > t) <= alpha for discrete Laplace Z of ``scale``.

    For the discrete Laplace, P(|Z| >= t) = 2·e^(-t/s) / (1 + e^(-1/s)) for t >= 1.
    """
    if not 0 < alpha < 1:
        raise DPError("alpha must be in (0, 1)")
    q = math.exp(-1 / scale)
    # P(|Z| > t) = P(|Z| >= t+1) = 2 q^(t+1) / (1 + q) <= alpha
    t = math.ceil(scale * math.log(2 / (alpha * (1 + q)))) - 1
    return max(0, t)
