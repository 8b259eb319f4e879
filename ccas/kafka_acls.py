"""Kafka principals and least-privilege ACLs: one SCRAM user per component, allowed only what that component does.

| principal     | may                                                                                              |
|---------------|--------------------------------------------------------------------------------------------------|
| poller        | write calls.raw (transactional id `ccas-poller*`), read it back to find what it last published   |
| pipeline      | read calls.raw in a `ccas-pipeline*` group; write calls.enriched, audio.ready, scoring.results, DLQs |
| ops           | read the DLQs; write calls.raw (requeue)                                                          |
| lag-exporter  | describe groups, topics and the cluster (offsets and lag), nothing else                            |
| admin         | a super user of the broker: topics and ACLs (`ccas kafka bootstrap`, the stack)                   |

Anything not granted is refused: the broker runs with `allow.everyone.if.no.acl.found=false`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

import schemas

COMPONENTS = ("poller", "pipeline", "ops", "lag-exporter", "admin")
PIPELINE_GROUP_PREFIX = "ccas-pipeline"
POLLER_TRANSACTIONAL_PREFIX = "ccas-poller"
SCRAM_ITERATIONS = 8192

_LITERAL, _PREFIXED = ACLResourcePatternType.LITERAL, ACLResourcePatternType.PREFIXED
_READ, _WRITE, _DESCRIBE = ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE


@dataclass(frozen=True)
class Grant:
    principal: str
    resource: ResourceType
    name: str
    pattern: ACLResourcePatternType
    operation: ACLOperation


def _topic_names() -> tuple[str, list[str], list[str]]:
    topics = schemas.topics()
    dead_letters = sorted(spec.dead_letter for spec in topics.values() if spec.dead_letter)
    outputs = sorted(name for name in topics if name != "calls.raw" and name not in dead_letters)
    return "calls.raw", outputs, dead_letters


def grants() -> list[Grant]:
    """Every ACL the components need (the admin needs none: it is a super user)."""
    raw, outputs, dead_letters = _topic_names()
    out: list[Grant] = []

    def allow(principal: str, resource: ResourceType, names: list[str], operations: tuple[ACLOperation, ...],
              pattern: ACLResourcePatternType = _LITERAL) -> None:
        out.extend(Grant(principal, resource, name, pattern, op) for name in names for op in operations)

    allow("poller", ResourceType.TOPIC, [raw], (_WRITE, _READ, _DESCRIBE))
    allow("poller", ResourceType.TRANSACTIONAL_ID, [POLLER_TRANSACTIONAL_PREFIX], (_WRITE, _DESCRIBE), _PREFIXED)
    allow("pipeline", ResourceType.TOPIC, [raw], (_READ, _DESCRIBE))
    allow("pipeline", ResourceType.GROUP, [PIPELINE_GROUP_PREFIX], (_READ, _DESCRIBE), _PREFIXED)
    allow("pipeline", ResourceType.TOPIC, [*outputs, *dead_letters], (_WRITE, _DESCRIBE))
    allow("ops", ResourceType.TOPIC, dead_letters, (_READ, _DESCRIBE))
    allow("ops", ResourceType.TOPIC, [raw], (_WRITE, _DESCRIBE))
    allow("lag-exporter", ResourceType.GROUP, ["*"], (_DESCRIBE,))
    allow("lag-exporter", ResourceType.TOPIC, ["*"], (_DESCRIBE,))
    allow("lag-exporter", ResourceType.CLUSTER, ["kafka-cluster"], (_DESCRIBE,))
    return out


def apply(admin: KafkaAdminClient, passwords: dict[str, str]) -> tuple[int, int]:
    """Create or update each component's SCRAM-SHA-512 user and its ACLs (idempotent); returns (users, ACLs)."""
    upserts = [UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, password, iterations=SCRAM_ITERATIONS)
               for user, password in sorted(passwords.items())]
    errors = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
    if errors:
        raise RuntimeError(f"SCRAM credentials not stored: {errors}")
    acls = [ACL(f"User:{grant.principal}", "*", grant.operation, ACLPermissionType.ALLOW,
                ResourcePattern(grant.resource, grant.name, grant.pattern)) for grant in grants()]
    result = admin.create_acls(acls)
    if result.get("failed"):
        raise RuntimeError(f"ACLs not created: {result['failed'][:3]}")
    return len(upserts), len(acls)
