"""CommitOffsets: contiguous per-partition commits on the real broker, stepping over transaction markers but never over data."""

from __future__ import annotations

import time
import uuid

import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from ccas.kafka_admin import admin_client
from core.kafka import client_security
from pipeline.model import SourcePosition
from pipeline.transforms.commit import CommitOffsets, advance


def test_advance_stops_at_the_first_gap() -> None:
    done = {3, 4, 5, 7}
    assert advance(3, done) == 6
    assert done == {7}
    assert advance(0, {1, 2}) == 0


@pytest.fixture
def transactional_topic(stack_env: dict[str, str]) -> str:
    """One partition, three committed transactions of three records: data at 0-2, 4-6, 8-10; markers at 3, 7, 11."""
    topic = f"test-commit-{uuid.uuid4().hex[:8]}"
    admin = admin_client(stack_env["CCAS_KAFKA_BOOTSTRAP"])
    admin.create_topics([NewTopic(topic, 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], **client_security(None),
                             transactional_id=f"tx-{topic}",
                             compression_type="lz4")
    producer.init_transactions()
    for batch in range(3):
        producer.begin_transaction()
        for index in range(3):
            producer.send(topic, key=b"k", value=f"{batch}-{index}".encode())
        producer.commit_transaction()
    producer.close()
    return topic


def _run(bootstrap: str, group: str, topic: str, offsets_in_arrival_order: list[list[int]]) -> int | None:
    # The DirectRunner's test clock starts at 0 while the DoFn arms its timers in wall time: move the clock to now first.
    stream = TestStream().advance_processing_time(int(time.time()) + 1)
    for wave in offsets_in_arrival_order:
        stream = stream.add_elements([SourcePosition(topic, 0, offset) for offset in wave]).advance_processing_time(5)
    stream = stream.advance_processing_time(5).advance_watermark_to_infinity()
    p = TestPipeline(runner="BundleBasedDirectRunner")
    p.options.view_as(StandardOptions).streaming = True
    with p:
        _ = p | stream | CommitOffsets(bootstrap, group)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None), group_id=group, enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))
    finally:
        consumer.close()


@pytest.mark.integration
def test_commits_past_markers_when_every_data_record_is_done(stack_env: dict[str, str], transactional_topic: str) -> None:
    committed = _run(stack_env["CCAS_KAFKA_BOOTSTRAP"], f"g-{uuid.uuid4().hex[:8]}", transactional_topic,
                     [[1, 0, 2, 5], [4, 6, 10], [8, 9]])
    assert committed == 12  # the log end: every data record done, the three commit markers stepped over


@pytest.mark.integration
def test_a_missing_data_record_holds_the_commit(stack_env: dict[str, str], transactional_topic: str) -> None:
    committed = _run(stack_env["CCAS_KAFKA_BOOTSTRAP"], f"g-{uuid.uuid4().hex[:8]}", transactional_topic,
                     [[0, 1, 2, 4], [6, 8, 9, 10]])  # 5 never finishes
    assert committed == 5
