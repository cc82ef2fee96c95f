"""How many threads the trainer uses: one for small models, more only where they pay.

    torch.set_num_threads(choose_threads(n_params, expected_batch, cap=2))

A step of DP-SGD is a few small matrix products (batch × layer width) and elementwise work.
Below a few million multiply-adds per step, splitting each product across threads costs more in
hand-offs than it saves — and on a machine other work shares, a second thread that has to wait
for a core made steps 7–8× slower than one thread (measured on the benchmark MLP,
``bench/bench_training.py``, which reports the 2-thread ÷ 1-thread time per model). So: one
thread while ``parameters × expected batch`` is under :data:`WORK_FOR_TWO`, else as many as the
cap and the cores allow.
"""

from __future__ import annotations

import os

__all__ = ["WORK_FOR_TWO", "choose_threads"]

#: parameters × expected batch from which a second thread is worth its hand-offs (≈ 16.7 M
#: multiply-adds in the forward pass; the benchmark MLP has 1.4 M, the demo model 43 k)
WORK_FOR_TWO = 1 << 24


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def choose_threads(n_params: int, expected_batch: float, *, cap: int, cores: int | None = None) -> int:
    """Threads for a model of ``n_params`` at ``expected_batch`` rows a step, at most ``cap``."""
    cores = _cores() if cores is None else cores
    if n_params * expected_batch < WORK_FOR_TWO:
        return 1
    return max(1, min(cap, cores))
