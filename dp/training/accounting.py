"""Privacy accounting of DP-SGD: σ chosen before training, ε certified after, by two accountants.

* :func:`plan_privacy` fixes the sampling rate q (Poisson), the number of steps and the noise
  multiplier σ from the target (ε, δ) **before** any data is touched by the optimiser, using the
  PRV accountant (Gopi et al. 2021) — its ε is an upper bound with an explicit error
  (``eps_error``), and the σ search keeps the side whose upper bound is ≤ the target.
* :func:`certify` recomputes ε for the steps actually taken with PRV (lower / estimate / upper)
  and cross-checks it with the RDP accountant (Mironov 2017), an independent and looser bound:
  the PRV upper bound must not exceed the RDP bound (PRV is the tighter of two upper bounds), and
  must not be implausibly far below it. Either failure refuses the release.
* δ must be far below 1/N: we require δ ≤ 1/(10·N).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from .errors import SpecInvalid, TrainingError

EPS_ERROR = 0.01  # absolute error allowed in the PRV ε estimate
#: PRV's upper bound may not be below this share of the RDP bound (a sign of a broken accountant)
CROSS_CHECK_FLOOR = 0.5


@dataclass(frozen=True)
class PrivacyPlan:
    n_train: int
    sample_rate: float
    steps: int
    noise_multiplier: float
    max_grad_norm: float
    target_epsilon: float
    target_delta: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Certificate:
    accountant: str
    epsilon: float  # what we certify: the PRV upper bound
    epsilon_estimate: float
    epsilon_lower: float
    eps_error: float
    epsilon_rdp: float  # the cross-check
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sampling(n_train: int, batch_size: int) -> tuple[float, int]:
    """Poisson rate q = 1/k with k = round(N / batch) batches per epoch (so Opacus' DPDataLoader,
    which derives its length from q, runs exactly k steps per epoch at exactly rate q)."""
    if n_train < 2:
        raise SpecInvalid("too few training rows")
    k = max(1, round(n_train / batch_size))
    return 1.0 / k, k


def plan_privacy(n_train: int, batch_size: int, epochs: int, target_epsilon: float, target_delta: float,
                 max_grad_norm: float) -> PrivacyPlan:
    if not target_delta <= 1.0 / (10 * n_train):
        raise SpecInvalid(f"delta {target_delta:g} is not far below 1/N: with {n_train} training rows use at most "
                          f"{1 / (10 * n_train):.2g}")
    q, per_epoch = sampling(n_train, batch_size)
    steps = per_epoch * epochs
    sigma = choose_noise(target_epsilon, target_delta, q, steps)
    return PrivacyPlan(n_train, q, steps, float(sigma), max_grad_norm, target_epsilon, target_delta)


def _bisect(eps_of: Any, target: float, lo: float, hi: float, iterations: int) -> float:
    """Smallest σ found in [lo, hi] with eps_of(σ) ≤ target; ``hi`` must satisfy it."""
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if eps_of(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def choose_noise(target_epsilon: float, target_delta: float, q: float, steps: int) -> float:
    """σ for the target, before training: bracket with the fast RDP bound (looser, so its σ is
    enough for PRV too), then tighten with a few PRV evaluations (upper bounds)."""
    rdp = lambda s: _rdp(s, q, steps, target_delta)  # noqa: E731
    hi = 0.5
    while rdp(hi) > target_epsilon:
        hi *= 2
        if hi > 1e4:
            raise SpecInvalid(f"no noise level reaches epsilon {target_epsilon:g} with these settings")
    sigma_rdp = _bisect(rdp, target_epsilon, hi / 2 if hi > 0.5 else 0.05, hi, 10)
    prv = lambda s: _prv(s, q, steps, target_delta)[2]  # noqa: E731
    sigma = _bisect(prv, target_epsilon, 0.5 * sigma_rdp, sigma_rdp, 6)
    if prv(sigma) > target_epsilon:  # cannot happen unless the accountants disagree: fail closed
        raise TrainingError("the accountants disagree on the noise level", code="accounting_mismatch")
    return sigma


def _prv(sigma: float, q: float, steps: int, delta: float) -> tuple[float, float, float]:
    """(lower, estimate, upper) of ε from the PRV accountant, with ``EPS_ERROR`` and δ/1000 error."""
    from opacus.accountants.prv import PRVAccountant

    acc = PRVAccountant()
    acc.history = [(sigma, q, steps)]
    delta_error = delta / 1000
    dprv = acc._get_dprv(eps_error=EPS_ERROR, delta_error=delta_error)
    lower, estimate, upper = dprv.compute_epsilon(delta, delta_error, EPS_ERROR)
    return float(lower), float(estimate), float(upper)


def _rdp(sigma: float, q: float, steps: int, delta: float) -> float:
    from opacus.accountants.rdp import RDPAccountant

    acc = RDPAccountant()  # its default orders; a larger order would only tighten it
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():  # "optimal order is the largest alpha": the bound is looser, still valid
        warnings.simplefilter("ignore", UserWarning)
        return float(acc.get_epsilon(delta))


def certify(sigma: float, q: float, steps: int, delta: float) -> Certificate:
    """ε of ``steps`` Poisson-subsampled Gaussian steps; raises if the accountants disagree."""
    if steps == 0:
        return Certificate("prv", 0.0, 0.0, 0.0, EPS_ERROR, 0.0, delta, sigma, q, 0)
    if sigma <= 0:
        return Certificate("none", math.inf, math.inf, math.inf, EPS_ERROR, math.inf, delta, sigma, q, steps)
    lower, estimate, upper = _prv(sigma, q, steps, delta)
    rdp = _rdp(sigma, q, steps, delta)
    if not (math.isfinite(upper) and upper <= rdp * 1.0001 + EPS_ERROR and upper >= CROSS_CHECK_FLOOR * rdp):
        raise TrainingError(f"the accountants disagree (PRV {upper:.4g}, RDP {rdp:.4g}): nothing is released",
                            code="accounting_mismatch")
    return Certificate("prv", upper, estimate, lower, EPS_ERROR, rdp, delta, sigma, q, steps)
