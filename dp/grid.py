"""Fixed-point grids: how real-valued measures become integers before noise.

A measure with declared bounds ``[lo, hi]`` is clamped, multiplied by ``2**exponent`` and
truncated toward zero, *inside the engine's SQL*, so sums are exact integer sums (no float
summation whose rounding would break the sensitivity bound; Casacuberta et al. 2022). Noise
is added in grid units and the result multiplied back by ``2**-exponent``: a power of two, so
every noisy value is exactly ``k · 2**-exponent`` for an integer ``k`` — it lies on the grid and
its low bits carry nothing but ``k``. (The gate then rounds it to the policy's significant digits,
which can leave the binary grid, e.g. 233.7, but is a function of ``k`` alone.)

The exponent is chosen from the bounds alone (never from data): about 2**20 grid steps span
the larger bound.

>>> g = Grid.for_bounds(Fraction(0), Fraction(1))
>>> g.exponent, g.max_units
(20, 1048576)
>>> g.to_value(3)
2.86102294921875e-06
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from .errors import DPError

#: grid steps across the larger of |lo|, |hi|
STEPS_EXPONENT = 20


@dataclass(frozen=True)
class Grid:
    """Values are integers ``k``; the real value is ``k * 2**-exponent``."""

    exponent: int
    lo: Fraction
    hi: Fraction

    @classmethod
    def for_bounds(cls, lo: Fraction, hi: Fraction) -> Grid:
        if not lo < hi:
            raise DPError(f"bounds must satisfy lo < hi, got [{lo}, {hi}]", code="invalid_bounds")
        top = max(abs(lo), abs(hi))
        exponent = STEPS_EXPONENT - (math.floor(math.log2(top)) if top > 0 else 0)
        return cls(exponent, lo, hi)

    @property
    def scale(self) -> Fraction:
        return Fraction(2) ** self.exponent

    @property
    def max_units(self) -> int:
        """The largest |grid value| one clamped row can have (truncation toward zero)."""
        return math.floor(max(abs(self.lo), abs(self.hi)) * self.scale)

    def sensitivity(self, rows_per_unit: int) -> int:
        """L1 sensitivity in grid units of a sum when a unit adds at most ``rows_per_unit`` rows
        (weights <= 1 each, summing to <= rows_per_unit, values truncated toward zero)."""
        return max(1, math.floor(rows_per_unit * max(abs(self.lo), abs(self.hi)) * self.scale))

    def to_value(self, k: int) -> float:
        """``k · 2**-exponent`` as a float: exact for |k| < 2**53 (a power-of-two step)."""
        return math.ldexp(k, -self.exponent)

    def encode(self, x: float) -> int:
        """The grid value the engine's SQL computes for one row of weight 1 (for tests)."""
        clamped = min(max(Fraction(x), self.lo), self.hi)
        return math.trunc(clamped * self.scale)


#: counts are weighted (a unit's rows may carry weight < 1): fixed point with this exponent
COUNT_EXPONENT = 10
