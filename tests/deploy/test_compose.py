"""docker-compose.flink.yml is valid for a real Compose implementation and pins what the design promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ccas import kafka_acls, settings
from ccas.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.flink.yml"


# Every value the env file gives, each distinct, so a test can tell whose credential reached which service.
KAFKA_PASSWORDS = {principal: f"compose-test-kafka-{principal}" for principal in kafka_acls.COMPONENTS}
DB_PASSWORDS = {"ccas": "compose-test-db-owner", **{f"ccas_{c}": f"compose-test-db-{c}" for c in ("pipeline", "poller", "ops")}}
S3_KEYS = {"ccas": ("compose-test-s3-admin-key", "compose-test-s3-admin-secret"),
           "ccas-pipeline": ("compose-test-s3-pipeline-key", "compose-test-s3-pipeline-secret")}
ENV = {
    "CCAS_DB_PASSWORD": DB_PASSWORDS["ccas"],
    **{settings.database_password_variable(role[5:]): password for role, password in DB_PASSWORDS.items() if role != "ccas"},
    **{settings.kafka_password_variable(principal): password for principal, password in KAFKA_PASSWORDS.items()},
    "CCAS_S3_ACCESS_KEY": S3_KEYS["ccas"][0], "CCAS_S3_SECRET_KEY": S3_KEYS["ccas"][1],
    "CCAS_S3_ACCESS_KEY_PIPELINE": S3_KEYS["ccas-pipeline"][0], "CCAS_S3_SECRET_KEY_PIPELINE": S3_KEYS["ccas-pipeline"][1],
    "CCAS_S3_SSE_KEK_PASSPHRASE": "y",
    "CCAS_AVAYA_URL": "https://acr.example", "CCAS_AVAYA_USER": "u", "CCAS_AVAYA_PASSWORD": "p",
    "CCAS_SCORING_TOKEN": "compose-test-scoring-token",
    "CCAS_PII_HMAC_KEY": "compose-test-pii-hmac-key",
    "CCAS_OPS_TOKENS": "compose-test:operator:compose-test-ops-token",
    "CCAS_S3_IDENTITIES_FILE": str(REPO_ROOT / "ops" / "s3-identities.example.json"),
}


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "compose.env"
    path.write_text("".join(f"{key}={value}\n" for key, value in ENV.items()))
    return path


def _config(env_file, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    assert compose, "docker-compose is installed by scripts/setup.sh (Debian package) to validate the file"
    # The shell's variables would win over the env file's: only PATH is passed, so the env file alone decides.
    return subprocess.run([compose, "--env-file", str(env_file), "-f", str(COMPOSE), "config"], capture_output=True,
                          text=True, check=False, env=extra_env or {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def test_compose_file_is_valid(env_file) -> None:
    result = _config(env_file)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    services = rendered["services"]
    expected = {"pki", "kafka", "postgres", "s3", "flink-jobmanager", "flink-taskmanager", "beam-worker-pool", "beam-job-server",
                "poller", "scoring-service", "ops-api", "job-submitter", "prometheus"}
    assert expected <= set(services)
    assert services["flink-jobmanager"]["image"].startswith("flink:1.20")
    assert services["beam-job-server"]["image"] == "apache/beam_flink1.20_job_server:2.73.0"
    assert services["prometheus"]["image"].startswith("prom/prometheus:v")
    # The worker pool and the application services run our code: images built from ./Dockerfile.
    for name in ("pki", "init", "beam-worker-pool", "poller", "scoring-service", "ops-api", "lag-exporter", "job-submitter"):
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
    # Roles before the migrations that grant them; principals (as the certificate) before the topics (as SCRAM `admin`).
    assert steps == ["ccas db roles", "ccas db migrate", "ccas kafka principals", "ccas kafka bootstrap",
                     "ccas s3 bootstrap"], init["entrypoint"]
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


# The security shape (docs/security.md): what the old plaintext file did not have, each assertion able to fail on it.

CA = "/pki/ca/ca.crt"
KAFKA_CLIENTS = {"init": "admin", "poller": "poller", "job-submitter": "pipeline", "ops-api": "ops",
                 "lag-exporter": "lag-exporter"}
DATABASE_CLIENTS = {"init": "ccas", "poller": "ccas_poller", "job-submitter": "ccas_pipeline", "ops-api": "ccas_ops"}


def _services(env_file) -> dict:
    result = _config(env_file)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def _mounts(service: dict) -> dict[str, tuple[str, str]]:
    """Mount target -> (source, mode) of a rendered service (`docker-compose config` writes source:target:mode)."""
    mounts = {}
    for entry in service.get("volumes") or []:
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def _mounted(service: dict, path: str) -> tuple[str, str] | None:
    """(source, mode) of the mount holding `path` in the service, None when no mount does."""
    holding = [target for target in _mounts(service) if path == target or path.startswith(target.rstrip("/") + "/")]
    return _mounts(service)[max(holding, key=len)] if holding else None


def _kafka_properties(environment: dict[str, str]) -> dict[str, str]:
    """server.properties as the apache/kafka image writes it from KAFKA_* variables: KAFKA_ dropped, lower case, `___` a dash,
    `__` an underscore, `_` a dot."""
    return {key.removeprefix("KAFKA_").lower().replace("_", ".").replace("...", "-").replace("..", "_"): value
            for key, value in environment.items() if key.startswith("KAFKA_")}


def _holding_value(services: dict, value: str) -> set[str]:
    return {name for name, service in services.items() if value in json.dumps(service.get("environment") or {})}


def test_every_secret_the_file_asks_for_is_a_line_of_env_example() -> None:
    required = set(re.findall(r"\$\{(CCAS_\w+):\?", COMPOSE.read_text()))
    live = {line.split("=", 1)[0] for line in (REPO_ROOT / ".env.example").read_text().splitlines()
            if line and not line.startswith("#")}
    assert required and required - live == set(), "a .env copied from .env.example must name every required variable"


def test_kafka_has_no_listener_without_tls(env_file) -> None:
    kafka = _services(env_file)["kafka"]
    props = _kafka_properties(kafka["environment"])
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    listeners = {item.split("://")[0] for item in props["listeners"].split(",")}
    assert listeners == set(protocols), "every listener has a protocol of the map"
    assert set(protocols.values()) <= {"SSL", "SASL_SSL"}, f"a listener without TLS: {protocols}"
    advertised = dict(item.split("://") for item in props["advertised.listeners"].split(","))
    client = next(name for name, address in advertised.items() if address == "kafka:9092")
    assert protocols[client] == "SASL_SSL" and props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props[f"listener.name.{client.lower()}.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required" in props[f"listener.name.{client.lower()}.scram-sha-512.sasl.jaas.config"]
    for name, protocol in protocols.items():
        if protocol == "SSL":  # no password on these: the certificate is the identity, so one is required
            assert props[f"listener.name.{name.lower()}.ssl.client.auth"] == "required", name
    # An `SSL://` entry would make the image's start script demand password-protected keystore files of its own.
    assert "SSL://" not in props["advertised.listeners"]
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert set(props["super.users"].split(";")) == {"User:CN=ccas-kafka", "User:CN=ccas-kafka-admin", "User:admin"}
    assert (props["ssl.keystore.type"], props["ssl.truststore.type"]) == ("PEM", "PEM")
    assert _mounted(kafka, props["ssl.keystore.location"]) == ("pki-kafka", "ro")
    assert _mounted(kafka, props["ssl.truststore.location"]) == ("pki-ca", "ro")
    assert not kafka.get("ports"), "the broker is reached on the deployment's network only"
    assert _mounted(kafka, props["log.dirs"]) == ("kafka-data", "rw"), "the partitions live on the volume"


def test_every_kafka_client_is_its_own_principal_over_tls(env_file) -> None:
    services = _services(env_file)
    assert _holders(services, "CCAS_KAFKA_BOOTSTRAP") == set(KAFKA_CLIENTS)
    for name, principal in KAFKA_CLIENTS.items():
        env = services[name]["environment"]
        assert env["CCAS_KAFKA_BOOTSTRAP"] == "kafka:9092", name
        assert (env["CCAS_KAFKA_SECURITY_PROTOCOL"], env["CCAS_KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512"), name
        assert (env["CCAS_KAFKA_USERNAME"], env["CCAS_KAFKA_PASSWORD"]) == (principal, KAFKA_PASSWORDS[principal]), name
        assert env["CCAS_KAFKA_CA_FILE"] == CA and _mounted(services[name], CA) == ("pki-ca", "ro"), name
    assert not any("--kafka-bootstrap" in arg for arg in services["lag-exporter"]["command"])


def test_a_missing_kafka_password_is_refused_for_every_component(env_file, tmp_path) -> None:
    raw = yaml.safe_load(COMPOSE.read_text())["services"]  # before interpolation: what each service asks of the env file
    for name, principal in KAFKA_CLIENTS.items():
        variable = settings.kafka_password_variable(principal)
        assert raw[name]["environment"]["CCAS_KAFKA_PASSWORD"] == f"${{{variable}:?set {variable} in .env}}", name
    for principal in KAFKA_PASSWORDS:
        variable = settings.kafka_password_variable(principal)
        result = _config_without(env_file, tmp_path, variable)
        assert result.returncode != 0 and f"set {variable} in .env" in result.stderr, variable


def test_each_component_logs_in_to_postgres_as_its_own_role_over_verified_tls(env_file) -> None:
    from urllib.parse import parse_qs, urlsplit

    from ccas import db_roles

    services = _services(env_file)
    assert _holders(services, "CCAS_DATABASE_URL") == set(DATABASE_CLIENTS)
    assert set(DATABASE_CLIENTS.values()) - {"ccas"} <= set(db_roles.ROLES)
    for name, role in DATABASE_CLIENTS.items():
        url = urlsplit(services[name]["environment"]["CCAS_DATABASE_URL"])
        assert (url.username, url.password, url.hostname) == (role, DB_PASSWORDS[role], "postgres"), name
        query = parse_qs(url.query)
        assert query["sslmode"] == ["verify-full"] and query["sslrootcert"] == [CA], name
        assert _mounted(services[name], CA) == ("pki-ca", "ro"), name


def test_postgres_takes_tls_connections_with_a_password_only(env_file) -> None:
    postgres = _services(env_file)["postgres"]
    command = postgres["command"]
    options = dict(command[i + 1].split("=", 1) for i, arg in enumerate(command) if arg == "-c")
    assert options["ssl"] == "on"
    assert _mounted(postgres, options["ssl_cert_file"]) == _mounted(postgres, options["ssl_key_file"]) == ("pki-postgres", "ro")
    hba_source, _ = _mounted(postgres, options["hba_file"])
    rules = [line.split() for line in (REPO_ROOT / "ops" / "postgres" / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert hba_source == str(REPO_ROOT / "ops" / "postgres" / "pg_hba.conf")
    assert {rule[0] for rule in rules} == {"local", "hostssl", "hostnossl"}, "no `host` rule: it would take plaintext"
    assert {rule[-1] for rule in rules if rule[0] == "hostssl"} == {"scram-sha-256"}
    assert {rule[-1] for rule in rules if rule[0] == "hostnossl"} == {"reject"}
    assert "POSTGRES_HOST_AUTH_METHOD" not in postgres["environment"]


def test_s3_speaks_https_only_and_each_component_has_its_own_identity(env_file) -> None:
    from ccas.stack.seaweedfs import component_actions

    services = _services(env_file)
    s3 = services["s3"]
    flags = dict(arg.split("=", 1) for arg in s3["command"] if arg.startswith("-") and "=" in arg)
    assert _mounted(s3, flags["-s3.cert.file"]) == _mounted(s3, flags["-s3.key.file"]) == ("pki-s3", "ro")
    assert "-s3.port.https" not in flags, "with a certificate and no https port, the S3 port itself speaks TLS only"
    assert flags["-s3.iam"] == "false"
    assert _holders(services, "CCAS_S3_ENDPOINT") == {"init", "job-submitter"}
    for name in ("init", "job-submitter"):
        env = services[name]["environment"]
        assert env["CCAS_S3_ENDPOINT"] == "https://s3:8333" and env["CCAS_S3_CA_FILE"] == CA, name
        assert _mounted(services[name], CA) == ("pki-ca", "ro"), name
    keys = {name: (services[name]["environment"]["CCAS_S3_ACCESS_KEY"], services[name]["environment"]["CCAS_S3_SECRET_KEY"])
            for name in ("init", "job-submitter")}
    assert keys == {"init": S3_KEYS["ccas"], "job-submitter": S3_KEYS["ccas-pipeline"]}
    identities = {item["name"]: item for item in json.loads(Path(ENV["CCAS_S3_IDENTITIES_FILE"]).read_text())["identities"]}
    bucket = services["job-submitter"]["environment"]["CCAS_S3_BUCKET"]
    assert {name: item["actions"] for name, item in identities.items() if name != "ccas"} == {
        f"ccas-{component}": actions for component, actions in component_actions(bucket).items()}
    assert [name for name, item in identities.items() if "Admin" in item["actions"]] == ["ccas"]
    assert all(value.startswith("REPLACE") for item in identities.values() for pair in item["credentials"]
               for value in pair.values()), "the example holds no key"


def test_the_scoring_service_is_called_and_scraped_over_https(env_file) -> None:
    services = _services(env_file)
    scoring = services["scoring-service"]["environment"]
    for variable in ("CCAS_SCORING_TLS_CERT_FILE", "CCAS_SCORING_TLS_KEY_FILE"):
        assert _mounted(services["scoring-service"], scoring[variable]) == ("pki-scoring-service", "ro"), variable
    submitter = services["job-submitter"]["environment"]
    assert submitter["CCAS_SCORING_URL"] == "https://scoring-service:8000"
    assert submitter["CCAS_SCORING_CA_FILE"] == CA and _mounted(services["job-submitter"], CA) == ("pki-ca", "ro")
    assert "https://localhost:8000/healthz" in " ".join(services["scoring-service"]["healthcheck"]["test"])
    scrape = yaml.safe_load((REPO_ROOT / "ops" / "prometheus" / "prometheus.compose.yml").read_text())["scrape_configs"]
    job = next(job for job in scrape if job["job_name"] == "ccas-scoring-service")
    assert job["scheme"] == "https" and _mounted(services["prometheus"], job["tls_config"]["ca_file"]) == ("pki-ca", "ro")


def test_the_ops_api_serves_https_with_named_tokens(env_file) -> None:
    ops = _services(env_file)["ops-api"]
    for variable in ("CCAS_OPS_API_TLS_CERT_FILE", "CCAS_OPS_API_TLS_KEY_FILE"):
        assert _mounted(ops, ops["environment"][variable]) == ("pki-ops-api", "ro"), variable
    assert ops["environment"]["CCAS_OPS_TOKENS"] == ENV["CCAS_OPS_TOKENS"]
    assert all(port.startswith("127.0.0.1:") for port in ops["ports"]), "published on the host's loopback only"


def test_administrator_credentials_reach_init_only(env_file) -> None:
    services = _services(env_file)
    for variable in ("CCAS_KAFKA_ADMIN_CERT_FILE", "CCAS_KAFKA_ADMIN_KEY_FILE",
                     *(settings.kafka_password_variable(principal) for principal in KAFKA_PASSWORDS),
                     *(settings.database_password_variable(component) for component in ("pipeline", "poller", "ops"))):
        assert _holders(services, variable) == {"init"}, variable
    assert _holding_value(services, KAFKA_PASSWORDS["admin"]) == {"init"}
    assert _holding_value(services, S3_KEYS["ccas"][0]) == _holding_value(services, S3_KEYS["ccas"][1]) == {"init"}
    # The schema owner's password: init logs in with it, the server is created with it.
    assert _holding_value(services, DB_PASSWORDS["ccas"]) == {"init", "postgres"}
    assert {name for name, service in services.items() if _mounted(service, "/pki/kafka-admin/tls.key")} == {"pki", "init"}


def test_each_private_key_is_mounted_by_its_own_server_only(env_file) -> None:
    services = _services(env_file)
    users: dict[str, set[str]] = {}
    for name, service in services.items():
        for source, mode in _mounts(service).values():
            if source.startswith("pki-"):
                users.setdefault(source, set()).add(name)
                assert name == "pki" or mode == "ro", f"{name} may write {source}"
    pki = services["pki"]["command"]
    names = [arg for arg in pki[2:] if not arg.startswith("--")]
    assert users.pop("pki-ca-key") == {"pki"}, "the CA's key never leaves pki"
    assert "pki" in users.pop("pki-ca")
    assert users == {f"pki-{name}": {"pki", "init" if name == "kafka-admin" else name} for name in names}
    owners = dict(arg.removeprefix("--owner=").split("=") for arg in pki if arg.startswith("--owner="))
    # Kafka (appuser) and SeaweedFS (seaweed) run as 1000, PostgreSQL as 999, our images as 10001 (Dockerfile).
    assert owners == {"kafka": "1000", "s3": "1000", "postgres": "999", "kafka-admin": "10001", "scoring-service": "10001",
                      "ops-api": "10001"}
    assert "useradd --system --uid 10001" in (REPO_ROOT / "Dockerfile").read_text()
    # The job's certificate paths are the submitter's: they must resolve where the job runs too.
    for name in ("beam-worker-pool", "flink-taskmanager"):
        assert _mounted(services[name], CA) == ("pki-ca", "ro"), name


def test_pki_makes_every_file_the_services_name(env_file, tmp_path) -> None:
    from ccas import tls_admin

    services = _services(env_file)
    argv = [arg.replace("--dir=/pki", f"--dir={tmp_path}") for arg in services["pki"]["command"][1:]]
    if os.geteuid() != 0:
        argv = [arg for arg in argv if not arg.startswith("--owner=")]
    assert tls_admin.main(argv) == 0
    named = set(re.findall(r"/pki/[\w./-]+", json.dumps({name: {key: service.get(key) for key in ("environment", "command")}
                                                         for name, service in services.items() if name != "pki"})))
    named |= set(re.findall(r"/pki/[\w./-]+", (REPO_ROOT / "ops" / "kafka" / "broker-client.properties").read_text()))
    named |= set(re.findall(r"/pki/[\w./-]+", (REPO_ROOT / "ops" / "prometheus" / "prometheus.compose.yml").read_text()))
    assert {"/pki/kafka/keystore.pem", "/pki/postgres/tls.key", "/pki/s3/tls.key", "/pki/kafka-admin/tls.key"} <= named
    missing = sorted(path for path in named if not (tmp_path / path.removeprefix("/pki/")).is_file())
    assert missing == [], f"named in the compose file, not made by pki: {missing}"
