"""docker-compose.flink.yml is valid for a real Compose implementation and pins what the design promises."""

from __future__ import annotations

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


def test_broken_file_is_rejected_by_the_validator(tmp_path, env_file) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE.read_text().replace("    image: postgres:15.10", "    image: [postgres"))
    compose = shutil.which("docker-compose")
    result = subprocess.run([compose, "--env-file", str(env_file), "-f", str(broken), "config"], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
