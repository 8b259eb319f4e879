"""The customer-number keys of the pipeline: CCAS_PII_HMAC_KEY is required and long enough, the encrypted copy needs a valid
Fernet key, both come from the environment only, and none of them reaches a repr or an error message."""

from __future__ import annotations

import os

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from cryptography.fernet import Fernet

from pipeline.options import CcasOptions, ConfigError, validate_options
from tests.pipeline.test_options import COMPLETE

HMAC_KEY = "pii-settings-test-key-0123456789"


@pytest.fixture(autouse=True)
def only_these_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith("CCAS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CCAS_SCORING_TOKEN", "pii-settings-scoring-token-0123")
    monkeypatch.setenv("CCAS_PII_HMAC_KEY", HMAC_KEY)


def _error(monkeypatch: pytest.MonkeyPatch, **variables: str | None) -> str:
    for name, value in variables.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        validate_options(PipelineOptions(COMPLETE))
    return str(caught.value)


def test_the_hmac_key_reaches_the_job_config_and_no_encryption_by_default() -> None:
    config = validate_options(PipelineOptions(COMPLETE))
    assert (config.pii_hmac_key, config.pii_encryption_key) == (HMAC_KEY, None)
    assert HMAC_KEY not in repr(config)


def test_a_missing_hmac_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CCAS_PII_HMAC_KEY=None)
    assert "CCAS_PII_HMAC_KEY" in message and "is not set" in message


def test_a_short_hmac_key_is_named_without_its_value(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CCAS_PII_HMAC_KEY="fifteen-bytes!!")
    assert "CCAS_PII_HMAC_KEY" in message and "at least 16 bytes" in message
    assert "fifteen-bytes!!" not in message
    # Bytes, not characters: 8 two-byte characters are 16 bytes.
    monkeypatch.setenv("CCAS_PII_HMAC_KEY", "ééééééé")  # 7 characters, 14 bytes
    with pytest.raises(ConfigError, match="at least 16 bytes"):
        validate_options(PipelineOptions(COMPLETE))
    monkeypatch.setenv("CCAS_PII_HMAC_KEY", "éééééééé")
    assert validate_options(PipelineOptions(COMPLETE)).pii_hmac_key == "éééééééé"


def test_storing_the_encrypted_number_needs_a_fernet_key(monkeypatch: pytest.MonkeyPatch) -> None:
    message = _error(monkeypatch, CCAS_PII_STORE_ENCRYPTED_NUMBER="true")
    assert "CCAS_PII_STORE_ENCRYPTED_NUMBER is true but CCAS_PII_ENCRYPTION_KEY is not set" in message
    message = _error(monkeypatch, CCAS_PII_ENCRYPTION_KEY="not-a-fernet-key-at-all")
    assert "CCAS_PII_ENCRYPTION_KEY" in message and "is not a Fernet key" in message
    assert "not-a-fernet-key-at-all" not in message


def test_the_encryption_key_is_used_only_when_storing_is_on(monkeypatch: pytest.MonkeyPatch) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("CCAS_PII_ENCRYPTION_KEY", key)
    assert validate_options(PipelineOptions(COMPLETE)).pii_encryption_key is None, "off: nothing is encrypted or stored"
    monkeypatch.setenv("CCAS_PII_STORE_ENCRYPTED_NUMBER", "true")
    config = validate_options(PipelineOptions(COMPLETE))
    assert config.pii_encryption_key == key and key not in repr(config)


@pytest.mark.parametrize("name", ["pii_hmac_key", "pii_encryption_key"])
def test_the_keys_have_no_flag(name: str) -> None:
    # A command line shows in `ps`, and Beam keeps its options in the job for its UIs to show.
    assert name not in PipelineOptions(COMPLETE).view_as(CcasOptions).get_all_options()
    given = PipelineOptions([*COMPLETE, f"--{name}=0123456789abcdef0123"]).view_as(CcasOptions).get_all_options()
    assert name not in given, "a flag of that name is not read into the settings"
