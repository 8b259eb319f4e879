"""KafkaSecurity: the same CCAS_KAFKA_* settings become kafka-python arguments and Java client properties."""

from __future__ import annotations

import argparse

import pytest

from core.config import ConfigurationError, add_flags, load
from core.kafka import KafkaSecurity, consumer_config, producer_config
from core.settings import KafkaSettings

SASL = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "pipeline", 'pa"ss\\word', "/etc/ccas/ca.crt")


def test_plaintext_adds_nothing_but_the_protocol() -> None:
    assert KafkaSecurity().python_config() == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity().java_config() == {"security.protocol": "PLAINTEXT"}


def test_sasl_ssl_for_kafka_python() -> None:
    assert SASL.python_config() == {
        "security_protocol": "SASL_SSL", "ssl_check_hostname": True, "ssl_cafile": "/etc/ccas/ca.crt",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "pipeline", "sasl_plain_password": 'pa"ss\\word'}
    config = producer_config("b:1", security=SASL)
    assert config["sasl_plain_username"] == "pipeline" and config["bootstrap_servers"] == "b:1"
    assert consumer_config("b:1", "g", security=SASL)["security_protocol"] == "SASL_SSL"


def test_sasl_ssl_for_java_quotes_the_password_and_trusts_the_pem_ca() -> None:
    assert SASL.java_config() == {
        "security.protocol": "SASL_SSL", "ssl.truststore.type": "PEM", "ssl.truststore.location": "/etc/ccas/ca.crt",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.jaas.config": 'org.apache.kafka.common.security.scram.ScramLoginModule required username="pipeline" '
                            'password="pa\\"ss\\\\word";'}


def test_the_password_is_not_in_the_repr() -> None:
    assert "pa\"ss" not in repr(SASL) and "pipeline" in repr(SASL)


def test_settings_need_a_user_for_sasl_and_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CCAS_KAFKA_USERNAME", "CCAS_KAFKA_PASSWORD", "CCAS_KAFKA_CA_FILE", "CCAS_KAFKA_SASL_MECHANISM"):
        monkeypatch.delenv(name, raising=False)  # an integration run exports the local stack's
    monkeypatch.setenv("CCAS_KAFKA_BOOTSTRAP", "b:1")
    monkeypatch.setenv("CCAS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ConfigurationError, match="needs CCAS_KAFKA_USERNAME and CCAS_KAFKA_PASSWORD"):
        load(KafkaSettings)
    monkeypatch.setenv("CCAS_KAFKA_USERNAME", "poller")
    monkeypatch.setenv("CCAS_KAFKA_PASSWORD", "a-poller-password")
    monkeypatch.setenv("CCAS_KAFKA_CA_FILE", "/ca.pem")
    security = load(KafkaSettings).kafka_security()
    assert security == KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "poller", "a-poller-password", "/ca.pem")
    assert KafkaSecurity.from_environment() == security


def test_the_password_has_no_flag() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, KafkaSettings)
    flags = parser.format_help()
    assert "--kafka-username" in flags and "--kafka-password" not in flags
