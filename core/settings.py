"""The settings blocks several components share. A component's own settings class inherits the blocks it needs."""

from __future__ import annotations

from pydantic import Field, SecretStr

from core.config import CcasSettings


class KafkaSettings(CcasSettings):
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
