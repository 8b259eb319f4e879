"""The declared topics exist on the real broker with their partition counts, and carry keyed lz4 messages."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource

import schemas
from ccas import settings
from ccas.kafka_admin import admin_client, bootstrap_topics, producer

pytestmark = pytest.mark.integration

LZ4_CODEC = 3  # RecordBatch attributes bits 0-2


def _batch_codec(segment: Path, offset: int) -> int:
    """The compression codec of the record batch holding `offset`, read from the broker's own segment file."""
    data = segment.read_bytes()
    position = 0
    while position + 61 <= len(data):
        base_offset, batch_length = struct.unpack_from(">qi", data, position)
        last_offset_delta = struct.unpack_from(">i", data, position + 23)[0]
        if base_offset <= offset <= base_offset + last_offset_delta:
            return struct.unpack_from(">h", data, position + 21)[0] & 0x07
        position += 12 + batch_length
    raise AssertionError(f"offset {offset} not found in {segment}")


def test_bootstrap_is_idempotent_and_partition_counts_match(stack_env: dict[str, str]) -> None:
    admin = admin_client(stack_env["CCAS_KAFKA_BOOTSTRAP"])
    try:
        report = bootstrap_topics(admin)
        assert all("exists" in line for line in report), report
        described = {item["name"]: len(item["partitions"]) for item in admin.describe_topics(list(schemas.topics()))}
        configs = admin.describe_configs([ConfigResource("TOPIC", "audio.ready", ["retention.ms", "compression.type"])])
    finally:
        admin.close()
    assert described == {name: spec.partitions for name, spec in schemas.topics().items()}
    entries = {name: entry["value"] for name, entry in configs["topic"]["audio.ready"].items()}
    assert entries == {"retention.ms": str(14 * 24 * 3600 * 1000), "compression.type": "lz4"}


@pytest.mark.parametrize("topic", sorted(schemas.topics()))
def test_keyed_lz4_message_round_trips(stack_env: dict[str, str], topic: str) -> None:
    key = f"t{uuid.uuid4().hex[:12]}"
    value = {"call_id": key, "probe": topic, "event_ts": "2026-11-25T10:00:00+00:00", "ingest_uuid": str(uuid.uuid4())}
    send = producer(stack_env["CCAS_KAFKA_BOOTSTRAP"])
    try:
        metadata = send.send(topic, key=key.encode(), value=json.dumps(value).encode()).get(timeout=30)
        send.flush()
        # The same key always lands on the same partition (ordering per call).
        again = send.send(topic, key=key.encode(), value=json.dumps(value).encode()).get(timeout=30)
    finally:
        send.close()
    assert again.partition == metadata.partition
    assert 0 <= metadata.partition < schemas.topics()[topic].partitions

    consumer = KafkaConsumer(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], enable_auto_commit=False,
                             consumer_timeout_ms=15000)
    try:
        partition = TopicPartition(topic, metadata.partition)
        consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert record.key == key.encode()
    assert json.loads(record.value) == value

    segment_dir = settings.stack_dir() / "kafka" / "data" / f"{topic}-{metadata.partition}"
    segment = max(segment_dir.glob("*.log"))
    assert _batch_codec(segment, metadata.offset) == LZ4_CODEC
