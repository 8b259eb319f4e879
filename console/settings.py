"""The console's settings: `CCAS_*` variables, each also a `ccas console` flag (secrets: environment only).

Nothing here reaches for the local stack: `ccas --local console` fills unset variables from it, a deployment sets them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from core.config import ENVIRONMENT_ONLY, secret, server_tls
from core.settings import DatabaseSettings, KafkaSettings, S3Settings

MIN_SESSION_KEY_LENGTH = 32
# A secret on a command line shows in `ps` to every user of the machine.
CONSOLE_ENVIRONMENT_ONLY = ("s3_access_key", "s3_secret_key")


def _flag(name: str) -> dict[str, Any]:
    return {"flag": name}


class ConsoleSettings(KafkaSettings, S3Settings, DatabaseSettings):
    console_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--host"), description="address the console binds")
    console_port: int = Field(default=8090, ge=1, le=65535, json_schema_extra=_flag("--port"), description="console port")
    console_tls_cert_file: Path | None = Field(
        default=None, json_schema_extra=_flag("--tls-cert-file"),
        description="PEM certificate (chain) the console serves HTTPS with, set together with CCAS_CONSOLE_TLS_KEY_FILE "
                    "(neither: plain HTTP, where browsers drop the Secure session cookie except on localhost)")
    console_tls_key_file: Path | None = Field(default=None, json_schema_extra=_flag("--tls-key-file"),
                                              description="PEM private key of CCAS_CONSOLE_TLS_CERT_FILE")
    console_session_key: SecretStr = Field(
        json_schema_extra=ENVIRONMENT_ONLY,
        description=f"key (at least {MIN_SESSION_KEY_LENGTH} characters) that signs the console's session and CSRF "
                    "cookies; changing it signs everybody out")
    console_session_hours: float = Field(default=8.0, gt=0, le=24 * 7, json_schema_extra=_flag("--session-hours"),
                                         description="how long a sign-in lasts")
    console_time_zone: str = Field(default="Asia/Ho_Chi_Minh", json_schema_extra=_flag("--time-zone"),
                                   description="time zone the console shows dates in and groups days by")
    console_min_agent_calls: int = Field(default=5, ge=1, json_schema_extra=_flag("--min-agent-calls"),
                                         description="scored calls an agent needs in the period to be ranked in the team "
                                                     "overview (fewer: listed apart, not ranked)")
    prometheus_url: str = Field(default="http://127.0.0.1:9090", description="Prometheus the Operations page asks for "
                                                                             "components up, lag and p95 latencies")

    @field_validator("console_session_key")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(secret(value)) < MIN_SESSION_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SESSION_KEY_LENGTH} characters")
        return value

    @field_validator("console_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleSettings:
        self.uvicorn_tls()
        return self

    def uvicorn_tls(self) -> dict[str, str]:
        return server_tls(self.console_tls_cert_file, self.console_tls_key_file, "CCAS_CONSOLE_TLS_CERT_FILE",
                          "CCAS_CONSOLE_TLS_KEY_FILE")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.console_time_zone)


class ConsoleUserSettings(DatabaseSettings):
    """`ccas console user add`: the schema owner's (or an administrator's) URL, since the console's own role only reads."""
