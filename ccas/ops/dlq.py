"""Reading the three dead-letter topics: every record with its Kafka position, filtered as an operator asks.

A DLQ record is what `pipeline.transforms.write.dead_letter_value` wrote: call_id, stage, source topic/partition/offset,
error_type, error, stack, retries, failed_at and the original calls.raw value as `payload`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kafka import KafkaConsumer, TopicPartition

import schemas
from core.kafka import client_security

DLQ_TOPICS: tuple[str, ...] = tuple(sorted({spec.dead_letter for spec in schemas.topics().values() if spec.dead_letter}))


@dataclass(frozen=True)
class DeadLetterRecord:
    topic: str
    partition: int
    offset: int
    value: dict[str, Any]

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @property
    def call_id(self) -> str | None:
        return self.value.get("call_id")

    @property
    def stage(self) -> str:
        return str(self.value.get("stage", ""))

    @property
    def error_type(self) -> str:
        return str(self.value.get("error_type", ""))

    @property
    def failed_at(self) -> str:
        return str(self.value.get("failed_at", ""))

    @property
    def error_line(self) -> str:
        lines = str(self.value.get("error") or "").strip().splitlines()
        return lines[0] if lines else ""

    def summary(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "stage": self.stage, "error_type": self.error_type,
                "retries": self.value.get("retries"), "failed_at": self.failed_at, "error": self.error_line,
                "dlq_topic": self.topic, "dlq_partition": self.partition, "dlq_offset": self.offset}

    def full(self) -> dict[str, Any]:
        return {"dlq_topic": self.topic, "dlq_partition": self.partition, "dlq_offset": self.offset, **self.value}


@dataclass(frozen=True)
class Filter:
    """Which dead letters an operator means; every field is optional and they combine with AND."""

    topic: str | None = None
    stage: str | None = None
    error_type: str | None = None
    since: datetime | None = None
    call_ids: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.topic is not None and self.topic not in DLQ_TOPICS:
            raise ValueError(f"unknown DLQ topic {self.topic!r}; declared: {', '.join(DLQ_TOPICS)}")
        if self.since is not None and self.since.tzinfo is None:
            raise ValueError("since needs a time zone (e.g. 2026-11-25T10:00:00+00:00)")
        for call_id in self.call_ids or ():
            if not schemas.is_valid_call_id(call_id):
                raise ValueError(f"invalid call_id {call_id!r} (pattern {schemas.CALL_ID_PATTERN.pattern})")

    def topics(self) -> tuple[str, ...]:
        return (self.topic,) if self.topic else DLQ_TOPICS

    def matches(self, record: DeadLetterRecord) -> bool:
        if self.stage is not None and record.stage != self.stage:
            return False
        if self.error_type is not None and record.error_type != self.error_type:
            return False
        if self.call_ids is not None and record.call_id not in self.call_ids:
            return False
        if self.since is not None:
            try:
                failed = datetime.fromisoformat(record.failed_at.replace("Z", "+00:00"))
            except ValueError:
                return False
            if failed.tzinfo is None or failed < self.since:
                return False
        return True


def read_topics(bootstrap: str, topics: Iterable[str], timeout_ms: int = 3000) -> list[DeadLetterRecord]:
    """Every committed record of the topics, from the beginning to the end offsets seen at the start."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed",
                             **client_security(None),
                             consumer_timeout_ms=timeout_ms, client_id="ccas-dlq")
    try:
        partitions = [TopicPartition(topic, p) for topic in topics for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[DeadLetterRecord] = []
        if all(consumer.position(tp) >= ends[tp] for tp in partitions):
            return records
        for message in consumer:
            if message.offset < ends[TopicPartition(message.topic, message.partition)]:
                try:
                    value = json.loads(message.value)
                except (ValueError, TypeError):
                    value = {"call_id": None, "stage": "unknown", "error_type": "Undecodable", "payload": None}
                if isinstance(value, dict):
                    records.append(DeadLetterRecord(message.topic, message.partition, message.offset, value))
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
        return records
    finally:
        consumer.close()


def list_dead_letters(bootstrap: str, where: Filter) -> list[DeadLetterRecord]:
    records = [record for record in read_topics(bootstrap, where.topics()) if where.matches(record)]
    return sorted(records, key=lambda record: (record.failed_at, record.position))


def show(bootstrap: str, call_id: str) -> list[DeadLetterRecord]:
    """Every dead letter of one call, oldest first."""
    return list_dead_letters(bootstrap, Filter(call_ids=frozenset({call_id})))
