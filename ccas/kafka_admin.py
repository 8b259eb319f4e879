"""`ccas kafka bootstrap`: create the topics declared in schemas/topics.yaml, and the one producer factory CCAS uses."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions, NewTopic
from kafka.errors import TopicAlreadyExistsError

import schemas
from ccas.settings import setting

log = logging.getLogger(__name__)


def producer(bootstrap: str | None = None, **overrides: Any) -> KafkaProducer:
    """A keyed-JSON-bytes producer with the seed's settings: lz4, acks=all, idempotent, bounded retries."""
    config: dict[str, Any] = {
        "bootstrap_servers": bootstrap or setting("CCAS_KAFKA_BOOTSTRAP"),
        "compression_type": "lz4",
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "retries": 5,
        "max_in_flight_requests_per_connection": 5,
        "client_id": "ccas",
    }
    config.update(overrides)
    return KafkaProducer(**config)


def admin_client(bootstrap: str | None = None) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap or setting("CCAS_KAFKA_BOOTSTRAP"), client_id="ccas-admin",
                            request_timeout_ms=15000)


def bootstrap_topics(admin: KafkaAdminClient) -> list[str]:
    """Create missing topics, grow partition counts that are short, align retention/compression; idempotent."""
    specs = schemas.topics()
    existing = set(admin.list_topics())
    report = []
    missing = [spec for name, spec in specs.items() if name not in existing]
    if missing:
        # A concurrent bootstrap may have created one; the checks below still apply.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(spec.name, spec.partitions, 1, topic_configs=spec.config) for spec in missing])
        report += [f"{spec.name}: created ({spec.partitions} partitions, retention {spec.retention_days} d)" for spec in missing]
    present = [spec for name, spec in specs.items() if name in existing]
    if present:
        described = {item["name"]: len(item["partitions"]) for item in admin.describe_topics([s.name for s in present])}
        grow = {spec.name: NewPartitions(spec.partitions) for spec in present if described[spec.name] < spec.partitions}
        if grow:
            admin.create_partitions(grow)
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=spec.config) for spec in present])
        for spec in present:
            count = described[spec.name]
            if count > spec.partitions:
                report.append(f"{spec.name}: has {count} partitions, more than the declared {spec.partitions} "
                              "(Kafka cannot shrink a topic; left as is)")
            elif spec.name in grow:
                report.append(f"{spec.name}: grown from {count} to {spec.partitions} partitions")
            else:
                report.append(f"{spec.name}: exists ({count} partitions), config aligned")
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas kafka", description="Kafka administration for CCAS")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="create the declared topics (schemas/topics.yaml); idempotent")
    boot.add_argument("--bootstrap-server", default=None, help="host:port (default: CCAS_KAFKA_BOOTSTRAP)")
    args = parser.parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    admin = admin_client(args.bootstrap_server)
    try:
        for line in bootstrap_topics(admin):
            print(f"kafka bootstrap: {line}")
    except Exception as error:  # noqa: BLE001 - a CLI reports the broker's answer in one line
        print(f"kafka bootstrap failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    return 0
