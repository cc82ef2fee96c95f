"""The randomness of DP-SGD: Poisson batches and Gaussian noise, never user-seedable.

Every step gets **fresh** generators seeded from the operating system's CSPRNG
(:mod:`secrets`): a NumPy ``PCG64DXSM`` (its 256-bit state) for the step's Poisson batch and a torch
generator (64-bit seed) for its noise. Nothing a job controls (``torch.manual_seed``,
``numpy.random.seed``, the data, the config) reaches these seeds, so two runs on the same inputs
never share a batch or a noise draw, and one step's seed says nothing about another's.

**Poisson sampling, in O(batch) per step.** Including each of N rows independently with
probability p is the same distribution as drawing the batch size k ~ Binomial(N, p) and then a
uniformly random k-subset of the rows (given its size, a Poisson sample is a uniform subset of
that size). So a step draws k with NumPy's binomial sampler and the subset with
``Generator.choice(replace=False)`` (exact integer draws), instead of one uniform per row. The
rate is kept at or below the planned q: p = ``floor(q·2³²)/2³²`` shrunk by 2⁻²⁰ (relative). NumPy's
binomial sampler runs exact algorithms (inversion, BTPE) in float64, whose rounding moves the
probabilities by orders of magnitude less than that margin; the accountant's ε, non-decreasing
in q, bounds the realised rate.

**One Gaussian draw per coordinate.** The noise is ``std · N(0, 1)``, one float32 draw per
parameter, from the step's generator. Earlier this drew four and returned their sum halved, as
Opacus' ``secure_mode`` does (Holohan et al. 2021 §5.1) — the same distribution, four times the
draws (~70 µs a step on the benchmark model, a fifth of the step). What that mitigation is for:
a float Gaussian sample has gaps and structure in its low bits, so from *one released value*
``x + z`` an attacker can sometimes tell which ``x`` it came from (Mironov 2012; Jin et al.
2021). Summing four samples fills the gaps. DP-SGD never releases such a value: a step's noisy
gradient is scaled by the learning rate, mixed into the momentum, added to the weights in float32
(rounded to the weights' own exponent, well above the noise's low bits), and only the weights
after every step leave — each coordinate the rounded sum of hundreds of steps' noise, already a
sum of many independent Gaussians. The intermediate noisy gradients and weights never leave the
trainer's sandbox. So the four-sample sum protects nothing here that the training sum does not;
what stays essential is that nobody can predict or replay the draws, which the per-step CSPRNG
seeds give. (The Opacus path, for custom graphs, keeps Opacus' ``secure_mode``.)

What this does **not** give, honestly:

* neither PCG64 nor torch's Mersenne Twister is a cryptographic generator: a step's stream is
  fixed by its seed, and someone who saw enough raw draws could reconstruct it. Nobody sees raw
  draws here (only weights after many noisy steps), and the seeds change every step, but this is
  "CSPRNG-seeded", not "CSPRNG-generated". Opacus' ``secure_mode`` would draw from
  ``torchcsprng``, which is unmaintained and not installable here; drawing every Gaussian from
  ``os.urandom`` measured too slow on these machines (≈100 MB/s, more than the step itself).
* the noise is floating-point Gaussian, not a discrete Gaussian (see above for why that is not
  observable in the released weights); it is not a formal proof.
"""

from __future__ import annotations

import math
import secrets
import threading

import numpy as np
import torch

_U32 = 1 << 32
_U128 = (1 << 128) - 1
_local = threading.local()
#: the relative margin by which the binomial's rate stays below the planned q (see above)
_RATE_MARGIN = 2.0 ** -20


def step_generator() -> torch.Generator:
    """The noise generator of one step, seeded with 64 fresh bits from the OS CSPRNG."""
    return torch.Generator().manual_seed(secrets.randbits(64))


def step_sampler() -> np.random.Generator:
    """The batch sampler of one step: a PCG64DXSM whose whole state — 128-bit state, 128-bit
    increment — is 256 fresh bits from the OS CSPRNG.

    One generator object per thread is re-keyed each step: setting the state directly costs ~3 µs
    where seeding a new one through NumPy's ``SeedSequence`` cost ~15 µs. ``SeedSequence`` spreads
    a seed of little entropy over the state; 256 bits of the CSPRNG need no spreading."""
    gen = getattr(_local, "sampler", None)
    if gen is None:
        gen = _local.sampler = np.random.Generator(np.random.PCG64DXSM(0))
    bits = secrets.randbits(256)
    gen.bit_generator.state = {"bit_generator": "PCG64DXSM", "has_uint32": 0, "uinteger": 0,
                               "state": {"state": bits >> 128, "inc": (bits & _U128) | 1}}
    return gen


def poisson_threshold(q: float) -> int:
    if not 0.0 < q <= 1.0:
        raise ValueError("the sampling rate must be in (0, 1]")
    return min(_U32, math.floor(q * _U32))  # q·2³² is exact in float64; floor keeps the rate ≤ q


def poisson_rate(q: float) -> float:
    """The inclusion probability a step draws with: at most q (see the module docstring)."""
    t = poisson_threshold(q)
    return 1.0 if t == _U32 else t / _U32 * (1.0 - _RATE_MARGIN)


def poisson_indices(n: int, q: float, sampler: np.random.Generator) -> torch.Tensor:
    """Indices (ascending) of the rows in this step's batch: each of ``n`` rows independently, at
    rate ≤ q — drawn as a binomial size and a uniform subset of that size."""
    p = poisson_rate(q)
    if p == 1.0:
        return torch.arange(n)
    k = int(sampler.binomial(n, p))
    if k == 0:
        return torch.zeros(0, dtype=torch.int64)
    picked = sampler.choice(n, k, replace=False)
    picked.sort()  # rows in storage order: the gather reads memory forward
    return torch.from_numpy(picked.astype(np.int64, copy=False))


def gaussian(numel: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """``numel`` float32 draws of N(0, std²), one per coordinate (see the module docstring)."""
    if std == 0:
        return torch.zeros(numel)
    return torch.randn(numel, generator=generator).mul_(std)
