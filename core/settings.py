"""The settings blocks several components share. A component's own settings class inherits the blocks it needs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from core.config import ENVIRONMENT_ONLY, CcasSettings, secret
from core.kafka import KafkaSecurity


class KafkaSecuritySettings(CcasSettings):
    """How a component authenticates to Kafka; the same variables for kafka-python and for Java's ReadFromKafka."""

    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        default="PLAINTEXT", description="security protocol of the Kafka listener (SASL_SSL: TLS and a SCRAM user)")
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        default="SCRAM-SHA-512", description="SASL mechanism with SASL_SSL / SASL_PLAINTEXT")
    kafka_username: str = Field(default="", description="this component's Kafka principal (SASL user name)")
    kafka_password: SecretStr | None = Field(default=None, json_schema_extra=ENVIRONMENT_ONLY,
                                             description="password of CCAS_KAFKA_USERNAME")
    kafka_ca_file: str = Field(default="", description="PEM CA bundle that verifies the brokers' certificates (SSL, "
                                                       "SASL_SSL); empty: the system trust store")

    @model_validator(mode="after")
    def _sasl_user(self) -> KafkaSecuritySettings:
        if self.kafka_security_protocol.startswith("SASL") and not (self.kafka_username and secret(self.kafka_password)):
            raise ValueError(f"CCAS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs CCAS_KAFKA_USERNAME and "
                             "CCAS_KAFKA_PASSWORD")
        return self

    def kafka_security(self) -> KafkaSecurity:
        return KafkaSecurity(self.kafka_security_protocol, self.kafka_sasl_mechanism, self.kafka_username,
                             secret(self.kafka_password), self.kafka_ca_file)


class KafkaSettings(KafkaSecuritySettings):
    kafka_bootstrap: str = Field(description="Kafka bootstrap servers, host:port[,host:port...]")


class DatabaseSettings(CcasSettings):
    database_url: SecretStr = Field(description="PostgreSQL URL, postgresql://user:password@host:port/db")


class S3Settings(CcasSettings):
    s3_endpoint: str = Field(default="", description="S3 endpoint URL; empty: AWS S3 (default endpoint and credential chain)")
    s3_bucket: str = Field(description="the audio bucket")
    s3_region: str = Field(default="", description="S3 region; empty: AWS's own resolution (us-east-1 for other endpoints)")
    s3_access_key: SecretStr | None = Field(default=None, description="S3 access key; empty: the AWS credential chain")
    s3_secret_key: SecretStr | None = Field(default=None, description="S3 secret key; empty: the AWS credential chain")
    s3_ca_file: str = Field(default="", description="CA certificate(s) that verify an https S3 endpoint; empty: the system "
                                                    "trust store")


class RecorderSettings(CcasSettings):
    avaya_url: str = Field(description="base URL of the Avaya Contact Recorder (Search and Replay API)")
    avaya_user: str = Field(description="recorder API user")
    avaya_password: SecretStr | None = Field(default=None, description="recorder API password (or CCAS_AVAYA_PASSWORD_FILE)")
    avaya_password_file: str = Field(default="", description="file holding the recorder password (a mounted secret)")
    avaya_tz: str = Field(default="Asia/Ho_Chi_Minh", description="time zone the recorder's Search API speaks")
