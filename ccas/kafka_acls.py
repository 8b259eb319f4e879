"""Kafka principals and least-privilege ACLs: one SCRAM user per component, allowed only what that component does.

| principal     | may                                                                                              |
|---------------|--------------------------------------------------------------------------------------------------|
| poller        | write calls.raw (transactional id `ccas-poller*`), read it back to find what it last published   |
| pipeline      | read calls.raw and model.version.updated in a `ccas-pipeline*` group; write calls.enriched,       |
|               | audio.ready, scoring.results, agent.scorecards, model.version.updated (`ccas rescore --announce`), DLQs |
| ops           | read the DLQs; write calls.raw (requeue)                                                          |
| lag-exporter  | describe groups, topics and the cluster (offsets and lag), nothing else                            |
| admin         | a super user of the broker: topics and ACLs (`ccas kafka bootstrap`, the stack)                   |

Anything not granted is refused: the broker runs with `allow.everyone.if.no.acl.found=false`.

`ccas kafka principals` applies them to a deployment's brokers (docker-compose.flink.yml's init): it connects to their
mutual-TLS listener, where its certificate (a super user) identifies it, since no SCRAM user exists before it has run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
from pydantic import Field, SecretStr

import schemas
from core.config import ENVIRONMENT_ONLY, CcasSettings, secret

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


# The pipeline's inputs besides calls.raw: the streaming job's re-score branch (group `<consumer_group>-rescore`) and the
# re-score follower (`ccas rescore --follow`) read it.
PIPELINE_EVENT_INPUTS = ("model.version.updated",)


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
    allow("pipeline", ResourceType.TOPIC, [raw, *PIPELINE_EVENT_INPUTS], (_READ, _DESCRIBE))
    allow("pipeline", ResourceType.GROUP, [PIPELINE_GROUP_PREFIX], (_READ, _DESCRIBE), _PREFIXED)
    allow("pipeline", ResourceType.TOPIC, [*outputs, *dead_letters], (_WRITE, _DESCRIBE))
    allow("ops", ResourceType.TOPIC, dead_letters, (_READ, _DESCRIBE))
    allow("ops", ResourceType.TOPIC, [raw], (_WRITE, _DESCRIBE))
    allow("lag-exporter", ResourceType.GROUP, ["*"], (_DESCRIBE,))
    allow("lag-exporter", ResourceType.TOPIC, ["*"], (_DESCRIBE,))
    allow("lag-exporter", ResourceType.CLUSTER, ["kafka-cluster"], (_DESCRIBE,))
    return list(dict.fromkeys(out))  # a topic both read and written is described once


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


def wait_for_credentials(admin: KafkaAdminClient, users: list[str], timeout_s: float = 30.0) -> None:
    """Return once the brokers describe a SCRAM credential for every user: only then can each log in (TimeoutError)."""
    deadline = time.monotonic() + timeout_s
    while True:
        described = admin.describe_user_scram_credentials(users)
        missing = sorted(user for user in users if not (described.get(user) or {}).get("credential_infos"))
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the brokers still describe no SCRAM credential for {', '.join(missing)}")
        time.sleep(0.5)


def _password_field(component: str) -> Any:
    return Field(json_schema_extra=ENVIRONMENT_ONLY, description=f"SCRAM password of the Kafka user `{component}` "
                                                                  "(ccas/kafka_acls.py says what it may do)")


class KafkaPrincipalSettings(CcasSettings):
    """`ccas kafka principals`: the administrator's certificate on the mutual-TLS listener and every component's password."""

    kafka_admin_bootstrap: str = Field(
        json_schema_extra={"flag": "--bootstrap-server"},
        description="the brokers' mutual-TLS listener, host:port[,host:port...]: there a certificate, not a password, "
                    "identifies the administrator, so the SCRAM users can be created")
    kafka_admin_cert_file: str = Field(description="PEM certificate the administrator presents on that listener (a super "
                                                   "user of the brokers)")
    kafka_admin_key_file: str = Field(description="PEM private key of CCAS_KAFKA_ADMIN_CERT_FILE")
    kafka_ca_file: str = Field(default="", description="PEM CA bundle that verifies the brokers' certificates (SSL, "
                                                       "SASL_SSL); empty: the system trust store")
    kafka_password_poller: SecretStr = _password_field("poller")
    kafka_password_pipeline: SecretStr = _password_field("pipeline")
    kafka_password_ops: SecretStr = _password_field("ops")
    kafka_password_lag_exporter: SecretStr = _password_field("lag-exporter")
    kafka_password_admin: SecretStr = _password_field("admin")

    def passwords(self) -> dict[str, str]:
        """Principal -> password, for every principal of COMPONENTS."""
        return {component: secret(getattr(self, f"kafka_password_{component.replace('-', '_')}")) for component in COMPONENTS}

    def admin_client(self) -> KafkaAdminClient:
        return KafkaAdminClient(bootstrap_servers=self.kafka_admin_bootstrap, client_id="ccas-principals",
                                request_timeout_ms=15000, security_protocol="SSL", ssl_check_hostname=True,
                                ssl_certfile=self.kafka_admin_cert_file, ssl_keyfile=self.kafka_admin_key_file,
                                **({"ssl_cafile": self.kafka_ca_file} if self.kafka_ca_file else {}))
