"""`--runner=PortableRunner` flags: job endpoint and SDK environment from the settings when not given, xlang experiments."""

from __future__ import annotations

import os

import pytest

from pipeline import main, xlang
from pipeline.settings import PipelineSettings

REQUIRED = {"kafka_bootstrap": "k:1", "database_url": "postgresql://u:p@h/db", "s3_bucket": "b", "avaya_url": "http://a",
            "avaya_user": "u", "scoring_url": "http://s", "pii_hmac_key": "unit-pii-hmac-key-0123456789"}



@pytest.fixture(autouse=True)
def no_ccas_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test passes: an integration test earlier in the session may have exported the local stack's values."""
    for name in [key for key in os.environ if key.startswith("CCAS_") and key != "CCAS_FLINK_JOB_SERVER_JAR"]:
        monkeypatch.delenv(name)

def _settings(**values: str) -> PipelineSettings:
    return PipelineSettings(**{**REQUIRED, "kafka_io": "python", **values})


def test_job_endpoint_and_worker_pool_come_from_the_settings() -> None:
    flags = main.portable_flags(["--runner=PortableRunner"], _settings(job_endpoint="jobs:8099", worker_pool="pool:50000"))
    assert flags == ["--job_endpoint=jobs:8099", "--environment_type=EXTERNAL", "--environment_config=pool:50000"]


def test_defaults_to_loopback_without_a_worker_pool() -> None:
    assert main.portable_flags(["--runner=PortableRunner", "--job_endpoint=jobs.example:8099"], _settings()) == \
        ["--environment_type=LOOPBACK"]


def test_no_job_endpoint_is_a_clear_configuration_error() -> None:
    with pytest.raises(main.ConfigError, match="--job_endpoint / CCAS_JOB_ENDPOINT"):
        main.portable_flags(["--runner=PortableRunner"], _settings())


def test_given_environment_is_kept_and_java_reader_gets_the_xlang_experiments() -> None:
    flags = main.portable_flags(["--runner=PortableRunner", "--job_endpoint=localhost:1", "--environment_type=LOOPBACK"],
                                _settings(kafka_io="java", worker_pool="pool:1"))
    assert flags == xlang.prism_xlang_options()
    assert "--runner=PrismRunner" not in main.runner_flags(["--runner=PortableRunner", "--job_endpoint=localhost:1"],
                                                           _settings()), "a PortableRunner job is never re-routed to Prism"
