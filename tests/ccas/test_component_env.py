"""The local stack's per-component credentials: each component gets its own Kafka user, database role and S3 keys."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from ccas import settings

SECRETS = {
    "CCAS_KAFKA_PASSWORD_PIPELINE": "kafka-pipeline-pw", "CCAS_KAFKA_PASSWORD_POLLER": "kafka-poller-pw",
    "CCAS_DB_PASSWORD_PIPELINE": "db/pipe@line:pw", "CCAS_DB_PASSWORD_POLLER": "db-poller-pw",
    "CCAS_S3_ACCESS_KEY_PIPELINE": "ak-pipeline", "CCAS_S3_SECRET_KEY_PIPELINE": "sk-pipeline",
}
OWNER_URL = "postgresql://ccas:owner-pw@127.0.0.1:19012/ccas_e2e_x?sslmode=verify-full&sslrootcert=/s/tls/ca.crt"


@pytest.fixture(autouse=True)
def secrets_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "load_secrets", lambda create=False: dict(SECRETS))


def test_the_role_url_keeps_host_database_and_tls_and_quotes_the_password() -> None:
    url = urlsplit(settings.database_role_url(OWNER_URL, "pipeline"))
    assert (url.username, unquote(url.password or "")) == ("ccas_pipeline", "db/pipe@line:pw")
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", 19012, "/ccas_e2e_x")
    assert url.query == "sslmode=verify-full&sslrootcert=/s/tls/ca.crt"
    assert "owner-pw" not in settings.database_role_url(OWNER_URL, "pipeline")


def test_each_component_gets_what_it_has() -> None:
    pipeline = settings.component_env("pipeline", OWNER_URL)
    assert (pipeline["CCAS_KAFKA_USERNAME"], pipeline["CCAS_KAFKA_PASSWORD"]) == ("pipeline", "kafka-pipeline-pw")
    assert (pipeline["CCAS_S3_ACCESS_KEY"], pipeline["CCAS_S3_SECRET_KEY"]) == ("ak-pipeline", "sk-pipeline")
    assert urlsplit(pipeline["CCAS_DATABASE_URL"]).username == "ccas_pipeline"
    poller = settings.component_env("poller", OWNER_URL)
    assert poller["CCAS_KAFKA_USERNAME"] == "poller" and "CCAS_S3_ACCESS_KEY" not in poller, "the poller has no S3 identity"


def test_an_unknown_component_is_refused() -> None:
    with pytest.raises(ValueError, match="no database role for 'scorer'"):
        settings.database_role_url(OWNER_URL, "scorer")
    with pytest.raises(ValueError, match="no Kafka principal 'scorer'"):
        settings.kafka_principal_env("scorer")
