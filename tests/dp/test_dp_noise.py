"""Noise: ε recomputed independently, an empirical ε lower bound below the claim, grid values."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from dp_fixtures import empirical_epsilon

from dp import noise, quantile, selection
from dp.errors import DPError
from dp.grid import Grid

N = 20_000


@pytest.mark.parametrize(("sens", "eps"), [(1, Fraction(1, 10)), (1, Fraction(1)), (5, Fraction(1, 3)),
                                           (5121, Fraction(1, 6)), (2**21, Fraction(1, 2))])
def test_released_epsilon_recomputed_by_closed_form_and_opendp(sens: int, eps: Fraction) -> None:
    scale = noise.calibrate_scale(sens, eps)
    # closed form for the discrete Laplace: eps = sensitivity / scale
    assert Fraction(sens) / Fraction(scale) <= eps
    # and OpenDP's own privacy map (a second accountant)
    assert Fraction(noise.laplace_epsilon(sens, scale)) <= eps
    # tight: not wastefully noisy (within 1e-9 relative)
    assert float(eps) - sens / scale < 1e-9 * float(eps)


def test_no_epsilon_no_noise() -> None:
    with pytest.raises(DPError):
        noise.laplace([1], 1, Fraction(0))


@pytest.mark.parametrize("eps", [Fraction(1, 2), Fraction(1)])
def test_empirical_epsilon_of_count_stays_below_claim(eps: Fraction) -> None:
    # Neighbouring datasets: counts 100 and 101 (one unit, one row). N samples each, one call.
    a = np.array(noise.laplace([100] * N, 1, eps).values)
    b = np.array(noise.laplace([101] * N, 1, eps).values)
    est = empirical_epsilon(a, b)
    assert est <= float(eps)
    # The estimate is informative: a mechanism with 3x the ε would be caught.
    c = np.array(noise.laplace([101] * N, 1, 3 * eps).values)
    d = np.array(noise.laplace([100] * N, 1, 3 * eps).values)
    assert empirical_epsilon(d, c) > float(eps)


def test_empirical_epsilon_of_sum_stays_below_claim() -> None:
    # A clamped fixed-point sum: one unit adds at most 5 rows in [0, 1] (grid 2**-20).
    # Measured on a coarse grid (sensitivity 5 units) so the histogram has mass per bucket.
    eps = Fraction(1)
    sens = 5
    a = np.array(noise.laplace([1000] * N, sens, eps).values)
    b = np.array(noise.laplace([1000 + sens] * N, sens, eps).values)
    est = empirical_epsilon(a, b)
    assert 0.3 < est <= float(eps)


def test_released_sums_lie_on_the_grid() -> None:
    g = Grid.for_bounds(Fraction(0), Fraction(1000))
    values = [g.encode(x) for x in (0.1, 999.9999, 3.14159, 1e9, -5)]
    assert values[3] == g.max_units and values[4] == 0  # clamped
    out = noise.laplace([sum(values)] * 2000, g.sensitivity(3), Fraction(1))
    for k in out.values:
        v = g.to_value(k)
        # exactly k * 2**-e: the float has no low bits beyond the grid (no Mironov artefacts)
        assert Fraction(v) * g.scale == k
        m, e = math.frexp(v) if v else (0.0, 0)
        assert v == 0 or (Fraction(m) * 2**53).denominator == 1


def test_ci_halfwidth_covers_95_percent() -> None:
    vec = noise.laplace([0] * N, 3, Fraction(1, 2))
    t = vec.ci_halfwidth(0.05)
    inside = np.mean(np.abs(np.array(vec.values)) <= t)
    assert 0.94 <= inside <= 0.97
    assert abs(np.array(vec.values)).max() > t  # the bound is a real quantile, not a cap


def test_partition_selection_drops_a_key_held_by_one_unit() -> None:
    eps, delta = Fraction(1, 2), Fraction(1, 10**6)
    scale, threshold = selection.calibrate(5, 5, eps, delta)
    e, d = selection.privacy(scale, threshold, 5, 5)
    assert Fraction(e) <= eps and Fraction(d) <= delta
    assert threshold > 5
    seen = 0
    for _ in range(200):
        out = selection.select({"big": 10_000, "alone": 5}, l0=5, linf=5, epsilon=eps, delta=delta)
        assert "big" in out.counts
        seen += "alone" in out.counts
    assert seen == 0


def test_quantile_is_near_the_median() -> None:
    values = list(range(0, 10_000))
    cands = quantile.candidates(0, 10_000, 101)
    got = [quantile.quantile(values, cands, 0.5, Fraction(1)).value for _ in range(5)]
    assert all(4500 <= g <= 5500 for g in got)
