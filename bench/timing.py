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


def spread(xs: list[float]) -> dict[str, float]:
    """The 25th and 75th percentiles and the min/max of per-pair ratios (the noise of this machine)."""
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"p25": round(q[0], 3), "p75": round(q[2], 3), "min": round(min(xs), 3), "max": round(max(xs), 3)}
