"""Settings of the operator tools: `ccas ops-api`, `ccas lag-exporter`, `ccas dlq` and `ccas status`.

Each is a `CCAS_*` pydantic-settings model whose fields are also the command's flags (flag names kept from before the models).
Nothing here reaches for the local stack: `ccas --local <command>` fills unset variables from it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from ccas.ops.tokens import MIN_TOKEN_LENGTH, OpsToken, parse_tokens, with_single_token
from core.config import CcasSettings, secret, server_tls
from core.settings import DatabaseSettings, KafkaSettings

DEFAULT_LAG_GROUPS = r"^ccas-.*"
MIN_OPS_TOKEN_LENGTH = MIN_TOKEN_LENGTH
# `ccas ops-api` settings with no flag: a command line shows in `ps` to every user of the machine.
OPS_API_ENVIRONMENT_ONLY = ("ops_tokens", "ops_token")


def _flag(name: str) -> dict[str, Any]:
    return {"flag": name}


class OpsSettings(KafkaSettings, DatabaseSettings):
    ops_tokens: SecretStr | None = Field(
        default=None,
        description="the ops API's named bearer tokens, comma-separated name:role:token (role viewer: list and show masked "
                    "dead letters; operator: also requeue; admin: also full payloads; names unique of A-Z a-z 0-9 . _ @ -, "
                    f"tokens unique, at least {MIN_OPS_TOKEN_LENGTH} characters)")
    ops_token: SecretStr | None = Field(
        default=None,
        description=f"single-token form: one bearer token (at least {MIN_OPS_TOKEN_LENGTH} characters), caller `ops` with role "
                    "operator; set this or CCAS_OPS_TOKENS (or both)")
    ops_api_host: str = Field(default="127.0.0.1", json_schema_extra=_flag("--host"), description="address the ops API binds")
    ops_api_port: int = Field(default=8080, ge=1, le=65535, json_schema_extra=_flag("--port"), description="ops API port")
    ops_api_tls_cert_file: Path | None = Field(
        default=None, json_schema_extra=_flag("--tls-cert-file"),
        description="PEM certificate (chain) the ops API serves HTTPS with, set together with CCAS_OPS_API_TLS_KEY_FILE "
                    "(neither: plain HTTP)")
    ops_api_tls_key_file: Path | None = Field(default=None, json_schema_extra=_flag("--tls-key-file"),
                                              description="PEM private key of CCAS_OPS_API_TLS_CERT_FILE")
    _tokens: list[OpsToken] = PrivateAttr(default_factory=list)

    @field_validator("ops_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(secret(value)) < MIN_OPS_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_OPS_TOKEN_LENGTH} characters")
        return value

    @field_validator("ops_tokens")
    @classmethod
    def _well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_tokens(secret(value))  # ValueError: load() reports it under CCAS_OPS_TOKENS
        return value

    @model_validator(mode="after")
    def _some_token(self) -> OpsSettings:
        # The field validators ran already; a model-level error has no variable of its own, so the message names them.
        if self.ops_tokens is None and self.ops_token is None:
            raise ValueError("set CCAS_OPS_TOKENS (name:role:token,...) or CCAS_OPS_TOKEN (the single-token form)")
        named = parse_tokens(secret(self.ops_tokens)) if self.ops_tokens is not None else []
        self._tokens = with_single_token(named, secret(self.ops_token) or None)
        self.uvicorn_tls()
        return self

    def uvicorn_tls(self) -> dict[str, str]:
        return server_tls(self.ops_api_tls_cert_file, self.ops_api_tls_key_file, "CCAS_OPS_API_TLS_CERT_FILE",
                          "CCAS_OPS_API_TLS_KEY_FILE")

    def tokens(self) -> list[OpsToken]:
        """Every token the API accepts: CCAS_OPS_TOKENS' plus CCAS_OPS_TOKEN as operator `ops` (ccas/ops/tokens.py)."""
        return list(self._tokens)


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
