"""`ccas kafka bootstrap`: create the topics declared in schemas/topics.yaml with the configured replication, idempotently.

Replication comes from settings: CCAS_KAFKA_REPLICATION_FACTOR and CCAS_KAFKA_MIN_INSYNC_REPLICAS (production 3 and 2, a
single-broker stack 1 and 1). `min.insync.replicas` is part of every topic's config: with the producers' acks=all, a write is
acknowledged only once that many replicas hold it. The dead-letter topics' retention comes from CCAS_DLQ_RETENTION_DAYS rather
than topics.yaml: their records hold whole original payloads, customer numbers included, so how long they stay is a data
protection decision of each deployment.

`ccas kafka principals` creates every component's SCRAM user and its ACLs (ccas/kafka_acls.py) on a deployment's brokers.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions
from kafka.errors import TopicAlreadyExistsError
from pydantic import Field, model_validator

import schemas
from ccas import kafka_acls
from ccas.kafka_acls import KafkaPrincipalSettings
from core.config import CcasSettings, add_flags, load, load_for_command
from core.kafka import client_security
from core.settings import KafkaSettings

__all__ = ["TopicReplication", "admin_client", "bootstrap_topics", "main"]

log = logging.getLogger(__name__)

MIN_INSYNC_REPLICAS = "min.insync.replicas"
RETENTION_MS = "retention.ms"
MS_PER_DAY = 24 * 3600 * 1000


class TopicReplication(CcasSettings):
    """Every per-deployment topic setting `bootstrap_topics` applies (replication, and the DLQ retention beside it)."""

    kafka_replication_factor: int = Field(default=3, ge=1, description="replicas of each CCAS topic (production: 3 brokers, 3)")
    kafka_min_insync_replicas: int = Field(
        default=2, ge=1, description="min.insync.replicas of each topic: replicas that must hold a write before acks=all "
                                     "acknowledges it (production: 2)")
    dlq_retention_days: int = Field(
        default=30, ge=1, le=365, description="retention of the dead-letter topics (*.dlq), in days: they keep the original "
                                              "payloads, customer numbers included; overrides schemas/topics.yaml")

    @model_validator(mode="after")
    def _writable(self) -> TopicReplication:
        if self.kafka_min_insync_replicas > self.kafka_replication_factor:
            raise ValueError(f"CCAS_KAFKA_MIN_INSYNC_REPLICAS ({self.kafka_min_insync_replicas}) exceeds "
                             f"CCAS_KAFKA_REPLICATION_FACTOR ({self.kafka_replication_factor}): every acks=all write would fail")
        return self

    def retention_days(self, spec: schemas.TopicSpec) -> int:
        return self.dlq_retention_days if spec.name in dead_letter_topics() else spec.retention_days


def dead_letter_topics() -> frozenset[str]:
    return frozenset(spec.dead_letter for spec in schemas.topics().values() if spec.dead_letter)


class KafkaBootstrapSettings(KafkaSettings, TopicReplication):
    kafka_bootstrap: str = Field(json_schema_extra={"flag": "--bootstrap-server"},
                                 description="Kafka bootstrap servers, host:port[,host:port...]")


class ReplicationMismatch(RuntimeError):
    """An existing topic has fewer replicas than min.insync.replicas asks for; nothing was changed."""


def admin_client(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ccas-admin", request_timeout_ms=15000,
                            **client_security(None))  # the CCAS_KAFKA_* principal: admin where topics are made


def topic_config(spec: schemas.TopicSpec, replication: TopicReplication) -> dict[str, str]:
    """The declared config plus min.insync.replicas and the DLQ retention (set on every alignment: a key left out would fall
    back to the broker's)."""
    return {**spec.config, MIN_INSYNC_REPLICAS: str(replication.kafka_min_insync_replicas),
            RETENTION_MS: str(replication.retention_days(spec) * MS_PER_DAY)}


def _replica_counts(described: list[dict[str, Any]]) -> dict[str, int]:
    """Fewest replicas over a topic's partitions (what acks=all can count on)."""
    return {item["name"]: min((len(p["replica_nodes"]) for p in item["partitions"]), default=0) for item in described}


def bootstrap_topics(admin: KafkaAdminClient, replication: TopicReplication | None = None) -> list[str]:
    """Create missing topics, grow partition counts that are short, align retention/compression/min ISR; idempotent.

    `replication` None: from CCAS_KAFKA_REPLICATION_FACTOR / CCAS_KAFKA_MIN_INSYNC_REPLICAS. An existing topic whose replicas
    are fewer than the min ISR asked for raises ReplicationMismatch before anything is altered; a different replication factor
    is reported (changing it takes a partition reassignment, which this command does not do).
    """
    replication = replication or load(TopicReplication)
    specs = schemas.topics()
    existing = set(admin.list_topics())
    report = []
    present = [spec for name, spec in specs.items() if name in existing]
    described = admin.describe_topics([s.name for s in present]) if present else []
    partitions = {item["name"]: len(item["partitions"]) for item in described}
    replicas = _replica_counts(described)
    too_few = {name: count for name, count in replicas.items() if count < replication.kafka_min_insync_replicas}
    if too_few:
        listing = ", ".join(f"{name} ({count})" for name, count in sorted(too_few.items()))
        wanted = replication.kafka_min_insync_replicas
        raise ReplicationMismatch(f"{MIN_INSYNC_REPLICAS}={wanted} exceeds the replicas of {listing}: every acks=all write "
                                  "would fail. Set CCAS_KAFKA_MIN_INSYNC_REPLICAS to at most the replicas those topics have "
                                  "(a single-broker stack: 1); nothing was changed")
    missing = [spec for name, spec in specs.items() if name not in existing]
    if missing:
        # A concurrent bootstrap may have created one; the checks below still apply.
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics({spec.name: {"num_partitions": spec.partitions,
                                             "replication_factor": replication.kafka_replication_factor,
                                             "configs": topic_config(spec, replication)} for spec in missing})
        report += [f"{spec.name}: created ({spec.partitions} partitions, replication {replication.kafka_replication_factor}, "
                   f"min ISR {replication.kafka_min_insync_replicas}, retention {replication.retention_days(spec)} d)"
                   for spec in missing]
    if present:
        grow = {spec.name: NewPartitions(spec.partitions) for spec in present if partitions[spec.name] < spec.partitions}
        if grow:
            admin.create_partitions(grow)
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, configs=topic_config(spec, replication))
                             for spec in present])
        for spec in present:
            count = partitions[spec.name]
            if count > spec.partitions:
                report.append(f"{spec.name}: has {count} partitions, more than the declared {spec.partitions} "
                              "(Kafka cannot shrink a topic; left as is)")
            elif spec.name in grow:
                report.append(f"{spec.name}: grown from {count} to {spec.partitions} partitions")
            else:
                report.append(f"{spec.name}: exists ({count} partitions), config aligned")
            if replicas[spec.name] != replication.kafka_replication_factor:
                report.append(f"{spec.name}: has replication {replicas[spec.name]}, settings ask for "
                              f"{replication.kafka_replication_factor} (a partition reassignment changes it; left as is)")
    return report


def principals(settings: KafkaPrincipalSettings) -> int:
    """Every component's SCRAM user and ACLs, then a wait until the brokers know each user (the next step logs in as one)."""
    admin = settings.admin_client()
    try:
        passwords = settings.passwords()
        users, acls = kafka_acls.apply(admin, passwords)
        kafka_acls.wait_for_credentials(admin, sorted(passwords))
    except Exception as error:  # noqa: BLE001 - a CLI reports the broker's answer in one line
        print(f"kafka principals failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    print(f"kafka principals: {users} SCRAM-SHA-512 users ({', '.join(sorted(passwords))}), {acls} ACLs")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas kafka", description="Kafka administration for CCAS")
    sub = parser.add_subparsers(dest="command", required=True)
    boot = sub.add_parser("bootstrap", help="create the declared topics (schemas/topics.yaml); idempotent")
    add_flags(boot, KafkaBootstrapSettings)
    users = sub.add_parser("principals", help="every component's SCRAM user and least-privilege ACLs, over the brokers' "
                                              "mutual-TLS listener; passwords CCAS_KAFKA_PASSWORD_<COMPONENT>; idempotent")
    add_flags(users, KafkaPrincipalSettings)
    args = parser.parse_args(argv)
    logging.getLogger("kafka").setLevel(logging.ERROR)
    if args.command == "principals":
        return principals(load_for_command(KafkaPrincipalSettings, args, "kafka principals"))
    settings = load_for_command(KafkaBootstrapSettings, args, "kafka bootstrap")
    admin = admin_client(settings.kafka_bootstrap)
    try:
        for line in bootstrap_topics(admin, settings):
            print(f"kafka bootstrap: {line}")
    except Exception as error:  # noqa: BLE001 - a CLI reports the broker's answer in one line
        print(f"kafka bootstrap failed: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    finally:
        admin.close()
    return 0
