"""The Python reader waits out a broker it cannot reach (the fault suite's Kafka outage failed the whole job through it), and
still fails on an error that waiting cannot fix."""

from __future__ import annotations

from typing import Any

import kafka.errors
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.utils.timestamp import MIN_TIMESTAMP

from pipeline.io import kafka_python
from pipeline.io.kafka_python import MAX_OFFSET, CheckpointOnlyTracker, PartitionStart, _ReadPartitions


class RecordingTracker(CheckpointOnlyTracker):
    def __init__(self, start: int) -> None:
        super().__init__(OffsetRange(start, MAX_OFFSET))
        self.deferred: list[Any] = []

    def defer_remainder(self, deferral_time: Any = None) -> None:
        self.deferred.append(deferral_time)


def reader(bootstrap: str) -> _ReadPartitions:
    fn = _ReadPartitions(bootstrap, {"request_timeout_ms": 2000, "api_version": (4, 1)}, max_records_per_call=10,
                         max_seconds_per_call=1.0, idle_poll_seconds=0.1, idle_resume_seconds=1.0, watermark_lag_seconds=2.0)
    fn.setup()
    return fn


class BrokerGone:
    """A consumer whose broker went away: kafka-python raises KafkaConnectionError from position() and poll()."""

    def position(self, _: Any) -> int:
        raise kafka.errors.KafkaConnectionError("111 ECONNREFUSED")

    def poll(self, **_: Any) -> dict:
        raise kafka.errors.KafkaConnectionError("111 ECONNREFUSED")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("where", ["opening", "polling"])
def test_an_unreachable_broker_hands_the_restriction_back_instead_of_failing(monkeypatch: pytest.MonkeyPatch,
                                                                            where: str) -> None:
    monkeypatch.setattr(kafka_python, "OUTAGE_PAUSE_S", 0.0)
    fn = reader("127.0.0.1:9")
    if where == "opening":  # seen in the fault suite: position() of a kept consumer refreshing metadata
        monkeypatch.setattr(fn, "_consumer", lambda tp, start: BrokerGone().position(tp))
    else:
        monkeypatch.setattr(fn, "_consumer", lambda tp, start: BrokerGone())
    tracker = RecordingTracker(42)
    records = list(fn.process(PartitionStart("calls.raw", 3, 42), tracker, ManualWatermarkEstimator(MIN_TIMESTAMP)))
    assert records == []
    assert len(tracker.deferred) == 1 and tracker.current_restriction().start == 42  # read again from where it was


def test_an_error_waiting_cannot_fix_still_fails_the_bundle(monkeypatch: pytest.MonkeyPatch) -> None:
    fn = reader("127.0.0.1:9")

    def refused(*_: Any) -> None:
        raise kafka.errors.TopicAuthorizationFailedError("calls.raw")

    monkeypatch.setattr(fn, "_consumer", refused)
    tracker = RecordingTracker(0)
    with pytest.raises(kafka.errors.TopicAuthorizationFailedError):
        list(fn.process(PartitionStart("calls.raw", 0, 0), tracker, ManualWatermarkEstimator(None)))
    assert tracker.deferred == []
