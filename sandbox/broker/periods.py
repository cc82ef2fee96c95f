"""Budget periods: the key of the period a charge falls in (``none``: one period for all time)."""

from __future__ import annotations

from datetime import UTC, datetime


def period_key(period: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return {"none": "all", "month": now.strftime("%Y-%m"), "year": now.strftime("%Y")}[period]
