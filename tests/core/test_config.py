"""The one configuration style: a settings model is environment variables and flags at once; errors name the variables."""

from __future__ import annotations

import argparse
import os

import pytest
from pydantic import Field, SecretStr

from core.config import CcasSettings, ConfigurationError, add_flags, describe, load, secret


class ExampleSettings(CcasSettings):
    kafka_bootstrap: str = Field(description="brokers")
    retries: int = Field(default=3, ge=0, description="attempts")
    token: SecretStr | None = Field(default=None, description="a secret")
    poller_interval: float = Field(default=30.0, json_schema_extra={"flag": "--interval"}, description="seconds")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith("CCAS_")]:
        monkeypatch.delenv(name)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser, ExampleSettings)
    return parser.parse_args(argv)


def test_flags_win_over_variables_and_variables_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAS_KAFKA_BOOTSTRAP", "env:1")
    monkeypatch.setenv("CCAS_RETRIES", "5")
    monkeypatch.setenv("CCAS_POLLER_INTERVAL", "10")
    settings = load(ExampleSettings, _parse(["--retries", "7"]))
    assert (settings.kafka_bootstrap, settings.retries, settings.poller_interval) == ("env:1", 7, 10.0)
    assert load(ExampleSettings, _parse(["--interval", "2.5"])).poller_interval == 2.5


def test_every_problem_is_named_by_variable_and_flag() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load(ExampleSettings, _parse(["--retries", "-1"]))
    message = str(raised.value)
    assert "CCAS_KAFKA_BOOTSTRAP / --kafka-bootstrap: is not set" in message
    assert "CCAS_RETRIES / --retries: Input should be greater than or equal to 0" in message


def test_secrets_never_print() -> None:
    settings = load(ExampleSettings, {"kafka_bootstrap": "k:1", "token": "hunter2-hunter2"})
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)
    assert secret(settings.token) == "hunter2-hunter2" and secret(None) == ""


def test_describe_lists_variable_flag_default_and_help() -> None:
    docs = {doc.variable: doc for doc in describe(ExampleSettings)}
    assert docs["CCAS_POLLER_INTERVAL"].flag == "--interval" and docs["CCAS_POLLER_INTERVAL"].default == "30.0"
    assert docs["CCAS_KAFKA_BOOTSTRAP"].default == "" and docs["CCAS_KAFKA_BOOTSTRAP"].help == "brokers"
    assert docs["CCAS_TOKEN"].secret and not docs["CCAS_RETRIES"].secret
