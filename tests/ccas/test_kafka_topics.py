"""The declared topics exist on the real broker with their partition counts, replication settings and min ISR, and carry keyed
lz4 messages; the bootstrap's replication logic against an in-memory admin client (production's 3 brokers)."""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource

import schemas
from ccas import kafka_admin, settings
from ccas.kafka_admin import ReplicationMismatch, TopicReplication, admin_client, bootstrap_topics
from core.config import ConfigurationError, load
from core.kafka import client_security, producer

SINGLE_BROKER = TopicReplication(kafka_replication_factor=1, kafka_min_insync_replicas=1)
PRODUCTION = TopicReplication(kafka_replication_factor=3, kafka_min_insync_replicas=2)

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
        report = bootstrap_topics(admin, SINGLE_BROKER)
        assert all("exists" in line for line in report), report
        described = admin.describe_topics(list(schemas.topics()))
        configs = admin.describe_configs([ConfigResource("TOPIC", "audio.ready",
                                                         ["retention.ms", "compression.type", "min.insync.replicas"])])
    finally:
        admin.close()
    assert {item["name"]: len(item["partitions"]) for item in described} == \
        {name: spec.partitions for name, spec in schemas.topics().items()}
    assert {len(partition["replica_nodes"]) for item in described for partition in item["partitions"]} == {1}
    entries = {name: entry["value"] for name, entry in configs["topic"]["audio.ready"].items()}
    assert entries == {"retention.ms": str(14 * 24 * 3600 * 1000), "compression.type": "lz4", "min.insync.replicas": "1"}


def test_a_min_isr_above_the_replicas_changes_nothing(stack_env: dict[str, str]) -> None:
    """The stack's topics have one replica: asking for production's min ISR 2 must refuse before altering any topic."""
    admin = admin_client(stack_env["CCAS_KAFKA_BOOTSTRAP"])
    try:
        with pytest.raises(ReplicationMismatch, match="min.insync.replicas=2 exceeds the replicas of .*calls.raw \\(1\\)"):
            bootstrap_topics(admin, PRODUCTION)
        configs = admin.describe_configs([ConfigResource("TOPIC", "calls.raw", ["min.insync.replicas"])])
    finally:
        admin.close()
    assert configs["topic"]["calls.raw"]["min.insync.replicas"]["value"] == "1"


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

    consumer = KafkaConsumer(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], **client_security(None),
                             enable_auto_commit=False,
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


class InMemoryAdmin:
    """The calls bootstrap_topics makes, recorded; existing topics described as a broker would (partitions, replicas)."""

    def __init__(self, existing: dict[str, tuple[int, int]]) -> None:
        self.existing = existing  # name -> (partitions, replicas)
        self.created: dict[str, dict[str, Any]] = {}
        self.altered: dict[str, dict[str, str]] = {}
        self.grown: dict[str, int] = {}

    def list_topics(self) -> list[str]:
        return list(self.existing)

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": name, "partitions": [{"partition": p, "replica_nodes": list(range(self.existing[name][1]))}
                                               for p in range(self.existing[name][0])]} for name in names]

    def create_topics(self, topics: dict[str, dict[str, Any]]) -> None:
        self.created.update(topics)

    def create_partitions(self, grow: dict[str, Any]) -> None:
        self.grown.update({name: new.total_count for name, new in grow.items()})

    def alter_configs(self, resources: list[ConfigResource]) -> None:
        self.altered.update({resource.name: dict(resource.configs) for resource in resources})


def test_missing_topics_are_created_with_the_configured_replication_and_min_isr() -> None:
    admin = InMemoryAdmin({})
    report = bootstrap_topics(admin, PRODUCTION)
    specs = schemas.topics()
    assert set(admin.created) == set(specs)
    for name, spec in specs.items():
        created = admin.created[name]
        assert created["num_partitions"] == spec.partitions and created["replication_factor"] == 3
        assert created["configs"] == {**spec.config, "min.insync.replicas": "2"}
    assert any(line.startswith("calls.raw: created (12 partitions, replication 3, min ISR 2") for line in report), report


def test_existing_topics_keep_min_isr_in_their_config_and_a_replication_mismatch_is_reported() -> None:
    admin = InMemoryAdmin({name: (spec.partitions, 3) for name, spec in schemas.topics().items()})
    admin.existing["audio.ready"] = (12, 3)  # short of its declared 24 partitions
    admin.existing["calls.raw.dlq"] = (3, 4)
    report = bootstrap_topics(admin, PRODUCTION)
    assert not admin.created
    assert admin.grown == {"audio.ready": 24}
    assert all(config["min.insync.replicas"] == "2" for config in admin.altered.values())
    assert "audio.ready: grown from 12 to 24 partitions" in report
    assert any(line.startswith("calls.raw.dlq: has replication 4, settings ask for 3") for line in report), report


def test_replication_settings_come_from_the_environment_with_production_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCAS_KAFKA_REPLICATION_FACTOR", raising=False)
    monkeypatch.delenv("CCAS_KAFKA_MIN_INSYNC_REPLICAS", raising=False)
    defaults = load(TopicReplication)
    assert (defaults.kafka_replication_factor, defaults.kafka_min_insync_replicas) == (3, 2)
    monkeypatch.setenv("CCAS_KAFKA_REPLICATION_FACTOR", "1")
    monkeypatch.setenv("CCAS_KAFKA_MIN_INSYNC_REPLICAS", "1")
    assert load(TopicReplication) == SINGLE_BROKER
    monkeypatch.setenv("CCAS_KAFKA_MIN_INSYNC_REPLICAS", "2")
    with pytest.raises(ConfigurationError, match="exceeds CCAS_KAFKA_REPLICATION_FACTOR"):
        load(TopicReplication)


def test_cli_needs_an_explicit_bootstrap_address(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CCAS_KAFKA_BOOTSTRAP", raising=False)
    with pytest.raises(SystemExit) as exited:
        kafka_admin.main(["bootstrap"])
    assert exited.value.code == 2
    assert "CCAS_KAFKA_BOOTSTRAP / --bootstrap-server: is not set" in capsys.readouterr().err
