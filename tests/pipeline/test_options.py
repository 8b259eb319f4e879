"""Pipeline options: bad configuration fails before submission, with every problem named; runner flags are what Prism needs."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, PortableOptions, StandardOptions

from pipeline.main import STREAM_TIMEOUT_S, build_options
from pipeline.options import ConfigError, validate_options

COMPLETE = ["--kafka_bootstrap=127.0.0.1:1", "--database_url=postgresql://u:p@127.0.0.1:1/db", "--s3_bucket=b",
            "--s3_endpoint=http://127.0.0.1:2", "--avaya_url=http://127.0.0.1:3", "--avaya_user=u", "--avaya_password=p",
            "--scoring_url=http://127.0.0.1:4", "--kafka_io=python", "--metrics_port=0"]


def test_every_problem_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # A stack folder without generated secrets: addresses have local defaults, secrets never do.
    monkeypatch.setenv("CCAS_STACK_DIR", "/nonexistent-stack")
    for name in ("CCAS_DATABASE_URL", "CCAS_AVAYA_PASSWORD", "CCAS_AVAYA_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError) as caught:
        validate_options(PipelineOptions(["--kafka_io=java", "--avaya_url=ftp://x", "--download_concurrency=0",
                                          "--input_topic=calls.rwa"]))
    message = str(caught.value)
    for expected in ("--database_url / CCAS_DATABASE_URL is not set", "--avaya_password / CCAS_AVAYA_PASSWORD is not set",
                     "--avaya_url must be an http(s) URL", "--download_concurrency must be >= 1",
                     "--input_topic 'calls.rwa' is not a declared topic"):
        assert expected in message


def test_secrets_never_reach_the_repr() -> None:
    config = validate_options(PipelineOptions([*COMPLETE, "--s3_secret_key=TOPSECRET"]))
    assert "TOPSECRET" not in repr(config) and "p@" not in repr(config)


def test_direct_runner_means_prism_streaming_with_a_stream_timeout_that_does_not_expire() -> None:
    options, config = build_options([*COMPLETE, "--runner=DirectRunner", "--prism_location=/bin/true"])
    assert options.view_as(StandardOptions).runner == "PrismRunner"
    assert options.view_as(StandardOptions).streaming is True
    assert options.view_as(PortableOptions).environment_type == "LOOPBACK"
    assert options.view_as(PortableOptions).job_server_timeout == STREAM_TIMEOUT_S >= 365 * 24 * 3600
    assert config.kafka_io == "python"
    explicit, _ = build_options([*COMPLETE, "--runner=PrismRunner", "--prism_location=/bin/true", "--job_server_timeout=60"])
    assert explicit.view_as(PortableOptions).job_server_timeout == 60
