"""Timing helpers shared by the benchmarks: interleaved runs of a pair, medians in milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately ``repeat`` times each; return both lists of seconds."""
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return ta, tb


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 3)
