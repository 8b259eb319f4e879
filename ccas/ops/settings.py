"""Settings of the operator tools: `ccas ops-api`, `ccas lag-exporter`, `ccas dlq` and `ccas status`.

Each is a `CCAS_*` pydantic-settings model whose fields are also the command's flags (flag names kept from before the models).
Nothing here reaches for the local stack: `ccas --local <command>` fills unset variables from it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, SecretStr, field_validator

from core.config import CcasSettings, secret
from core.settings import DatabaseSettings, KafkaSettings

DEFAULT_LAG_GROUPS = r"^ccas-.*"
MIN_OPS_TOKEN_LENGTH = 16


def _flag(name: str) -> dict[str, Any]:
    return {"flag": name}


class OpsSettings(KafkaSettings, DatabaseSettings):
    ops_token: SecretStr = Field(json_schema_extra=_flag("--ops-token"),
                                 description=f"bearer token every ops API request must carry (at least {MIN_OPS_TOKEN_LENGTH} "
                                             "characters)")
    ops_api_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--host"), description="address the ops API binds")
    ops_api_port: int = Field(default=8080, ge=1, le=65535, json_schema_extra=_flag("--port"), description="ops API port")

    @field_validator("ops_token")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(secret(value)) < MIN_OPS_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_OPS_TOKEN_LENGTH} characters")
        return value


class LagExporterSettings(KafkaSettings):
    lag_exporter_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--host"),
                                   description="address the /metrics endpoint binds (0.0.0.0 in a container)")
    lag_exporter_port: int = Field(default=9103, ge=1, le=65535, json_schema_extra=_flag("--port"), description="/metrics port")
    lag_exporter_groups: str = Field(default=DEFAULT_LAG_GROUPS, json_schema_extra=_flag("--groups"),
                                     description="consumer groups to report (a regex; the default leaves out groups tests "
                                                 "left behind)")
    lag_exporter_stack_dir: str = Field(default="", json_schema_extra=_flag("--stack-dir"),
                                        description="the local stack's folder, named on the command line only so the stack "
                                                    "recognises the exporter it started")

    @field_validator("lag_exporter_groups")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return value


class DlqSettings(KafkaSettings):
    # `requeue` records what it did in PostgreSQL and cannot run without it; `list` reads it for its status columns only
    # (unset or unreachable: shown unknown); `show` needs Kafka alone.
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL, postgresql://user:password@host:port/db (`ccas dlq requeue`; "
                                  "`ccas dlq list` status columns)")


class StatusSettings(CcasSettings):
    database_url: SecretStr | None = Field(
        default=None, description="PostgreSQL URL for the calls-in-the-last-hour counts (unset: that section says so)")
    prometheus_url: str = Field(default="http://127.0.0.1:9090", description="Prometheus the status screen queries")
    prism_ui_url: str = Field(default="http://127.0.0.1:8074", description="Prism job server UI, shown under Where to look")
    flink_rest_port: int = Field(default=8081, ge=1, le=65535, description="local Flink REST/UI port, shown under Where to look")
    ops_api_port: int = Field(default=8080, ge=1, le=65535, description="local ops API port, shown under Where to look")
