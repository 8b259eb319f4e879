"""Kafka client configuration shared by every producer and consumer CCAS runs (kafka-python)."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer


def producer_config(bootstrap: str, client_id: str = "ccas", **overrides: Any) -> dict[str, Any]:
    """A keyed-JSON-bytes producer: lz4, acks=all, idempotent, bounded retries."""
    if not bootstrap:
        raise ValueError("a Kafka bootstrap address is required (CCAS_KAFKA_BOOTSTRAP)")
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "compression_type": "lz4",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "retries": 5,
        "max_in_flight_requests_per_connection": 5,
        "client_id": client_id,
    }
    config.update(overrides)
    return config


def producer(bootstrap: str, client_id: str = "ccas", **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**producer_config(bootstrap, client_id, **overrides))


def consumer_config(bootstrap: str, group_id: str | None, client_id: str = "ccas", **overrides: Any) -> dict[str, Any]:
    """A consumer that commits only when told to and never reads aborted transactions."""
    if not bootstrap:
        raise ValueError("a Kafka bootstrap address is required (CCAS_KAFKA_BOOTSTRAP)")
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "client_id": client_id,
        "enable_auto_commit": False,
        "isolation_level": "read_committed",
        "auto_offset_reset": "earliest",
    }
    config.update(overrides)
    return config
