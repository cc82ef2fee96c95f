"""Privacy budgets as exact values: (ε, δ) over :class:`fractions.Fraction`.

Floats would let a ledger of many small charges drift (0.1 × 10 ≠ 1.0 in binary floating
point), so a budget of 1.0 could admit an 11th charge of 0.1 or refuse the 10th. Budgets are
parsed from their decimal text (``Budget.of("0.1")`` is exactly 1/10) and compose by
addition (basic sequential composition, which is what the ledger charges).

>>> Budget.of("0.1") * 10 == Budget.of(1)
True
>>> Budget.of("0.3", "1e-6") + Budget.of("0.2")
Budget(epsilon=Fraction(1, 2), delta=Fraction(1, 1000000))
>>> Budget.of(-1)
Traceback (most recent call last):
...
dp.errors.DPError: epsilon must be finite and >= 0, got -1
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from .errors import DPError

Number = int | float | str | Decimal | Fraction


def to_fraction(value: Number, what: str = "value") -> Fraction:
    """An exact rational from decimal text, an int, a Decimal, a Fraction or a float.

    Floats are read through their shortest decimal repr (``0.1`` -> 1/10), which is what a
    steward wrote in YAML; booleans and non-finite values are refused.
    """
    if isinstance(value, bool):
        raise DPError(f"{what} must be a number, got a boolean", code="invalid_budget")
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DPError(f"{what} must be finite, got {value!r}", code="invalid_budget")
        return Fraction(Decimal(repr(value)))
    try:
        dec = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise DPError(f"{what} must be a number, got {value!r}", code="invalid_budget") from None
    if not dec.is_finite():
        raise DPError(f"{what} must be finite, got {value!r}", code="invalid_budget")
    return Fraction(dec)


@dataclass(frozen=True, order=False)
class Budget:
    """An (ε, δ) pair, exact, validated on construction: ε ≥ 0, 0 ≤ δ < 1."""

    epsilon: Fraction
    delta: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        if not isinstance(self.epsilon, Fraction) or not isinstance(self.delta, Fraction):
            raise DPError("Budget takes Fractions; use Budget.of(...) for numbers or text", code="invalid_budget")
        if self.epsilon < 0:
            raise DPError(f"epsilon must be finite and >= 0, got {_show(self.epsilon)}", code="invalid_budget")
        if not 0 <= self.delta < 1:
            raise DPError(f"delta must be in [0, 1), got {_show(self.delta)}", code="invalid_budget")

    @classmethod
    def of(cls, epsilon: Number, delta: Number = 0) -> Budget:
        eps = to_fraction(epsilon, "epsilon")
        if eps < 0:
            raise DPError(f"epsilon must be finite and >= 0, got {epsilon}", code="invalid_budget")
        return cls(eps, to_fraction(delta, "delta"))

    @classmethod
    def zero(cls) -> Budget:
        return cls(Fraction(0), Fraction(0))

    def __add__(self, other: Budget) -> Budget:
        """Basic sequential composition: ε and δ add."""
        if not isinstance(other, Budget):
            return NotImplemented
        return Budget(self.epsilon + other.epsilon, self.delta + other.delta)

    def __sub__(self, other: Budget) -> Budget:
        """What remains of ``self`` after ``other`` (refuses to go negative)."""
        if not other.fits(self):
            raise DPError(f"{other} does not fit in {self}", code="budget_exceeded")
        return Budget(self.epsilon - other.epsilon, self.delta - other.delta)

    def __mul__(self, k: int) -> Budget:
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            return NotImplemented
        return Budget(self.epsilon * k, self.delta * k)

    __rmul__ = __mul__

    def split(self, parts: int) -> Budget:
        """This budget divided evenly into ``parts`` (exact)."""
        if parts < 1:
            raise DPError("a budget splits into at least one part")
        return Budget(self.epsilon / parts, self.delta / parts)

    def scaled(self, share: Fraction) -> Budget:
        if not 0 <= share <= 1:
            raise DPError(f"a share must be in [0, 1], got {_show(share)}")
        return Budget(self.epsilon * share, self.delta * share)

    def fits(self, total: Budget) -> bool:
        """Whether this charge fits within ``total`` (both ε and δ)."""
        return self.epsilon <= total.epsilon and self.delta <= total.delta

    def is_zero(self) -> bool:
        return self.epsilon == 0 and self.delta == 0

    def to_dict(self) -> dict[str, str | float]:
        """JSON form: exact decimal text where finite, plus a float for people."""
        return {"epsilon": _show(self.epsilon), "delta": _show(self.delta),
                "epsilon_float": float(self.epsilon), "delta_float": float(self.delta)}

    def __str__(self) -> str:
        return f"(ε={_show(self.epsilon)}, δ={_show(self.delta)})"


def _show(x: Fraction) -> str:
    """Exact decimal text when the fraction has one (denominator 2^a·5^b), else p/q."""
    d = x.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    if d != 1:
        return f"{x.numerator}/{x.denominator}"
    s = format(Decimal(x.numerator) / Decimal(x.denominator), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def from_text(epsilon: str, delta: str) -> Budget:
    """Inverse of :meth:`Budget.to_dict` for the exact fields (``"1/3"`` or ``"0.1"``)."""
    def parse(t: str, what: str) -> Fraction:
        if "/" in t:
            num, den = t.split("/", 1)
            return Fraction(int(num), int(den))
        return to_fraction(t, what)
    return Budget(parse(epsilon, "epsilon"), parse(delta, "delta"))
