"""Release modes on their own: suppression arithmetic (property-style) and JSON-safe values."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandbox.errors import InternalError
from sandbox.gate import ENGINES, RELEASE_MODES, QueryPlan, SdcRelease, TableInfo, json_safe, plan_query, run_query
from sandbox.tables.snapshot import Snapshot


@pytest.fixture
def plan(lookup: Callable[[str], TableInfo]) -> QueryPlan:
    return plan_query("SELECT industry, SUM(capital) AS s FROM registry GROUP BY industry", lookup)


def test_registry_is_keyed_by_policy_release_mode() -> None:
    assert set(RELEASE_MODES) == {"sdc", "dp"}
    assert RELEASE_MODES["sdc"].name == "sdc"


def engine_row(plan: QueryPlan, key: str, value: Any, sizes: Sequence[int | None], *,
               top: Sequence[float] = (1.0, 1.0), total: float = 100.0, ids: Sequence[str] = ()) -> list[Any]:
    """One row as the engine returns it for ``plan``: outputs, then hidden columns by kind."""
    sizes_left = list(sizes)
    hidden = {"size": lambda: sizes_left.pop(0), "top": lambda: list(top), "total": lambda: total,
              "key": lambda: key, "units": lambda: list(ids), "ckey": lambda: 12345, "nonnull": lambda: 10}
    return [key, value] + [hidden[h.kind]() for h in plan.hidden]


def test_sdc_keeps_exactly_the_groups_at_or_above_threshold(plan: QueryPlan) -> None:
    # Property-style: random sizes for every size count; a row is released iff its minimum
    # reaches the threshold -- except that a lone suppressed group takes the smallest released
    # one with it (secondary suppression: the total less the others would give it away).
    rng = random.Random(99)
    width = len(plan.hidden_indices("size"))
    assert width == 3  # rows, units, units with a known capital
    for _ in range(300):
        threshold = rng.randrange(1, 30)
        p = dataclasses.replace(plan, min_group_size=threshold)
        rows = [engine_row(p, f"g{i}", rng.random(), [rng.randrange(0, 40) for _ in range(width)])
                for i in range(rng.randrange(0, 15))]
        out = SdcRelease().release(p, rows)
        keep = [r for r in rows if min(r[2:5]) >= threshold]
        if len(keep) == len(rows) - 1 and len(rows) > 1:
            keep.remove(min(keep, key=lambda r: (min(r[2:5]), r[0])))  # ties: by key
        want = [r[:2] for r in keep]
        assert out.rows == want
        assert out.released_groups == len(want)
        assert out.suppressed_groups == len(rows) - len(want)
        assert out.decision == {"rule": "sdc", "threshold": threshold, "unit": ["registry.uscc"],
                                "released": len(want), "suppressed": len(rows) - len(want), "perturbation": "none"}
        by_rule = {d["rule"]: d["suppressed"] for d in out.rule_decisions}
        assert by_rule["min_group_size"] == sum(1 for r in rows if min(r[2:5]) < threshold)
        assert by_rule["secondary"] == len(rows) - len(want) - by_rule["min_group_size"]


def test_any_single_small_count_suppresses(plan: QueryPlan) -> None:
    for small_at in range(3):
        sizes = [100, 100, 100]
        sizes[small_at] = 9
        assert SdcRelease().release(plan, [engine_row(plan, "C", 1.0, sizes)]).rows == []


def test_null_count_fails_closed(plan: QueryPlan) -> None:
    assert SdcRelease().release(plan, [engine_row(plan, "C", 1.0, [100, None, 100])]).suppressed_groups == 1


def test_dominance_and_p_percent_read_the_contribution_columns(plan: QueryPlan) -> None:
    big = [100, 100, 100]
    rows = [engine_row(plan, "A", 1.0, big, top=[95.0, 1.0], total=100.0),    # dominated: 96% in the top 2
            engine_row(plan, "B", 1.0, big, top=[50.0, 30.0], total=100.0),   # fine
            engine_row(plan, "C", 1.0, big, top=[10.0, 10.0], total=100.0),   # fine
            engine_row(plan, "D", 1.0, big, top=[None, 5.0], total=100.0)]    # NULLs in the list are skipped
    out = SdcRelease().release(plan, rows)
    by_rule = {d["rule"]: d["suppressed"] for d in out.rule_decisions}
    assert by_rule["dominance"] == 1 and by_rule["p_percent"] == 1  # p% 4/95 < 0.1 too
    # A alone suppressed: secondary takes the smallest other (a tie: the lowest key, B)
    assert by_rule["secondary"] == 1 and [r[0] for r in out.rows] == ["C", "D"]


def test_populations_follow_the_released_rows_only(plan: QueryPlan) -> None:
    rows = [engine_row(plan, k, 1.0, [n, n, n], ids=[f"{k}{i}" for i in range(n)])
            for k, n in [("A", 50), ("B", 3), ("C", 4), ("D", 60)]]
    out = SdcRelease().release(plan, rows)
    assert [r[0] for r in out.rows] == ["A", "D"]
    assert [len(p[0]) for p in out.populations] == [50, 60]
    assert out.populations[0][0][0] == "A0"


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
    def fake(p: QueryPlan, snaps: Mapping[str, Snapshot], timeout: float | None,
             copies_dir: Path | None) -> Iterator[Sequence[Any]]:
        yield engine_row(p, "C", Decimal("10.5"), [50, 50, 50])
        yield engine_row(p, "Z", 3.0, [50, 4, 4])
        yield engine_row(p, "K", 3.0, [50, 7, 7])

    monkeypatch.setitem(ENGINES, "fake", fake)
    snap = Snapshot("registry", "/nonexistent", 0, ())
    result = run_query(plan, {"registry": snap}, engine="fake")
    assert result.rows == [["C", 10.5]]
    assert (result.released_groups, result.suppressed_groups) == (1, 2)
    assert result.decisions[-5] == {"rule": "min_group_size", "suppressed": 2, "threshold": 10}
    assert "populations" not in result.to_dict()
    assert [d["rule"] for d in result.decisions[:-6]] == [d.rule for d in plan.decisions]


def test_fake_engine_with_wrong_width_is_an_internal_error(plan: QueryPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "fake", lambda p, s, t, d: iter([["C", 1.0]]))
    with pytest.raises(InternalError):
        run_query(plan, {"registry": Snapshot("registry", "/nonexistent", 0, ())}, engine="fake")
