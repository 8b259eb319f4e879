"""docker-compose.flink.yml is valid for a real Compose implementation and pins what the design promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from ccas.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.flink.yml"


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "compose.env"
    path.write_text("CCAS_DB_PASSWORD=x\nCCAS_S3_SSE_KEK_PASSPHRASE=y\nCCAS_S3_ACCESS_KEY=a\nCCAS_S3_SECRET_KEY=s\n"
                    "CCAS_AVAYA_URL=https://acr.example\nCCAS_AVAYA_USER=u\nCCAS_AVAYA_PASSWORD=p\n"
                    "CCAS_SCORING_TOKEN=compose-test-scoring-token\n"
                    "CCAS_PII_HMAC_KEY=compose-test-pii-hmac-key\n"
                    f"CCAS_S3_IDENTITIES_FILE={REPO_ROOT / 'ops' / 's3-identities.example.json'}\n")
    return path


def _config(env_file, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is installed by scripts/setup.sh (Debian package) to validate the file"
    return subprocess.run([compose, "--env-file", str(env_file), "-f", str(COMPOSE), "config"], capture_output=True,
                          text=True, check=False, env=extra_env)


def test_compose_file_is_valid(env_file) -> None:
    result = _config(env_file)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    services = rendered["services"]
    expected = {"kafka", "postgres", "s3", "flink-jobmanager", "flink-taskmanager", "beam-worker-pool", "beam-job-server",
                "poller", "scoring-service", "job-submitter", "prometheus"}
    assert expected <= set(services)
    assert services["flink-jobmanager"]["image"].startswith("flink:1.20")
    assert services["beam-job-server"]["image"] == "apache/beam_flink1.20_job_server:2.73.0"
    assert services["prometheus"]["image"].startswith("prom/prometheus:v")
    # The worker pool and the application services run our code: images built from ./Dockerfile.
    for name in ("beam-worker-pool", "poller", "scoring-service", "job-submitter"):
        assert services[name]["build"]["context"] == str(REPO_ROOT), name
    pool = services["beam-worker-pool"]
    assert pool["build"]["target"] == "worker" and pool["command"] == ["--worker_pool"]
    submit = services["job-submitter"]["command"]
    assert "--runner=PortableRunner" in submit and "--job_endpoint=beam-job-server:8099" in submit
    assert "--environment_type=EXTERNAL" in submit
    for name, service in services.items():
        assert ":" in service["image"] and not service["image"].endswith(":latest"), f"{name} image must be pinned"


def test_init_migrates_and_bootstraps_from_the_installed_package(env_file) -> None:
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    init = services["init"]
    assert init["build"]["target"] == "app"
    steps = [step.strip() for step in init["entrypoint"][-1].split("&&")]
    assert steps == ["ccas db migrate", "ccas kafka bootstrap", "ccas s3 bootstrap"], init["entrypoint"]
    # One broker in this file: replication 1 and min ISR 1, said explicitly (the settings' defaults are production's 3 and 2).
    assert init["environment"]["CCAS_KAFKA_REPLICATION_FACTOR"] == "1"
    assert init["environment"]["CCAS_KAFKA_MIN_INSYNC_REPLICAS"] == "1"
    assert init["environment"]["CCAS_DATABASE_URL"].startswith("postgresql://")
    for name in ("poller", "scoring-service", "job-submitter", "init"):
        assert "run_pipeline.py" not in json.dumps(services[name]), f"{name} runs a file of the clone, not the package"
    submit = services["job-submitter"]
    assert submit["entrypoint"] == ["ccas-pipeline"]
    assert "--metrics_host=0.0.0.0" in submit["command"]


def test_images_install_the_wheel_and_never_the_source_tree() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    by_name = {stage.split()[2]: stage for stage in stages}
    assert set(by_name) == {"wheel", "app", "worker"}
    assert "pip wheel --no-deps" in by_name["wheel"]
    for name in ("app", "worker"):
        stage = by_name[name]
        assert "COPY --from=wheel" in stage and "pip install --no-deps /tmp/wheels/ccas-" in stage, name
        assert not re.search(r"^COPY \. ", stage, re.M), f"the {name} image must not hold the source tree"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_build_context() -> None:
    entries = {line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".stack", ".env", ".venv", ".git", "ops/s3-identities.json", "**/secrets.env", "build", "dist"} <= entries
    assert "!.env.example" in entries and ".env.*" in entries


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package `prometheus`)")
def test_compose_scrape_config_passes_promtool(tmp_path) -> None:
    folder = REPO_ROOT / "ops" / "prometheus"
    shutil.copy(folder / "alerts.yml", tmp_path / "alerts.yml")
    config = (folder / "prometheus.compose.yml").read_text().replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_the_readme_names_is_present(env_file) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    listing = re.search(r"^`docker-compose\.flink\.yml` services: (.*?)\.$", readme, re.M | re.S)
    assert listing, "README lists the deployment's services"
    named = set(re.findall(r"`([a-z0-9-]+)`", listing.group(1)))
    assert len(named) >= 10, named
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    assert named <= set(services), f"named in README but missing: {sorted(named - set(services))}"


def test_dockerfile_builds_the_worker_from_beams_sdk_image() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert "FROM apache/beam_python3.11_sdk:2.73.0 AS worker" in text
    assert re.search(r"^FROM python:3\.11[.\d]*-slim\S* AS app$", text, re.M)


def test_missing_secret_is_refused(tmp_path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _config(empty, extra_env={"PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "CCAS_DB_PASSWORD" in result.stderr


def _holders(services: dict, variable: str) -> set[str]:
    return {name for name, service in services.items() if variable in (service.get("environment") or {})}


def _config_without(env_file, tmp_path, variable: str) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with `variable` left out of the env file."""
    without = tmp_path / f"without-{variable}.env"
    without.write_text("".join(line + "\n" for line in env_file.read_text().splitlines()
                               if not line.startswith(f"{variable}=")))
    return _config(without, extra_env={"PATH": "/usr/bin:/bin"})


def test_the_scoring_token_reaches_the_service_and_the_submitter_only(env_file, tmp_path) -> None:
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    for name in ("scoring-service", "job-submitter"):
        assert services[name]["environment"]["CCAS_SCORING_TOKEN"] == "compose-test-scoring-token", name
    # The worker pool gets the job's settings from the submitter; nothing else calls the scoring API.
    assert _holders(services, "CCAS_SCORING_TOKEN") == {"scoring-service", "job-submitter"}
    result = _config_without(env_file, tmp_path, "CCAS_SCORING_TOKEN")
    assert result.returncode != 0 and "set CCAS_SCORING_TOKEN" in result.stderr


def test_the_pii_hmac_key_reaches_the_job_submitter_only(env_file, tmp_path) -> None:
    services = yaml.safe_load(_config(env_file).stdout)["services"]
    submitter = services["job-submitter"]["environment"]
    assert submitter["CCAS_PII_HMAC_KEY"] == "compose-test-pii-hmac-key"
    assert submitter["CCAS_PII_STORE_ENCRYPTED_NUMBER"] == "false", "no encrypted copy of the number unless asked"
    # The workers get it inside the job; no other service handles customer numbers past calls.raw.
    assert _holders(services, "CCAS_PII_HMAC_KEY") == {"job-submitter"}
    result = _config_without(env_file, tmp_path, "CCAS_PII_HMAC_KEY")
    assert result.returncode != 0 and "set CCAS_PII_HMAC_KEY" in result.stderr


def test_broken_file_is_rejected_by_the_validator(tmp_path, env_file) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE.read_text().replace("    image: postgres:15.10", "    image: [postgres"))
    compose = shutil.which("docker-compose")
    result = subprocess.run([compose, "--env-file", str(env_file), "-f", str(broken), "config"], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
