"""Pipeline options: bad configuration fails before submission, with every problem named; runner flags are what Prism needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipeline.main import STREAM_TIMEOUT_S, build_options
from pipeline.options import CcasOptions, ConfigError, language_of, validate_options

COMPLETE = ["--kafka_bootstrap=127.0.0.1:1", "--database_url=postgresql://u:p@127.0.0.1:1/db", "--s3_bucket=b",
            "--s3_endpoint=http://127.0.0.1:2", "--avaya_url=http://127.0.0.1:3", "--avaya_user=u", "--avaya_password=p",
            "--scoring_url=http://127.0.0.1:4", "--kafka_io=python", "--metrics_port=0"]


SCORING_TOKEN = "unit-scoring-token-0123456789"
PII_HMAC_KEY = "unit-pii-hmac-key-0123456789"


@pytest.fixture
def no_ccas_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No CCAS_* but the scoring token, which has no flag (COMPLETE cannot carry it)."""
    for name in [key for key in os.environ if key.startswith("CCAS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CCAS_SCORING_TOKEN", SCORING_TOKEN)
    monkeypatch.setenv("CCAS_PII_HMAC_KEY", PII_HMAC_KEY)  # environment only too (tests/pipeline/test_pii_settings.py)


def test_missing_settings_are_listed_at_once_by_variable_and_flag(no_ccas_environment: None, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A local stack with generated secrets next door must not fill anything in: the job reads flags and CCAS_* only.
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "secrets.env").write_text("CCAS_DB_PASSWORD=Tr4pValue\nCCAS_AVAYA_PASSWORD=Tr4pValue\n")
    monkeypatch.setenv("CCAS_STACK_DIR", str(stack))
    with pytest.raises(ConfigError) as caught:
        validate_options(PipelineOptions(["--kafka_io=java", "--download_concurrency=0"]))
    message = str(caught.value)
    for expected in ("CCAS_DATABASE_URL / --database_url: is not set", "CCAS_KAFKA_BOOTSTRAP / --kafka_bootstrap: is not set",
                     "CCAS_AVAYA_URL / --avaya_url: is not set", "CCAS_SCORING_URL / --scoring_url: is not set",
                     "CCAS_DOWNLOAD_CONCURRENCY / --download_concurrency: Input should be greater than or equal to 1"):
        assert expected in message
    assert "Tr4pValue" not in message


def test_inconsistent_settings_are_listed_at_once(no_ccas_environment: None) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_options(PipelineOptions([*COMPLETE, "--kafka_io=java", "--avaya_url=ftp://x", "--input_topic=calls.rwa",
                                          "--s3_access_key=only-one"]))
    message = str(caught.value)
    for expected in ("--kafka_io=java needs --expansion_service", "--avaya_url / CCAS_AVAYA_URL must be an http(s) URL",
                     "--input_topic 'calls.rwa' is not a declared topic",
                     "CCAS_S3_ACCESS_KEY and CCAS_S3_SECRET_KEY go together"):
        assert expected in message


def test_skill_languages_map_exact_skills_before_prefixes(no_ccas_environment: None) -> None:
    config = validate_options(PipelineOptions([*COMPLETE, "--skill_languages=1*=vi, 2*=en, 105=en"]))
    assert config.skill_languages == (("1*", "vi"), ("2*", "en"), ("105", "en"))
    assert [language_of(skill, config.skill_languages) for skill in ("101", "105", "201", "301", None)] == [
        "vi", "en", "en", None, None]
    with pytest.raises(ConfigError, match="--skill_languages item 'billing': write skill=language"):
        validate_options(PipelineOptions([*COMPLETE, "--skill_languages=billing"]))


def test_a_flag_wins_over_its_variable_and_the_variable_over_the_default(no_ccas_environment: None,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAS_SCORING_CONCURRENCY", "3")
    monkeypatch.setenv("CCAS_DOWNLOAD_CONCURRENCY", "5")
    monkeypatch.setenv("CCAS_PIPELINE_METRICS_PORT", "9300")
    config = validate_options(PipelineOptions([*COMPLETE, "--download_concurrency=7"]))
    assert (config.scoring_concurrency, config.download_concurrency, config.download_attempts) == (3, 7, 5)
    assert config.metrics_port == 0, "--metrics_port=0 in COMPLETE wins over CCAS_PIPELINE_METRICS_PORT"
    assert config.s3_endpoint == "http://127.0.0.1:2"
    aws = validate_options(PipelineOptions([arg for arg in COMPLETE if not arg.startswith("--s3_endpoint")]))
    assert aws.s3_endpoint is None and aws.s3_access_key is None, "no endpoint and no keys: AWS S3 and its credential chain"


def test_secrets_never_reach_the_repr(no_ccas_environment: None) -> None:
    config = validate_options(PipelineOptions([*COMPLETE, "--s3_access_key=AK", "--s3_secret_key=TOPSECRET"]))
    assert "TOPSECRET" not in repr(config) and "p@" not in repr(config) and SCORING_TOKEN not in repr(config)


def test_the_scoring_token_and_ca_file_reach_the_job_config(no_ccas_environment: None, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    config = validate_options(PipelineOptions(COMPLETE))
    assert (config.scoring_token, config.scoring_ca_file) == (SCORING_TOKEN, ""), "no CA file: the system trust store"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("CCAS_SCORING_CA_FILE", str(ca))
    assert validate_options(PipelineOptions(COMPLETE)).scoring_ca_file == str(ca)
    other = tmp_path / "other.pem"
    other.write_text("-----BEGIN CERTIFICATE-----\n")
    assert validate_options(PipelineOptions([*COMPLETE, f"--scoring_ca_file={other}"])).scoring_ca_file == str(other)


def test_a_missing_scoring_token_or_ca_file_is_a_configuration_error(no_ccas_environment: None, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CCAS_SCORING_TOKEN")
    with pytest.raises(ConfigError) as caught:
        validate_options(PipelineOptions([*COMPLETE, f"--scoring_ca_file={tmp_path / 'missing.pem'}"]))
    message = str(caught.value)
    assert "CCAS_SCORING_TOKEN (the scoring service's bearer token) is not set" in message
    assert f"--scoring_ca_file / CCAS_SCORING_CA_FILE: {tmp_path / 'missing.pem'} is not a file" in message


def test_the_scoring_token_has_no_flag(no_ccas_environment: None) -> None:
    # A command line shows in `ps`, and Beam keeps its options in the job for its UIs to show.
    assert "scoring_token" not in PipelineOptions(COMPLETE).view_as(CcasOptions).get_all_options()
    given = PipelineOptions([*COMPLETE, "--scoring_token=from-the-command-line"])  # Beam ignores an unknown flag
    assert validate_options(given).scoring_token == SCORING_TOKEN


def test_direct_runner_means_prism_streaming_with_a_stream_timeout_that_does_not_expire(no_ccas_environment: None) -> None:
    options, config = build_options([*COMPLETE, "--runner=DirectRunner", "--prism_location=/bin/true"])
    assert options.view_as(StandardOptions).runner == "PrismRunner"
    assert options.view_as(StandardOptions).streaming is True
    assert options.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert options.view_as(PortableOptions).job_server_timeout == STREAM_TIMEOUT_S >= 365 * 24 * 3600
    assert config.kafka_io == "python"
    explicit, _ = build_options([*COMPLETE, "--runner=PrismRunner", "--prism_location=/bin/true", "--job_server_timeout=60"])
    assert explicit.view_as(PortableOptions).job_server_timeout == 60


def test_the_prism_binary_comes_from_its_variable_when_the_flag_is_absent(no_ccas_environment: None,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCAS_PRISM_LOCATION", "/opt/prism")
    options, _ = build_options([*COMPLETE, "--runner=DirectRunner"])
    assert options.get_all_options()["prism_location"] == "/opt/prism"
    given, _ = build_options([*COMPLETE, "--runner=DirectRunner", "--prism_location=/bin/true"])
    assert given.get_all_options()["prism_location"] == "/bin/true"
