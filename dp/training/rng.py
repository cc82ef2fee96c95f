"""The randomness of DP-SGD: Poisson batches and Gaussian noise, never user-seedable.

Every step gets **fresh** generators seeded from the operating system's CSPRNG
(:mod:`secrets`): a NumPy ``PCG64DXSM`` (128-bit seed) for the step's Poisson batch and a torch
generator (64-bit seed) for its noise. Nothing a job controls (``torch.manual_seed``,
``numpy.random.seed``, the data, the config) reaches these seeds, so two runs on the same inputs
never share a batch or a noise draw, and one step's seed says nothing about another's.

What this does **not** give, honestly:

* neither PCG64 nor torch's Mersenne Twister is a cryptographic generator: a step's stream is
  fixed by its seed, and someone who saw enough raw draws could reconstruct it. Nobody sees raw
  draws here (only weights after many noisy steps), and the seeds change every step, but this is
  "CSPRNG-seeded", not "CSPRNG-generated". Opacus' ``secure_mode`` would draw from
  ``torchcsprng``, which is unmaintained and not installable here; drawing every Gaussian from
  ``os.urandom`` measured too slow on these machines (≈100 MB/s, more than the step itself).
* the noise is floating-point Gaussian, not a discrete Gaussian: Mironov (2012) and Jin et al.
  (2021) show that the low bits of float samples can leak the value they were added to. We draw
  as Opacus' ``secure_mode`` does (four float32 Gaussians summed and halved — Holohan et al. 2021
  §5.1); that raises the cost of those attacks but is not a formal proof.
* Poisson sampling is exact in the safe direction: row *i* joins the batch iff a uniform 32-bit
  integer is below ``floor(q·2³²)``, so the realised rate is ``floor(q·2³²)/2³²`` ≤ q, and the
  accountant's ε (non-decreasing in q) bounds it. It costs O(N) draws per step.
"""

from __future__ import annotations

import math
import secrets

import numpy as np
import torch

_U32 = 1 << 32


def step_generator() -> torch.Generator:
    """The noise generator of one step, seeded with 64 fresh bits from the OS CSPRNG."""
    return torch.Generator().manual_seed(secrets.randbits(64))


def step_sampler() -> np.random.Generator:
    """The batch sampler of one step, seeded with 128 fresh bits from the OS CSPRNG."""
    return np.random.Generator(np.random.PCG64DXSM(secrets.randbits(128)))


def poisson_threshold(q: float) -> int:
    if not 0.0 < q <= 1.0:
        raise ValueError("the sampling rate must be in (0, 1]")
    return min(_U32, math.floor(q * _U32))  # q·2³² is exact in float64; floor keeps the rate ≤ q


def poisson_indices(n: int, q: float, sampler: np.random.Generator) -> torch.Tensor:
    """Indices of the rows in this step's batch: each of ``n`` rows independently, at rate ≤ q."""
    t = poisson_threshold(q)
    if t == _U32:
        return torch.arange(n)
    u = sampler.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]  # uniform 32-bit halves
    return torch.from_numpy(np.flatnonzero(u < np.uint32(t)))


def gaussian(numel: int, std: float, generator: torch.Generator) -> torch.Tensor:
    """``numel`` float32 draws of N(0, std²): (g₁ + g₂ + g₃ + g₄)·std/2, as Opacus' ``secure_mode``."""
    if std == 0:
        return torch.zeros(numel)
    return torch.randn(4, numel, generator=generator).sum(0).mul_(std / 2)
