"""Unit tests of the `--kafka_io=python` reader's pieces that need no Kafka: the tracker, the provider, the Row conversion."""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.io.restriction_trackers import OffsetRange

from pipeline.io.kafka_python import (
    MAX_OFFSET,
    CheckpointOnlyTracker,
    PartitionStart,
    _PartitionRestrictionProvider,
    kafka_python_config,
)
from pipeline.io.records import KafkaRecord, from_beam_row


def test_split_yields_the_restriction_whole() -> None:
    provider = _PartitionRestrictionProvider()
    element = PartitionStart("calls.raw", 3, 42)
    restriction = provider.initial_restriction(element)
    assert restriction == OffsetRange(42, MAX_OFFSET)
    assert list(provider.split(element, restriction)) == [restriction]


def test_fractional_split_is_declined_even_when_idle() -> None:
    # The failure seen on Prism: an idle partition (nothing claimed) asked for half its remainder.
    tracker = CheckpointOnlyTracker(OffsetRange(0, MAX_OFFSET))
    assert tracker.try_split(0.5) is None
    assert tracker.current_restriction() == OffsetRange(0, MAX_OFFSET)
    assert tracker.try_claim(7)
    assert tracker.try_split(0.5) is None
    assert tracker.try_split(0.99) is None
    assert tracker.current_restriction() == OffsetRange(0, MAX_OFFSET)


def test_checkpoint_splits_right_after_the_last_claim() -> None:
    tracker = CheckpointOnlyTracker(OffsetRange(10, MAX_OFFSET))
    assert tracker.try_claim(10)
    assert tracker.try_claim(11)
    primary, residual = tracker.try_split(0)
    assert primary == OffsetRange(10, 12)
    assert residual == OffsetRange(12, MAX_OFFSET)
    assert residual.start == 11 + 1
    tracker.check_done()
    assert not tracker.try_claim(12), "nothing past a checkpoint belongs to the primary"
    assert tracker.try_split(0) is None, "a second checkpoint has nothing to hand over"


def test_checkpoint_before_any_claim_hands_over_everything() -> None:
    tracker = CheckpointOnlyTracker(OffsetRange(5, MAX_OFFSET))
    primary, residual = tracker.try_split(0)
    assert primary == OffsetRange(5, 5)
    assert residual == OffsetRange(5, MAX_OFFSET)
    tracker.check_done()


def test_claims_accept_offset_gaps_from_transaction_markers() -> None:
    tracker = CheckpointOnlyTracker(OffsetRange(0, MAX_OFFSET))
    for offset in (0, 1, 3, 4, 9, 10, 25):  # 2, 5–8, 11–24: commit/abort markers and aborted records
        assert tracker.try_claim(offset)
    _, residual = tracker.try_split(0)
    assert residual.start == 26
    tracker.check_done()


def test_claims_must_increase() -> None:
    tracker = CheckpointOnlyTracker(OffsetRange(0, MAX_OFFSET))
    assert tracker.try_claim(4)
    with pytest.raises(ValueError):
        tracker.try_claim(4)


def test_tracker_is_unbounded_and_reports_no_fraction_of_2_63() -> None:
    tracker = CheckpointOnlyTracker(OffsetRange(100, MAX_OFFSET))
    assert not tracker.is_bounded()
    assert tracker.try_claim(104)
    progress = tracker.current_progress()
    assert progress.completed_work == 5
    assert progress.remaining_work == 1


def test_from_beam_row_takes_the_java_reader_metadata() -> None:
    # Fields and types of Java KafkaIO's ByteArrayKafkaRecord, the Row schema of ReadFromKafka(with_metadata=True).
    row = beam.Row(topic="calls.raw", partition=7, offset=1234, timestamp=1_764_100_000_123, key=b"inum-1",
                   value=b'{"call_id": "inum-1"}', headers=[beam.Row(key="h", value=b"v")], timestampTypeId=0,
                   timestampTypeName="CreateTime")
    record = from_beam_row(row)
    assert record == KafkaRecord("calls.raw", 7, 1234, b"inum-1", b'{"call_id": "inum-1"}', 1_764_100_000_123)
    assert type(record) is KafkaRecord


def test_from_beam_row_keeps_null_keys_and_normalises_buffers() -> None:
    row = beam.Row(topic="t", partition=0, offset=0, timestamp=1, key=None, value=bytearray(b"x"), headers=None,
                   timestampTypeId=0, timestampTypeName="CreateTime")
    record = from_beam_row(row)
    assert record.key is None
    assert record.value == b"x" and type(record.value) is bytes


def test_java_style_consumer_config_names_are_translated() -> None:
    assert kafka_python_config({"security.protocol": "SSL", "fetch_max_wait_ms": 100}) == {
        "security_protocol": "SSL", "fetch_max_wait_ms": 100}
    assert kafka_python_config(None) == {}
