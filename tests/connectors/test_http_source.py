"""The HTTP connector against a local CKAN-like server: paging, retries, timeouts, a source that changes."""

from __future__ import annotations

import pytest

from connectors import ColumnSpec, ConfigError, SourceError, get_source

SPECS = [ColumnSpec("code", "string", nullable=False), ColumnSpec("value", "float64")]
FAST = {"page_size": 10, "timeout_s": 2, "retries": 2, "backoff_s": 0.01}


def _records(n: int) -> list[dict]:
    return [{"_id": i + 1, "code": f"{i:05d}", "value": i * 0.5} for i in range(n)]


def _read(url: str, options: dict | None = None) -> tuple[list, dict]:
    with get_source("http").open({"url": url, "resource_id": "r1"}, SPECS, {**FAST, **(options or {})}) as s:
        batches = list(s)
        return batches, s.describe()


def test_pages_through_datastore_search(ckan) -> None:
    state, url = ckan
    state.records = _records(25)
    batches, d = _read(url)
    assert [b.num_rows for b in batches] == [10, 10, 5]
    assert batches[0].column("code")[0].as_py() == "00000"
    assert d["paging"]["pages"] == 3 and d["paging"]["total"] == 25 and len(d["paging"]["records_sha256"]) == 64


def test_5xx_is_retried_a_bounded_number_of_times(ckan) -> None:
    state, url = ckan
    state.records = _records(15)
    fails = {2}  # the second request fails once
    state.before = lambda offset, n: (503, b"busy") if n in fails else None
    batches, _ = _read(url)
    assert sum(b.num_rows for b in batches) == 15
    state.before = lambda offset, n: (500, b"down")
    with pytest.raises(SourceError, match=r"HTTP 500 \(after 2 retries\)"):
        _read(url)


def test_timeouts_are_retried_then_reported(ckan) -> None:
    state, url = ckan
    state.records = _records(3)
    state.delay_s = 0.5
    with pytest.raises(SourceError, match="timed out"):
        _read(url, {"timeout_s": 0.1, "retries": 1})


def test_4xx_fails_at_once(ckan) -> None:
    state, url = ckan
    state.before = lambda offset, n: (404, b"{}")
    with pytest.raises(SourceError, match="HTTP 404"):
        _read(url)
    assert state.requests == 1


def test_a_total_that_changes_mid_read_is_refused(ckan) -> None:
    state, url = ckan
    state.records = _records(25)

    def grow(offset: int, n: int) -> None:
        if offset == 10:
            state.records.append({"_id": 999, "code": "new", "value": 1.0})

    state.before = grow
    with pytest.raises(SourceError, match="changed while it was read: total was 25, now 26"):
        _read(url)


def test_rows_deleted_before_the_cursor_are_detected_by_the_id_sequence(ckan) -> None:
    state, url = ckan
    state.records = _records(25)

    def shift(offset: int, n: int) -> None:
        if offset == 10 and n == 2:  # a row before the cursor is replaced: same total, _ids go back
            state.records.insert(0, state.records.pop(15))

    state.before = shift
    with pytest.raises(SourceError, match=r"changed while it was read: _id"):
        _read(url)


def test_a_rewrite_behind_the_cursor_is_caught_at_the_end(ckan) -> None:
    state, url = ckan
    state.records = _records(20)

    def rewrite(offset: int, n: int) -> None:
        if n == 3:  # after the last page: the table was reloaded with new _ids
            for i, r in enumerate(state.records):
                r["_id"] = 100 + i

    state.before = rewrite
    with pytest.raises(SourceError, match="first page or total differ"):
        _read(url)


def test_undeclared_fields_and_bad_targets(ckan) -> None:
    state, url = ckan
    state.records = [{"_id": 1, "code": "a", "value": 1, "secret": "x"}]
    with pytest.raises(SourceError, match=r"undeclared key\(s\) \['secret'\]"):
        _read(url)
    with pytest.raises(ConfigError, match="set by the connector"):
        get_source("http").open({"url": url, "params": {"offset": 5}}, SPECS)
    with pytest.raises(ConfigError, match="http:// or https://"):
        get_source("http").open({"url": "file:///etc/passwd"}, SPECS)
