"""Per-job caps on audited refusals: the log cannot grow without bound because a job asks badly.

A job's code chooses how many queries it sends, and every refused one used to become a
hash-chained record holding the whole SQL — hundreds a second, in a log that is never pruned.
Now, per job, the first ``limit`` refusals are recorded verbatim (``query.refused``: SQL, its
SHA-256, rule, reason) and every later one is only counted; when the job ends, one
``query.refusals_counted`` record carries the exact count, the counts per error code and rule,
how many distinct SQL texts there were, and a SHA-256 over the counted queries' SQL hashes in
order (so the same sequence of queries, replayed, gives the same digest). A job therefore adds at
most ``limit`` refusal records plus one summary, whatever it does.

    cap = RefusalCap(write, limit=50)           # write(actor, job_id, details): one audited summary
    if cap.admit(actor, job_id, sql_sha256, code, rule):  ...record it verbatim...
    cap.summarise(job_id)                       # when the job ends (no record if nothing was counted)

Counts live in the process that runs the job (the broker's), which is also where the job ends. If
that process dies mid-job the job fails by its lapsed lease, and the refusals it counted but had
not summarised are lost with it — the verbatim ones are already in the chain.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: distinct SQL hashes remembered per job to count distinct texts (64 bytes each)
MAX_DISTINCT = 4096
#: distinct codes/rules named in a summary (the rest are added up under "other")
MAX_KEYS = 32


@dataclass
class _Tally:
    actor: Any
    seen: int = 0
    counted: int = 0
    by_code: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    distinct: set[str] = field(default_factory=set)
    digest: Any = field(default_factory=hashlib.sha256)
    first_at: str = ""
    last_at: str = ""

    def count(self, sql_sha256: str, code: str, rule: str) -> None:
        self.counted += 1
        for counter, key in ((self.by_code, code), (self.by_rule, rule)):
            counter[key if key in counter or len(counter) < MAX_KEYS else "other"] += 1
        if len(self.distinct) < MAX_DISTINCT:
            self.distinct.add(sql_sha256)
        self.digest.update(sql_sha256.encode("ascii", "replace"))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.first_at = self.first_at or now
        self.last_at = now


class RefusalCap:
    def __init__(self, write: Callable[[Any, str, dict[str, Any]], None], limit: int) -> None:
        if limit < 0:
            raise ValueError("the number of refusals recorded verbatim cannot be negative")
        self.limit = limit
        self._write = write
        self._lock = threading.Lock()
        self._jobs: dict[str, _Tally] = {}

    def admit(self, actor: Any, job_id: str, sql_sha256: str, code: str | None, rule: str | None) -> bool:
        """True: record this refusal verbatim. False: it was counted for the job's summary."""
        with self._lock:
            tally = self._jobs.setdefault(job_id, _Tally(actor))
            tally.seen += 1
            if tally.seen <= self.limit:
                return True
            tally.count(sql_sha256, str(code or "-")[:40], str(rule or "-")[:40])
            return False

    def counted(self, job_id: str) -> int:
        with self._lock:
            tally = self._jobs.get(job_id)
            return tally.counted if tally else 0

    def summarise(self, job_id: str) -> dict[str, Any] | None:
        """Write the job's one summary record (if any refusal was only counted) and forget the job."""
        with self._lock:
            tally = self._jobs.pop(job_id, None)
        if tally is None or not tally.counted:
            return None
        details = {
            "refused": tally.seen, "recorded_verbatim": tally.seen - tally.counted, "counted": tally.counted,
            "limit": self.limit, "by_code": dict(tally.by_code), "by_rule": dict(tally.by_rule),
            "distinct_sql": len(tally.distinct), "distinct_sql_at_least": len(tally.distinct) >= MAX_DISTINCT,
            "sql_sha256_digest": tally.digest.hexdigest(), "first_at": tally.first_at, "last_at": tally.last_at,
        }
        self._write(tally.actor, job_id, details)
        return details
