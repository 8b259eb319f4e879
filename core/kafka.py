"""Kafka client configuration shared by every producer and consumer CCAS runs (kafka-python, and Java's ReadFromKafka)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach the brokers: PLAINTEXT, or TLS (SSL) with a SASL user (SASL_SSL). Picklable: a Beam job carries it."""

    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: str = field(default="", repr=False)
    ca_file: str = ""

    @classmethod
    def from_environment(cls) -> KafkaSecurity:
        """CCAS_KAFKA_SECURITY_PROTOCOL, _SASL_MECHANISM, _USERNAME, _PASSWORD, _CA_FILE (core.settings)."""
        from core.config import load
        from core.settings import KafkaSecuritySettings

        return load(KafkaSecuritySettings).kafka_security()

    def python_config(self) -> dict[str, Any]:
        """kafka-python keyword arguments (producer, consumer, admin client)."""
        config: dict[str, Any] = {"security_protocol": self.protocol}
        if "SSL" in self.protocol:
            config.update(ssl_check_hostname=True, **({"ssl_cafile": self.ca_file} if self.ca_file else {}))
        if self.protocol.startswith("SASL"):
            config.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                          sasl_plain_password=self.password)
        return config

    def java_config(self) -> dict[str, str]:
        """Kafka Java client properties (ReadFromKafka's consumer_config); a PEM CA file serves as the trust store."""
        config = {"security.protocol": self.protocol}
        if "SSL" in self.protocol and self.ca_file:
            config.update({"ssl.truststore.type": "PEM", "ssl.truststore.location": self.ca_file})
        if self.protocol.startswith("SASL"):
            module = "scram.ScramLoginModule" if self.mechanism.startswith("SCRAM") else "plain.PlainLoginModule"
            config.update({"sasl.mechanism": self.mechanism,
                           "sasl.jaas.config": f"org.apache.kafka.common.security.{module} required "
                                               f"username={_jaas_quoted(self.username)} "
                                               f"password={_jaas_quoted(self.password)};"})
        return config


def _jaas_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def client_security(security: KafkaSecurity | None) -> dict[str, Any]:
    """kafka-python settings of `security`, or of the CCAS_KAFKA_* environment when None."""
    return (security or KafkaSecurity.from_environment()).python_config()


def producer_config(bootstrap: str, client_id: str = "ccas", security: KafkaSecurity | None = None,
                    **overrides: Any) -> dict[str, Any]:
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
        **client_security(security),
    }
    config.update(overrides)
    return config


def producer(bootstrap: str, client_id: str = "ccas", security: KafkaSecurity | None = None,
             **overrides: Any) -> KafkaProducer:
    return KafkaProducer(**producer_config(bootstrap, client_id, security, **overrides))


def consumer_config(bootstrap: str, group_id: str | None, client_id: str = "ccas", security: KafkaSecurity | None = None,
                    **overrides: Any) -> dict[str, Any]:
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
        **client_security(security),
    }
    config.update(overrides)
    return config
