"""Timing helpers shared by the benchmarks: interleaved runs, medians, spreads, and the figures.

Machines here are shared and noisy: every figure compares against a baseline measured in the
same run, the two interleaved (a, b, a, b, ...), and is reported with its spread (quartiles and
extremes of the per-pair values) so that noise shows as spread rather than as a wrong number.

    times = interleaved_many({"ours": run_ours, "base": run_base}, repeat=7)
    fig = ratio_figure("ingest.throughput", "ingest ÷ plain write_deltalake", times["base"], times["ours"],
                       goal=">= 0.9", baseline="plain write_deltalake")
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def interleaved(a: Callable[[], object], b: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately ``repeat`` times each; return both lists of seconds."""
    times = interleaved_many({"a": a, "b": b}, repeat, warmup=0)
    return times["a"], times["b"]


def interleaved_many(arms: dict[str, Callable[[], object]], repeat: int, *, warmup: int = 1,
                     settle: dict[str, Callable[[], object]] | None = None) -> dict[str, list[float]]:
    """Each arm ``warmup`` times (not kept), then all arms in turn ``repeat`` times; seconds per arm.
    ``settle[name]``, if given, runs after that arm, untimed: work the arm leaves running in the
    background (a job a service runs after answering) ends before the next arm is timed."""
    settle = settle or {}
    for _ in range(warmup):
        for name, fn in arms.items():
            fn()
            settle.get(name, _nothing)()
    times: dict[str, list[float]] = {k: [] for k in arms}
    for _ in range(repeat):
        for name, fn in arms.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            settle.get(name, _nothing)()
    return times


def _nothing() -> None:
    pass


def median_ms(xs: list[float]) -> float:
    return round(statistics.median(xs) * 1000, 3)


def spread(xs: Sequence[float], digits: int = 3) -> dict[str, float]:
    """The 25th and 75th percentiles and the min/max (the noise of this machine)."""
    xs = list(xs)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 2 else [xs[0]] * 3
    return {"p25": round(q[0], digits), "median": round(q[1], digits), "p75": round(q[2], digits),
            "min": round(min(xs), digits), "max": round(max(xs), digits)}


def meets(value: float, goal: str | None) -> bool | None:
    """Whether ``value`` meets a goal written ``"<= 15"`` or ``">= 0.9"``."""
    if not goal:
        return None
    op, _, bound = goal.partition(" ")
    if op == "<=":
        return value <= float(bound)
    if op == ">=":
        return value >= float(bound)
    raise ValueError(f"goal {goal!r}: write '<= N' or '>= N'")


def figure(fid: str, what: str, samples: Sequence[float], *, unit: str, goal: str | None = None,
           baseline: str = "", digits: int = 3, **extra: Any) -> dict[str, Any]:
    """One reported figure: the median of ``samples`` (per-pair values), its spread and its goal."""
    s = spread(samples, digits)
    return {"id": fid, "what": what, "value": s["median"], "unit": unit, "goal": goal, "met": meets(s["median"], goal),
            "spread": s, "n": len(samples), "baseline": baseline, **extra}


def ratio_figure(fid: str, what: str, num: Sequence[float], den: Sequence[float], **kw: Any) -> dict[str, Any]:
    """A figure of per-pair ratios ``num[i] / den[i]`` (interleaved pairs)."""
    return figure(fid, what, [a / b for a, b in zip(num, den, strict=True)], unit="×", **kw)


def diff_ms_figure(fid: str, what: str, a: Sequence[float], b: Sequence[float], **kw: Any) -> dict[str, Any]:
    """A figure of per-pair differences ``a[i] - b[i]`` in milliseconds (seconds in)."""
    return figure(fid, what, [(x - y) * 1000 for x, y in zip(a, b, strict=True)], unit="ms", digits=1, **kw)


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine (from /proc), kernel and Python."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": mem_gb, "cpu": model, "kernel": platform.release(),
            "python": platform.python_version()}


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def speed_probe() -> float:
    """Milliseconds for a fixed piece of CPU work (SHA-256 of 64 MiB, best of 3). The load average
    misses a busy host: on this shared 2-core machine the SHA-256 of 100 MB took from 76 to 121 ms
    within one afternoon, the load average never above 2.5. Recorded before and after each
    benchmark."""
    import hashlib

    data = bytes(64 << 20)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        best = min(best, time.perf_counter() - t0)
    return round(best * 1000, 1)
