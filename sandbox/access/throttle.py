"""Failed authentications: counted per source, audited in aggregate, and rate-limited.

A request with a bad token used to write one ``token.rejected`` record under the audit lock —
anyone could flood the log and slow every audited action. Now a failure is a counter increment in
memory: per source (the client's address) and fixed window (``Settings.auth_window_seconds``),
one ``token.rejected`` record carries the count, the first few token fingerprints and paths, and
how many were answered 429. A source past ``auth_failures_per_window`` failures in a window is
answered ``rate_limited`` (429) for the rest of it. At most :data:`MAX_SOURCES` sources are
tracked at once; more fall under the source ``"*"``, so memory and records stay bounded too.

Windows that ended are written by :meth:`AuthFailures.flush` — on the next failure, by the
service's background flusher, and at shutdown (``flush(force=True)``).

    failures = AuthFailures(ctx)
    failures.failed(source, fingerprint, {"method": "GET", "path": "/v1/me"})   # -> True: over the limit

:class:`Attempts` counts events per source and window: failed sign-ins on ``/ui/login``, where a
source past ``Settings.login_attempts_per_window`` is refused (429) before its token is checked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ..auth import SYSTEM
from ..context import Context

#: sources tracked at once; past that, new sources share one bucket ("*")
MAX_SOURCES = 10_000
#: token fingerprints and paths named in one aggregated record
MAX_NAMED = 5


def client_source(headers: Mapping[str, str], peer: str | None, trusted_proxy: bool) -> str:
    """Who is asking: the peer address, or — behind a trusted proxy — the last ``X-Forwarded-For``
    entry (the one that proxy added; entries before it are whatever the client sent)."""
    if trusted_proxy:
        forwarded = [p.strip() for p in headers.get("x-forwarded-for", "").split(",") if p.strip()]
        if forwarded:
            return forwarded[-1][:64]
    return (peer or "unknown")[:64]


class _Windows:
    """Fixed windows per source, bounded in number of sources."""

    def __init__(self, window_s: float, clock: Callable[[], float]) -> None:
        self.window_s = window_s
        self.clock = clock
        self.lock = threading.Lock()

    def key(self, table: dict[str, Any], source: str) -> str:
        return source if source in table or len(table) < MAX_SOURCES else "*"


class Attempts(_Windows):
    """How many times each source did something (failed to sign in) in its current window."""

    def __init__(self, window_s: float, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(window_s, clock)
        self.limit = limit
        self._seen: dict[str, tuple[float, int]] = {}

    def _current(self, source: str, now: float) -> tuple[str, float, int]:
        if len(self._seen) >= MAX_SOURCES:  # forget ended windows before sharing a bucket
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
        key = self.key(self._seen, source)
        start, n = self._seen.get(key, (now, 0))
        return (key, now, 0) if now - start >= self.window_s else (key, start, n)

    def hit(self, source: str) -> bool:
        """Count one; True when the source is now past its limit in this window."""
        now = self.clock()
        with self.lock:
            key, start, n = self._current(source, now)
            self._seen[key] = (start, n + 1)
            return n + 1 > self.limit

    def blocked(self, source: str) -> bool:
        """Is the source past its limit in the current window (without counting)?"""
        with self.lock:
            return self._current(source, self.clock())[2] >= self.limit


@dataclass
class _Tally:
    started: float
    started_at: datetime
    count: int = 0
    limited: int = 0
    fingerprints: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


class AuthFailures(_Windows):
    def __init__(self, ctx: Context, *, window_s: float | None = None, limit: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(window_s or ctx.settings.auth_window_seconds, clock)
        self.ctx = ctx
        self.limit = limit or ctx.settings.auth_failures_per_window
        self._open: dict[str, _Tally] = {}
        self._write_lock = threading.Lock()

    def failed(self, source: str, fingerprint: str, where: Mapping[str, Any]) -> bool:
        """Count one failed authentication; True when the source is past its limit (answer 429)."""
        now = self.clock()
        ended: list[tuple[str, _Tally]] = []
        with self.lock:
            key = self.key(self._open, source)
            tally = self._open.get(key)
            if tally is not None and now - tally.started >= self.window_s:
                ended.append((key, self._open.pop(key)))
                tally = None
            if tally is None:
                if key not in self._open and len(self._open) >= MAX_SOURCES:
                    key = "*"
                    tally = self._open.get(key)
                if tally is None:
                    tally = self._open[key] = _Tally(now, datetime.now(UTC))
            tally.count += 1
            over = tally.count > self.limit
            tally.limited += int(over)
            if len(tally.fingerprints) < MAX_NAMED and fingerprint not in tally.fingerprints:
                tally.fingerprints.append(fingerprint)
            path = f"{where.get('method', '')} {where.get('path', '')}".strip()[:120]
            if len(tally.paths) < MAX_NAMED and path not in tally.paths:
                tally.paths.append(path)
        self._write(ended)
        return over

    def flush(self, force: bool = False) -> int:
        """Write one ``token.rejected`` record per source whose window ended (every window: ``force``)."""
        now = self.clock()
        with self.lock:
            done = [k for k, t in self._open.items() if force or now - t.started >= self.window_s]
            ended = [(k, self._open.pop(k)) for k in done]
        return self._write(ended)

    def _write(self, ended: list[tuple[str, _Tally]]) -> int:
        if not ended:
            return 0
        with self._write_lock:  # one writer at a time: the flusher and a request never race for the lock
            for source, t in ended:
                end = t.started_at + timedelta(seconds=max(0.0, min(self.clock() - t.started, self.window_s)))
                self.ctx.record(SYSTEM, "token.rejected", "source", source,
                                {"count": t.count, "rate_limited": t.limited, "fingerprints": t.fingerprints,
                                 "paths": t.paths, "window_start": t.started_at.isoformat(timespec="seconds"),
                                 "window_end": end.isoformat(timespec="seconds"), "window_seconds": self.window_s})
        return len(ended)

    def pending(self) -> int:
        """Failures counted and not yet written."""
        with self.lock:
            return sum(t.count for t in self._open.values())
