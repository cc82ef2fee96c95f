"""Budget arithmetic: exact, validated, composition by addition."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dp.budget import Budget, from_text, to_fraction
from dp.errors import DPError

eps = st.fractions(min_value=0, max_value=10, max_denominator=10**6)
dels = st.fractions(min_value=0, max_value=Fraction(1, 10**4), max_denominator=10**9)


def test_decimal_text_is_exact() -> None:
    assert Budget.of("0.1").epsilon == Fraction(1, 10)
    assert Budget.of(0.1).epsilon == Fraction(1, 10)  # floats read through their shortest repr
    assert sum((Budget.of(0.1) for _ in range(10)), Budget.zero()) == Budget.of(1)


@pytest.mark.parametrize("bad", [-1, "-0.1", float("nan"), float("inf"), "x", True])
def test_invalid_epsilon_refused(bad: object) -> None:
    with pytest.raises(DPError):
        Budget.of(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, 1, 2])
def test_invalid_delta_refused(bad: object) -> None:
    with pytest.raises(DPError):
        Budget.of(1, bad)  # type: ignore[arg-type]


def test_frozen() -> None:
    b = Budget.of(1)
    with pytest.raises(AttributeError):
        b.epsilon = Fraction(2)  # type: ignore[misc]


@given(eps, dels, eps, dels)
def test_composition_is_exact_and_commutative(e1: Fraction, d1: Fraction, e2: Fraction, d2: Fraction) -> None:
    a, b = Budget(e1, d1), Budget(e2, d2)
    assert a + b == b + a == Budget(e1 + e2, d1 + d2)
    assert (a + b) - b == a
    assert a.fits(a + b)


@given(eps, st.integers(min_value=1, max_value=1000))
def test_split_recomposes(e: Fraction, k: int) -> None:
    b = Budget(e)
    assert b.split(k) * k == b


@given(eps, dels)
def test_text_round_trip(e: Fraction, d: Fraction) -> None:
    b = Budget(e, d)
    t = b.to_dict()
    assert from_text(str(t["epsilon"]), str(t["delta"])) == b


def test_overdraw_refused() -> None:
    with pytest.raises(DPError) as e:
        Budget.of("0.5") - Budget.of("0.6")
    assert e.value.code == "budget_exceeded"


def test_to_fraction_of_decimal_strings() -> None:
    assert to_fraction("1e-6") == Fraction(1, 10**6)
