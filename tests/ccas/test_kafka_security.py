"""Kafka on the local stack: TLS + SCRAM only, one principal per component, each allowed only what that component does.

Every refusal here is the broker's: the clients are plain kafka-python clients given one component's credentials.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import GroupAuthorizationFailedError, KafkaError, KafkaTimeoutError, TopicAuthorizationFailedError

from ccas import kafka_acls, settings
from core.kafka import KafkaSecurity

pytestmark = pytest.mark.integration

REFUSED_WITHIN_MS = 8000


def _security(stack_env: dict[str, str], component: str, password: str | None = None) -> KafkaSecurity:
    principal = settings.kafka_principal_env(component)
    return KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", component, password or principal["CCAS_KAFKA_PASSWORD"],
                         stack_env["CCAS_KAFKA_CA_FILE"])


def _producer(stack_env: dict[str, str], security: KafkaSecurity) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], max_block_ms=REFUSED_WITHIN_MS,
                         request_timeout_ms=REFUSED_WITHIN_MS, retries=0, **security.python_config())


def _send(producer: KafkaProducer, topic: str, value: dict[str, Any]) -> Any:
    try:
        return producer.send(topic, key=b"acl-test", value=json.dumps(value).encode()).get(timeout=30)
    finally:
        producer.close(timeout=5)


@pytest.fixture
def marker() -> dict[str, str]:
    return {"acl_test": uuid.uuid4().hex}


def test_a_plaintext_client_is_refused(stack_env: dict[str, str], marker: dict[str, str]) -> None:
    with pytest.raises(KafkaTimeoutError):  # the TLS listener never answers a plaintext handshake with metadata
        _send(_producer(stack_env, KafkaSecurity()), "calls.raw", marker)


def test_a_wrong_scram_password_is_refused(stack_env: dict[str, str], marker: dict[str, str]) -> None:
    with pytest.raises(KafkaTimeoutError):
        _send(_producer(stack_env, _security(stack_env, "poller", password="not-the-poller-password")), "calls.raw", marker)


def test_the_poller_may_write_calls_raw_only(stack_env: dict[str, str], marker: dict[str, str]) -> None:
    poller = _security(stack_env, "poller")
    with pytest.raises(TopicAuthorizationFailedError):
        _send(_producer(stack_env, poller), "scoring.results", marker)
    assert _send(_producer(stack_env, poller), "calls.raw", marker).topic == "calls.raw"


@pytest.fixture
def consumer_factory(stack_env: dict[str, str]) -> Iterator[Any]:
    opened: list[KafkaConsumer] = []

    def consumer(component: str, group: str | None) -> KafkaConsumer:
        opened.append(KafkaConsumer(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], group_id=group,
                                    enable_auto_commit=False, request_timeout_ms=15000,
                                    **_security(stack_env, component).python_config()))
        return opened[-1]

    yield consumer
    for each in opened:
        each.close()


def test_the_pipeline_reads_calls_raw_only_in_its_own_groups(consumer_factory: Any) -> None:
    partition = TopicPartition("calls.raw", 0)
    own = consumer_factory("pipeline", f"ccas-pipeline-acl-{uuid.uuid4().hex[:6]}")
    assert own.committed(partition) is None, "its own group: readable (nothing committed yet)"
    other = consumer_factory("pipeline", f"someone-else-{uuid.uuid4().hex[:6]}")
    with pytest.raises(GroupAuthorizationFailedError):
        other.committed(partition)


def test_the_pipeline_cannot_write_calls_raw(stack_env: dict[str, str], marker: dict[str, str]) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _send(_producer(stack_env, _security(stack_env, "pipeline")), "calls.raw", marker)


def test_ops_reads_dead_letters_and_requeues_but_reads_nothing_else(stack_env: dict[str, str], consumer_factory: Any,
                                                                    marker: dict[str, str]) -> None:
    ops = consumer_factory("ops", None)
    dead = TopicPartition("audio.ready.dlq", 0)
    ops.assign([dead])
    assert ops.end_offsets([dead])[dead] >= 0
    ops.seek_to_beginning(dead)
    ops.poll(timeout_ms=2000)  # a read of a DLQ: allowed
    outputs = consumer_factory("ops", None)
    results = TopicPartition("scoring.results", 0)
    outputs.assign([results])
    with pytest.raises(KafkaError):
        outputs.seek_to_beginning(results)
        outputs.poll(timeout_ms=5000)
        outputs.position(results)  # forces the offset lookup the broker refuses
    assert _send(_producer(stack_env, _security(stack_env, "ops")), "calls.raw", marker).topic == "calls.raw"


def test_every_grant_is_in_the_broker(stack_env: dict[str, str]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ResourcePatternFilter, ResourceType
    from kafka.admin import ACLResourcePatternType as Pattern

    admin = KafkaAdminClient(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"],
                             **KafkaSecurity.from_environment().python_config())
    try:
        acls, error = admin.describe_acls(ACLFilter(None, "*", ACLOperation.ANY, ACLPermissionType.ANY,
                                                    ResourcePatternFilter(ResourceType.ANY, None, Pattern.ANY)))
    finally:
        admin.close()
    found = {(acl.principal, acl.resource_pattern.resource_type, acl.resource_pattern.resource_name,
              acl.resource_pattern.pattern_type, acl.operation) for acl in acls}
    wanted = {(f"User:{g.principal}", g.resource, g.name, g.pattern, g.operation) for g in kafka_acls.grants()}
    assert wanted <= found, sorted(map(str, wanted - found))
    assert not [acl for acl in acls if acl.permission_type == ACLPermissionType.ALLOW and
                acl.principal == "User:*"], "nothing is granted to everyone"
