"""TransactionalPublisher: a transaction is committed only when every record of it was acknowledged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kafka.errors import KafkaTimeoutError

from avaya_source.publisher import TransactionalPublisher
from avaya_source.records import Recording


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> None:
        if self.error is not None:
            raise self.error


class _Producer:
    """What the publisher calls on kafka-python's transactional producer, recording the calls."""

    def __init__(self, failing_send: int | None, flush_hangs: bool = False) -> None:
        self.failing_send = failing_send
        self.flush_hangs = flush_hangs
        self.flush_timeouts: list[float | None] = []
        self.calls: list[str] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def partitions_for(self, topic: str) -> set[int]:
        return {2, 0, 1}

    def send(self, topic: str, key: str, value: dict, timestamp_ms: int, partition: int | None = None) -> _Future:
        self.calls.append(f"send {key}" if partition is None else f"send {key} to {partition} at {timestamp_ms} {value}")
        failing = self.failing_send is not None and len([c for c in self.calls if c.startswith("send")]) == self.failing_send
        return _Future(KafkaTimeoutError("Batch containing 1 record(s) expired") if failing else None)

    def flush(self, timeout: float | None = None) -> None:
        self.calls.append("flush")
        self.flush_timeouts.append(timeout)
        if self.flush_hangs:  # what kafka-python raises when the batches are still undelivered at the timeout
            raise KafkaTimeoutError(f"Failed to flush buffered records within {timeout} secs")

    def commit_transaction(self) -> None:
        self.calls.append("commit")

    def close(self, timeout: float | None = None) -> None:
        self.calls.append("close")


def _recording(call_id: str) -> Recording:
    started = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    return Recording(call_id=call_id, started_at=started, duration=30.0)


def _publisher(producer: _Producer) -> TransactionalPublisher:
    publisher = TransactionalPublisher("unused:9", "calls.raw", "test")
    publisher._producer = producer  # type: ignore[assignment]
    return publisher


def test_a_record_that_was_not_acknowledged_aborts_the_transaction() -> None:
    producer = _Producer(failing_send=2)
    publisher = _publisher(producer)
    with pytest.raises(KafkaTimeoutError):
        publisher.publish([(_recording("1001"), {"call_id": "1001"}), (_recording("1002"), {"call_id": "1002"})])
    assert "commit" not in producer.calls, "never commit a transaction missing a record"
    assert producer.calls[-1] == "close" and publisher._producer is None  # re-init on next use aborts it


def test_every_record_acknowledged_then_committed() -> None:
    producer = _Producer(failing_send=None)
    _publisher(producer).publish([(_recording("1001"), {"call_id": "1001"})])
    assert producer.calls == ["begin", "send 1001", "flush", "commit"]


def test_a_flush_that_outlasts_the_delivery_wait_aborts_the_window_instead_of_blocking() -> None:
    producer = _Producer(failing_send=None, flush_hangs=True)
    publisher = _publisher(producer)
    with pytest.raises(KafkaTimeoutError):
        publisher.publish([(_recording("1001"), {"call_id": "1001"})])
    assert producer.flush_timeouts == [publisher.delivery_wait_s] and publisher.delivery_wait_s <= 30
    assert "commit" not in producer.calls and publisher._producer is None


def test_a_watermark_marker_follows_the_calls_into_every_partition_in_the_same_transaction() -> None:
    producer = _Producer(failing_send=None)
    end = datetime(2026, 12, 2, 9, 5, tzinfo=UTC)
    _publisher(producer).publish([(_recording("1001"), {"call_id": "1001"})], watermark=end)
    marker = {"watermark": end.isoformat(), "producer": "test"}
    stamp = int(end.timestamp() * 1000)
    assert producer.calls == ["begin", "send 1001", *(f"send ~watermark to {p} at {stamp} {marker}" for p in (0, 1, 2)),
                              "flush", "commit"]


def test_a_window_without_calls_still_moves_the_watermark() -> None:
    producer = _Producer(failing_send=None)
    _publisher(producer).publish([], watermark=datetime(2026, 12, 2, 9, 5, tzinfo=UTC))
    assert [c.split(" to ")[0] for c in producer.calls] == ["begin", *["send ~watermark"] * 3, "flush", "commit"]
    nothing = _Producer(failing_send=None)
    _publisher(nothing).publish([])
    assert nothing.calls == []
