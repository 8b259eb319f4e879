"""`--runner=FlinkRunner` flags, and the one clear message (exit 2, nothing started) when Beam's job-server jar is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import FlinkRunnerOptions, PipelineOptions, PortableOptions

from ccas import settings
from ccas.stack import process
from pipeline import runners
from pipeline.options import ConfigError
from pipeline.settings import PipelineSettings

APP_FLAGS = ["--kafka_io=python", "--kafka_bootstrap=127.0.0.1:1", "--database_url=postgresql://u:p@127.0.0.1:1/ccas",
             "--s3_bucket=b", "--avaya_url=http://127.0.0.1:1", "--avaya_user=u", "--avaya_password=p",
             "--scoring_url=http://127.0.0.1:1"]



@pytest.fixture(autouse=True)
def no_ccas_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test passes: an integration test earlier in the session may have exported the local stack's values."""
    for name in [key for key in os.environ if key.startswith("CCAS_") and key != "CCAS_FLINK_JOB_SERVER_JAR"]:
        monkeypatch.delenv(name)

@pytest.fixture
def jar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / runners.jar_name()
    path.write_bytes(b"PK")
    monkeypatch.setenv(runners.JAR_ENV, str(path))
    return path


def _settings(**values: str) -> PipelineSettings:
    """The settings as the job resolves them: the environment (CCAS_FLINK_JOB_SERVER_JAR from the fixtures) plus values."""
    return PipelineSettings(**{"kafka_bootstrap": "k:1", "database_url": "postgresql://u:p@h/db", "s3_bucket": "b",
                               "avaya_url": "http://a", "avaya_user": "u", "scoring_url": "http://s",
                               "pii_hmac_key": "unit-pii-hmac-key-0123456789", **values})


LOCAL = {"flink_master": "localhost:8081", "worker_pool": "localhost:50000"}


@pytest.fixture
def no_jar_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No variable, an empty Beam cache, and a Maven that answers 404 (recorded, never called for real here)."""
    monkeypatch.delenv(runners.JAR_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    asked: list[str] = []
    monkeypatch.setattr(runners, "_downloadable", lambda url: asked.append(url) or "HTTP 404")
    return asked


def _all(argv: list[str]) -> PipelineOptions:
    return PipelineOptions([*argv, *runners.flink_runner_flags(argv, _settings(**LOCAL))])


def test_defaults_name_the_configured_cluster_the_worker_pool_checkpointing_and_the_jar_from_the_variable(jar: Path) -> None:
    flags = runners.flink_runner_flags(["--runner=FlinkRunner"], _settings(**LOCAL))
    assert flags == ["--flink_master=localhost:8081", "--flink_version=1.20", "--environment_type=EXTERNAL",
                     "--environment_config=localhost:50000", "--checkpointing_interval=30000",
                     "--checkpoint_timeout_millis=1200000", f"--flink_job_server_jar={jar}"]


def test_given_flags_are_kept(jar: Path) -> None:
    argv = ["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081", "--flink_version=1.20", "--parallelism=4",
            "--checkpointing_interval=10000", "--checkpoint_timeout_millis=60000", "--environment_type=EXTERNAL",
            "--environment_config=pool:50000"]
    assert runners.flink_runner_flags(argv, _settings()) == [f"--flink_job_server_jar={jar}"]
    options = _all(argv)
    assert options.view_as(FlinkRunnerOptions).parallelism == 4
    assert options.view_as(FlinkRunnerOptions).flink_master == "flink-jobmanager:8081"
    assert options.view_as(PortableOptions).environment_config == "pool:50000"


def test_loopback_is_for_a_local_cluster_only(jar: Path) -> None:
    local = runners.flink_runner_flags(["--runner=FlinkRunner", "--flink_master=localhost:8081", "--environment_type=LOOPBACK"],
                                       _settings())
    assert not any(flag.startswith("--environment") for flag in local)
    with pytest.raises(ConfigError, match="LOOPBACK"):
        runners.flink_runner_flags(["--runner=FlinkRunner", "--flink_master=flink-jobmanager:8081",
                                    "--environment_type=LOOPBACK"], _settings())


def test_other_flink_versions_and_other_runners(jar: Path) -> None:
    with pytest.raises(ConfigError, match="1.20"):
        runners.flink_runner_flags(["--runner=FlinkRunner", "--flink_version=1.19"], _settings(**LOCAL))
    assert runners.flink_runner_flags(["--runner=PrismRunner"], _settings()) == []


def test_a_cluster_without_master_or_worker_pool_is_a_clear_configuration_error(jar: Path) -> None:
    with pytest.raises(ConfigError, match="CCAS_FLINK_MASTER"):
        runners.flink_runner_flags(["--runner=FlinkRunner"], _settings(worker_pool="pool:1"))
    with pytest.raises(ConfigError, match="CCAS_WORKER_POOL"):
        runners.flink_runner_flags(["--runner=FlinkRunner"], _settings(flink_master="jm:8081"))


def test_beam_jar_cache_is_used_when_the_variable_is_unset(no_jar_anywhere: list[str], tmp_path: Path) -> None:
    cached = tmp_path / "home" / ".apache_beam" / "cache" / "jars" / runners.jar_name()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PK")
    assert runners.resolve_job_server_jar() == str(cached)
    assert no_jar_anywhere == [], "no download is attempted when the cache has the jar"


def test_missing_jar_names_artifact_variable_and_every_place_tried(no_jar_anywhere: list[str],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(runners.FlinkJobServerJarMissing) as raised:
        runners.resolve_job_server_jar("/nonexistent/job-server.jar")
    message = str(raised.value)
    assert "beam-runners-flink-1.20-job-server" in message and runners.JAR_ENV in message
    assert "/nonexistent/job-server.jar does not exist" in message and "HTTP 404" in message
    assert no_jar_anywhere[0] == runners.maven_url()


def _job_server_processes() -> list[int]:
    markers = (runners.JOB_SERVER_ARTIFACT, "FlinkJobServerDriver")
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit() and process.pid_alive(int(entry.name))
            and any(marker in process.cmdline(int(entry.name)) for marker in markers)]


def test_run_pipeline_without_a_jar_exits_2_with_one_message_and_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items() if key != runners.JAR_ENV}
    env["HOME"] = str(home)
    env["CCAS_SCORING_TOKEN"] = "unit-scoring-token-0123456789"  # environment only: complete settings but for the jar
    env["CCAS_PII_HMAC_KEY"] = "unit-pii-hmac-key-0123456789"  # environment only as well
    before = set(_job_server_processes())
    result = subprocess.run([sys.executable, str(settings.REPO_ROOT / "run_pipeline.py"), "--runner=FlinkRunner",
                             "--flink_master=localhost:8081", "--flink_version=1.20", "--worker_pool=pool:1", *APP_FLAGS],
                            capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "beam-runners-flink-1.20-job-server" in result.stderr and runners.JAR_ENV in result.stderr
    assert "Traceback" not in result.stderr
    assert set(_job_server_processes()) - before == set()
    assert not (home / ".apache_beam").exists(), "Beam never got as far as its jar cache"


def test_the_checkpoint_timeout_outlasts_the_outage_budget() -> None:
    assert runners.checkpoint_timeout_ms(900) == 1_200_000
    assert runners.checkpoint_timeout_ms(3600) == 3_900_000
    assert runners.checkpoint_timeout_ms(0) == 600_000  # never below Flink's default
