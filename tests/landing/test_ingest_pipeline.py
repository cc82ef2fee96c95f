"""The read-ahead between the source and the Delta writer: order, bounds, errors, early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sandbox.landing.loads import prefetched


def test_yields_everything_in_order() -> None:
    assert list(prefetched(iter(range(100)), 2)) == list(range(100))


def test_the_producer_stays_at_most_depth_ahead() -> None:
    made: list[int] = []

    def source() -> Iterator[int]:
        for i in range(50):
            made.append(i)
            yield i

    it = prefetched(source(), 2)
    assert next(it) == 0
    time.sleep(0.3)
    # one taken, two queued, one held by the producer waiting for room
    assert len(made) <= 4
    assert list(it) == list(range(1, 50))


def test_a_producer_error_is_raised_unchanged_in_the_consumer() -> None:
    class Boom(Exception):
        pass

    def source() -> Iterator[int]:
        yield 1
        raise Boom("contract failed")

    it = prefetched(source(), 2)
    assert next(it) == 1
    with pytest.raises(Boom, match="contract failed"):
        next(it)


def test_stopping_early_closes_the_source_in_the_producer_thread() -> None:
    closed: list[str] = []

    def source() -> Iterator[int]:
        try:
            yield from range(1000)
        finally:
            closed.append(threading.current_thread().name)

    it = prefetched(source(), 2)
    assert next(it) == 0
    it.close()  # the writer failed: the generator is closed
    assert closed == ["twh-load-reader"]
    assert not [t for t in threading.enumerate() if t.name == "twh-load-reader"]


def test_record_keys_are_drawn_in_the_reader_thread_and_an_early_stop_still_closes_the_source(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's thread (the load's critical path) only takes keyed batches off the queue; the
    keys are drawn in the read-ahead thread, and stopping early still closes the source there."""
    import pyarrow as pa

    from sandbox.landing import loads
    from sandbox.tables.record_keys import RECORD_KEY

    drawn_in: list[str] = []
    real = loads.with_record_keys

    def spy(batch: pa.RecordBatch) -> pa.RecordBatch:
        drawn_in.append(threading.current_thread().name)
        return real(batch)

    monkeypatch.setattr(loads, "with_record_keys", spy)
    closed: list[str] = []

    def source() -> Iterator[pa.RecordBatch]:
        try:
            for i in range(1000):
                yield pa.record_batch({"n": [i, i + 1]})
        finally:
            closed.append(threading.current_thread().name)

    it = loads.LoadWriter._keyed(source())
    first = next(it)
    assert first.schema.names == ["n", RECORD_KEY] and first.column(RECORD_KEY).null_count == 0
    it.close()
    assert drawn_in and set(drawn_in) == {"twh-load-reader"}
    assert closed == ["twh-load-reader"]
