"""Release modes on their own: suppression arithmetic (property-style) and JSON-safe values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import pytest

from sandbox.errors import InternalError
from sandbox.gate import ENGINES, RELEASE_MODES, QueryPlan, SdcRelease, TableInfo, json_safe, plan_query, run_query
from sandbox.snapshot import Snapshot


@pytest.fixture
def plan(lookup: Callable[[str], TableInfo]) -> QueryPlan:
    return plan_query("SELECT industry, SUM(capital) AS s FROM registry GROUP BY industry", lookup)


def test_registry_is_keyed_by_policy_release_mode() -> None:
    assert set(RELEASE_MODES) == {"sdc"}
    assert RELEASE_MODES["sdc"].name == "sdc"


def test_sdc_keeps_exactly_the_groups_at_or_above_threshold(plan: QueryPlan) -> None:
    # Property-style: random sizes for every hidden count; a row is released iff its minimum
    # reaches the threshold, and released + suppressed always equals the rows seen.
    rng = random.Random(99)
    width = len(plan.hidden_columns)
    assert width == 3  # rows, units, units with a known capital
    for _ in range(300):
        threshold = rng.randrange(1, 30)
        p = dataclasses.replace(plan, min_group_size=threshold)
        rows = [[f"g{i}", rng.random()] + [rng.randrange(0, 40) for _ in range(width)]
                for i in range(rng.randrange(0, 15))]
        out = SdcRelease().release(p, rows)
        want = [r[:2] for r in rows if min(r[2:]) >= threshold]
        assert out.rows == want
        assert out.released_groups == len(want)
        assert out.suppressed_groups == len(rows) - len(want)
        assert out.decision == {"rule": "min_group_size", "threshold": threshold, "unit": ["registry.uscc"],
                                "released": len(want), "suppressed": len(rows) - len(want)}


def test_any_single_small_count_suppresses(plan: QueryPlan) -> None:
    for small_at in range(3):
        sizes = [100, 100, 100]
        sizes[small_at] = 9
        assert SdcRelease().release(plan, [["C", 1.0, *sizes]]).rows == []


def test_null_count_fails_closed(plan: QueryPlan) -> None:
    assert SdcRelease().release(plan, [["C", 1.0, 100, None, 100]]).suppressed_groups == 1


def test_row_width_mismatch_is_refused(plan: QueryPlan) -> None:
    with pytest.raises(ValueError):
        SdcRelease().release(plan, [["C", 1.0, 100, 100]])


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, None), (True, True), (3, 3), (2**70, 2**70), ("天府", "天府"), (1.5, 1.5),
        (float("nan"), None), (float("inf"), None), (Decimal("12.00"), 12), (Decimal("1.25"), 1.25),
        (Decimal("NaN"), None), (dt.date(2023, 5, 1), "2023-05-01"),
        (dt.datetime(2023, 5, 1, 8, 30), "2023-05-01T08:30:00"), (dt.time(8, 30), "08:30:00"),
        (dt.timedelta(seconds=90), 90.0), (b"\x01\xff", "01ff"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        ([1, Decimal("2.5"), dt.date(2020, 1, 1)], [1, 2.5, "2020-01-01"]), ({"a": float("nan")}, {"a": None}),
    ],
)
def test_json_safe(value: Any, want: Any) -> None:
    got = json_safe(value)
    assert got == want and type(got) is type(want)
    json.dumps(got, allow_nan=False)


def test_engine_registry_plugs_in_a_fake_engine(plan: QueryPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine is an interface: any row source that yields output + hidden columns works.
    def fake(p: QueryPlan, snaps: Mapping[str, Snapshot], timeout: float | None) -> Iterator[Sequence[Any]]:
        yield ["C", Decimal("10.5"), 50, 50, 50]
        yield ["Z", 3.0, 50, 4, 4]

    monkeypatch.setitem(ENGINES, "fake", fake)
    snap = Snapshot("registry", "/nonexistent", 0, ())
    result = run_query(plan, {"registry": snap}, engine="fake")
    assert result.rows == [["C", 10.5]]
    assert (result.released_groups, result.suppressed_groups) == (1, 1)
    assert result.decisions[-1]["suppressed"] == 1
    assert [d["rule"] for d in result.decisions[:-1]] == [d.rule for d in plan.decisions]


def test_fake_engine_with_wrong_width_is_an_internal_error(plan: QueryPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "fake", lambda p, s, t: iter([["C", 1.0]]))
    with pytest.raises(InternalError):
        run_query(plan, {"registry": Snapshot("registry", "/nonexistent", 0, ())}, engine="fake")
