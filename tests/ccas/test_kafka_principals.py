"""`ccas kafka principals`: every component's SCRAM user and ACLs, applied as the certificate-identified administrator.

The brokers' side (who may do what once applied) is tests/ccas/test_kafka_security.py, against the local stack; here the
command's settings, its client and its waiting, with a recording admin client in place of a broker.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from ccas import kafka_acls, kafka_admin, settings
from ccas.kafka_acls import KafkaPrincipalSettings

PASSWORDS = {component: f"{component}-password-0123456789" for component in kafka_acls.COMPONENTS}


@pytest.fixture
def principal_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"CCAS_KAFKA_ADMIN_BOOTSTRAP": "kafka:9094", "CCAS_KAFKA_ADMIN_CERT_FILE": "/pki/kafka-admin/tls.crt",
           "CCAS_KAFKA_ADMIN_KEY_FILE": "/pki/kafka-admin/tls.key", "CCAS_KAFKA_CA_FILE": "/pki/ca/ca.crt",
           **{settings.kafka_password_variable(component): password for component, password in PASSWORDS.items()}}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


class RecordingAdmin:
    """The admin calls `principals` makes; describes a user's credential only after `visible_after` describe calls."""

    def __init__(self, visible_after: int = 0) -> None:
        self.stored: dict[str, str] = {}  # user -> the password its SCRAM-SHA-512 credential was derived from
        self.acls: list[Any] = []
        self.describes = 0
        self.visible_after = visible_after
        self.closed = False

    def alter_user_scram_credentials(self, upserts: list[Any]) -> dict[str, Any]:
        for upsert in upserts:  # the salted password proves which plaintext each user was given
            given = next(p for p in PASSWORDS.values()
                         if hashlib.pbkdf2_hmac("sha512", p.encode(), upsert.salt, upsert.iterations) == upsert.salted_password)
            self.stored[upsert.user] = given
        return {upsert.user: None for upsert in upserts}

    def create_acls(self, acls: list[Any]) -> dict[str, Any]:
        self.acls += acls
        return {"succeeded": acls, "failed": []}

    def describe_user_scram_credentials(self, users: list[str]) -> dict[str, Any]:
        self.describes += 1
        known = self.describes > self.visible_after
        return {user: {"error": None, "credential_infos": [{"iterations": 8192}] if known and user in self.stored else []}
                for user in users}

    def close(self) -> None:
        self.closed = True


def test_the_password_variables_are_the_ones_the_local_stack_generates() -> None:
    fields = {name for name in KafkaPrincipalSettings.model_fields if name.startswith("kafka_password_")}
    assert {f"CCAS_{name.upper()}" for name in fields} == {settings.kafka_password_variable(c) for c in settings.KAFKA_COMPONENTS}
    assert set(kafka_acls.COMPONENTS) == set(settings.KAFKA_COMPONENTS)


def test_principals_stores_every_user_grants_the_acls_and_waits_until_each_is_known(
        principal_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    admin = RecordingAdmin(visible_after=2)
    monkeypatch.setattr(KafkaPrincipalSettings, "admin_client", lambda self: admin)
    monkeypatch.setattr(kafka_acls.time, "sleep", lambda seconds: None)
    assert kafka_admin.main(["principals"]) == 0
    assert admin.stored == PASSWORDS
    assert len(admin.acls) == len(kafka_acls.grants()) and admin.acls
    assert admin.describes == 3 and admin.closed
    assert "5 SCRAM-SHA-512 users (admin, lag-exporter, ops, pipeline, poller)" in capsys.readouterr().out


def test_principals_fails_in_one_line_when_the_brokers_never_describe_a_user(
        principal_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    admin = RecordingAdmin()
    monkeypatch.setattr(KafkaPrincipalSettings, "admin_client", lambda self: admin)

    def never(admin: Any, users: list[str], timeout_s: float = 30.0) -> None:
        raise TimeoutError("the brokers still describe no SCRAM credential for ops")

    monkeypatch.setattr(kafka_acls, "wait_for_credentials", never)
    assert kafka_admin.main(["principals"]) == 1
    assert "kafka principals failed: TimeoutError: the brokers still describe no SCRAM credential for ops" in \
        capsys.readouterr().err
    assert admin.closed


def test_wait_for_credentials_gives_up_naming_the_missing_users(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_acls.time, "sleep", lambda seconds: None)
    admin = RecordingAdmin()
    admin.stored = {"poller": "x"}
    with pytest.raises(TimeoutError, match="no SCRAM credential for admin, pipeline"):
        kafka_acls.wait_for_credentials(admin, ["poller", "pipeline", "admin"], timeout_s=0.0)  # type: ignore[arg-type]


def test_a_missing_password_is_refused_by_name(principal_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CCAS_KAFKA_PASSWORD_LAG_EXPORTER")
    with pytest.raises(SystemExit) as exit_info:
        kafka_admin.main(["principals"])
    assert exit_info.value.code == 2
    assert "CCAS_KAFKA_PASSWORD_LAG_EXPORTER: is not set" in capsys.readouterr().err


def test_the_administrator_connects_with_its_certificate_over_tls(principal_env: dict[str, str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(kafka_acls, "KafkaAdminClient", lambda **kwargs: seen.update(kwargs))
    KafkaPrincipalSettings().admin_client()
    assert seen["bootstrap_servers"] == "kafka:9094"
    assert seen["security_protocol"] == "SSL" and seen["ssl_check_hostname"] is True
    assert (seen["ssl_certfile"], seen["ssl_keyfile"], seen["ssl_cafile"]) == (
        "/pki/kafka-admin/tls.crt", "/pki/kafka-admin/tls.key", "/pki/ca/ca.crt")
    assert not any("password" in key for key in seen), "no SCRAM user exists yet: the certificate alone identifies it"


def test_the_pipeline_principal_reads_and_writes_model_version_updated_and_no_grant_repeats() -> None:
    from kafka.admin import ACLOperation, ResourceType

    on_topic = {grant.operation for grant in kafka_acls.grants()
                if grant.principal == "pipeline" and grant.resource == ResourceType.TOPIC
                and grant.name == "model.version.updated"}
    assert on_topic == {ACLOperation.READ, ACLOperation.WRITE, ACLOperation.DESCRIBE}, "rescore --follow reads, --announce writes"
    assert len(kafka_acls.grants()) == len(set(kafka_acls.grants()))
    readers = {grant.principal for grant in kafka_acls.grants()
               if grant.name == "model.version.updated" and grant.operation == ACLOperation.READ}
    assert readers == {"pipeline"}
