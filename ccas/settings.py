"""Where this clone's local dev stack lives and the `CCAS_*` values that reach it.

Every component reads its settings from `CCAS_*` variables and flags only (core/config.py). For local work those values are
derived here from the stack folder, the port base and the generated secrets file, and handed over explicitly: `ccas env`
prints them, `ccas --local …` and `run_pipeline.py --local` fill the unset ones, and the demo and tests pass them to the
processes they start. No runtime package imports this module.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
S3_BUCKET_DEV = "ccas-audio-dev"
PIPELINE_METRICS_OFFSET = 80  # base+80 … base+95: the pipeline workers' metrics ports


def cache_dir() -> Path:
    """Downloads and builds shared by every clone on this machine."""
    return Path(os.environ.get("CCAS_CACHE") or Path.home() / ".cache" / "ccas")


def whisper_model_dir() -> Path:
    """Whisper base (CTranslate2), assembled and checked by scripts/models.sh."""
    return cache_dir() / "models" / "whisper-base-ct2"


def voice_encoder_weights() -> Path:
    """Resemblyzer's pretrained.pt, extracted and checked by scripts/models.sh."""
    return cache_dir() / "models" / "resemblyzer" / "pretrained.pt"


def stack_dir() -> Path:
    """Service data and pids of this clone's stack (git-ignored)."""
    return Path(os.environ.get("CCAS_STACK_DIR") or REPO_ROOT / ".stack").resolve()


def port_base() -> int:
    """Every port of the stack is this base plus a fixed offset, so two stacks can run side by side."""
    return int(os.environ.get("CCAS_PORT_BASE", "19000"))


@dataclass(frozen=True)
class Ports:
    kafka: int
    kafka_controller: int
    postgres: int
    s3: int
    weed_master: int
    weed_volume: int
    weed_filer: int
    weed_master_grpc: int
    weed_volume_grpc: int
    weed_filer_grpc: int
    weed_s3_grpc: int
    weed_webdav: int
    weed_admin: int
    weed_admin_grpc: int
    avaya_mock: int
    scoring_service: int
    poller_metrics: int
    pipeline_metrics: int
    expansion_service: int
    job_server: int
    job_server_ui: int
    worker_pool: int
    prometheus: int
    ops_api: int
    lag_exporter: int
    kafka_internal: int  # appended last: every earlier port keeps its offset
    console: int  # the QA console (`ccas console`), after kafka_internal for the same reason

    @classmethod
    def from_base(cls, base: int) -> Ports:
        names = list(cls.__dataclass_fields__)
        ports = {name: base + 10 + index for index, name in enumerate(names)}
        # Each SDK worker process of the job takes the next free port from here (pipeline/metrics.py): a block of its own,
        # above every other port of the stack, so a second worker can never take a stopped service's port.
        ports["pipeline_metrics"] = base + PIPELINE_METRICS_OFFSET
        return cls(**ports)


def ports() -> Ports:
    return Ports.from_base(port_base())


# One Kafka principal (SCRAM user) per component; ccas/kafka_acls.py says what each may do.
KAFKA_COMPONENTS = ("poller", "pipeline", "ops", "lag-exporter", "admin")


def kafka_password_variable(component: str) -> str:
    return f"CCAS_KAFKA_PASSWORD_{component.upper().replace('-', '_')}"


DATABASE_COMPONENTS = ("pipeline", "poller", "ops", "console")  # each logs in as ccas_<component> (ccas/db_roles.py)
# S3 identities besides the stack's admin one (bucket set-up only); what each may do: ccas/stack/seaweedfs.py.
S3_COMPONENTS = ("pipeline", "console")


def s3_identity_env(component: str, secret: dict[str, str] | None = None) -> dict[str, str]:
    """CCAS_S3_ACCESS_KEY and CCAS_S3_SECRET_KEY of one component's S3 identity on the local stack."""
    if component not in S3_COMPONENTS:
        raise ValueError(f"no S3 identity for {component!r} (one of {', '.join(S3_COMPONENTS)})")
    values = secret or load_secrets()
    return {"CCAS_S3_ACCESS_KEY": values[f"CCAS_S3_ACCESS_KEY_{component.upper()}"],
            "CCAS_S3_SECRET_KEY": values[f"CCAS_S3_SECRET_KEY_{component.upper()}"]}


def component_env(component: str, database_url: str) -> dict[str, str]:
    """One component's own Kafka principal, database role (on `database_url`'s database) and S3 identity on the local
    stack, as far as it has each: least privilege, as deployed (docs/security.md)."""
    env = {**kafka_principal_env(component)} if component in KAFKA_COMPONENTS else {}
    if component in DATABASE_COMPONENTS:
        env["CCAS_DATABASE_URL"] = database_role_url(database_url, component)
    return {**env, **(s3_identity_env(component) if component in S3_COMPONENTS else {})}


def database_password_variable(component: str) -> str:
    return f"CCAS_DB_PASSWORD_{component.upper()}"


def database_role_url(url: str, component: str, secret: dict[str, str] | None = None) -> str:
    """`url` (the schema owner's, as `ccas env` gives it) with the user and password of one component's role."""
    from urllib.parse import quote, urlsplit, urlunsplit

    if component not in DATABASE_COMPONENTS:
        raise ValueError(f"no database role for {component!r} (one of {', '.join(DATABASE_COMPONENTS)})")
    password = (secret or load_secrets())[database_password_variable(component)]
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"ccas_{component}:{quote(password, safe='')}@{host}"))


def secrets_file() -> Path:
    return stack_dir() / "secrets.env"


def _generate_secrets() -> dict[str, str]:
    return {
        "CCAS_S3_ACCESS_KEY": "ccas" + secrets.token_hex(8),
        "CCAS_S3_SECRET_KEY": secrets.token_urlsafe(30),
        "CCAS_S3_SSE_KEK_PASSPHRASE": secrets.token_urlsafe(32),
        "CCAS_DB_PASSWORD": secrets.token_urlsafe(24),
        "CCAS_AVAYA_PASSWORD": secrets.token_urlsafe(18),
        "CCAS_OPS_TOKEN": secrets.token_urlsafe(32),
        "CCAS_SCORING_TOKEN": secrets.token_urlsafe(32),
        "CCAS_PII_HMAC_KEY": secrets.token_urlsafe(32),
        "CCAS_OPS_ADMIN_TOKEN": secrets.token_urlsafe(32),
        "CCAS_CONSOLE_SESSION_KEY": secrets.token_urlsafe(48),
        **{kafka_password_variable(component): secrets.token_urlsafe(24) for component in KAFKA_COMPONENTS},
        **{database_password_variable(component): secrets.token_urlsafe(24) for component in DATABASE_COMPONENTS},
        **{key: value for component in S3_COMPONENTS for key, value in (
            (f"CCAS_S3_ACCESS_KEY_{component.upper()}", f"ccas{component}" + secrets.token_hex(6)),
            (f"CCAS_S3_SECRET_KEY_{component.upper()}", secrets.token_urlsafe(30)))},
    }


def read_secrets_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a secrets file (comments skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return values


def load_secrets(create: bool = False) -> dict[str, str]:
    """The local stack's generated secrets; created once (mode 0600) by `ccas stack up`, never hard-coded."""
    path = secrets_file()
    if not path.exists():
        if not create:
            return {}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Generated by `ccas stack up` for the local dev stack. Do not commit.\n")
            for key, value in _generate_secrets().items():
                handle.write(f"{key}={value}\n")
    values = read_secrets_file(path)
    missing = set(_generate_secrets()) - set(values)
    if missing and create:
        # A secrets file from an older checkout: add what is new, keep what exists (data depends on it).
        fresh = _generate_secrets()
        with path.open("a") as handle:
            for key in sorted(missing):
                handle.write(f"{key}={fresh[key]}\n")
                values[key] = fresh[key]
    return values


def local_stack_env() -> dict[str, str]:
    """The `CCAS_*` variables that point every component at this clone's local stack."""
    from ccas.stack.tools import cached_binary  # the stack's tools module needs this one: imported late

    p = ports()
    secret = load_secrets()
    ca = str(stack_dir() / "tls" / "ca.crt")  # ccas.stack.tls makes it; every server of the stack has a certificate of it
    env = {
        "CCAS_KAFKA_BOOTSTRAP": f"127.0.0.1:{p.kafka}",
        # One broker: topics cannot have more replicas than that.
        "CCAS_KAFKA_REPLICATION_FACTOR": "1",
        "CCAS_KAFKA_MIN_INSYNC_REPLICAS": "1",
        # Every server of the stack speaks TLS with a certificate of the stack's own CA (ccas/stack/tls.py).
        "CCAS_S3_ENDPOINT": f"https://127.0.0.1:{p.s3}",
        "CCAS_S3_CA_FILE": ca,
        "CCAS_S3_BUCKET": S3_BUCKET_DEV,
        "CCAS_AVAYA_URL": f"http://127.0.0.1:{p.avaya_mock}",
        "CCAS_AVAYA_USER": "ccas",
        "CCAS_AVAYA_MOCK_PORT": str(p.avaya_mock),
        # The demo's scoring service serves HTTPS with the stack's certificate (ccas.stack.tls.scoring_service_env).
        "CCAS_SCORING_URL": f"https://127.0.0.1:{p.scoring_service}",
        "CCAS_SCORING_CA_FILE": ca,
        "CCAS_SCORING_PORT": str(p.scoring_service),
        "CCAS_POLLER_METRICS_PORT": str(p.poller_metrics),
        "CCAS_PIPELINE_METRICS_PORT": str(p.pipeline_metrics),
        "CCAS_OPS_API_PORT": str(p.ops_api),
        "CCAS_LAG_EXPORTER_PORT": str(p.lag_exporter),
        "CCAS_CONSOLE_PORT": str(p.console),
        "CCAS_PROMETHEUS_URL": f"http://127.0.0.1:{p.prometheus}",
        "CCAS_PRISM_UI_URL": f"http://127.0.0.1:{p.job_server_ui}",
        "CCAS_EXPANSION_SERVICE": f"127.0.0.1:{p.expansion_service}",
        "CCAS_JOB_ENDPOINT": f"localhost:{p.job_server}",
        "CCAS_PRISM_LOCATION": str(cached_binary("prism")),
    }
    if secret:
        # TLS only, and the server's certificate checked against the stack's CA and the host name (ccas/stack/tls.py).
        env["CCAS_DATABASE_URL"] = (f"postgresql://ccas:{secret['CCAS_DB_PASSWORD']}@127.0.0.1:{p.postgres}/ccas"
                                    f"?sslmode=verify-full&sslrootcert={ca}")
        for key in ("CCAS_S3_ACCESS_KEY", "CCAS_S3_SECRET_KEY", "CCAS_AVAYA_PASSWORD", "CCAS_OPS_TOKEN", "CCAS_SCORING_TOKEN",
                    "CCAS_PII_HMAC_KEY"):
            env[key] = secret[key]
        if secret.get("CCAS_CONSOLE_SESSION_KEY"):  # a secrets file older than the console has none until `stack up`
            env["CCAS_CONSOLE_SESSION_KEY"] = secret["CCAS_CONSOLE_SESSION_KEY"]
        # The ops API's named tokens: the operator reuses CCAS_OPS_TOKEN's secret (so scripts holding it keep working, as
        # `dev-operator`), the admin has its own (full payloads); a secrets file older than the admin token gets no admin.
        ops_tokens = [f"dev-operator:operator:{secret['CCAS_OPS_TOKEN']}"]
        if secret.get("CCAS_OPS_ADMIN_TOKEN"):
            ops_tokens.append(f"dev-admin:admin:{secret['CCAS_OPS_ADMIN_TOKEN']}")
        env["CCAS_OPS_TOKENS"] = ",".join(ops_tokens)
        # The broker takes TLS + SCRAM only. The shell and the tests act as `admin`; the demo gives each process its own
        # principal (kafka_principal_env), whose ACLs allow only what that component does (ccas/kafka_acls.py).
        if secret.get(kafka_password_variable("admin")):
            env.update(kafka_principal_env("admin", secret))
    return env


def kafka_principal_env(component: str, secret: dict[str, str] | None = None) -> dict[str, str]:
    """How one component reaches the local stack's broker: TLS against the stack's CA, as its own SCRAM user."""
    if component not in KAFKA_COMPONENTS:
        raise ValueError(f"no Kafka principal {component!r} (one of {', '.join(KAFKA_COMPONENTS)})")
    return {"CCAS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CCAS_KAFKA_CA_FILE": str(stack_dir() / "tls" / "ca.crt"),
            "CCAS_KAFKA_USERNAME": component,
            "CCAS_KAFKA_PASSWORD": (secret or load_secrets())[kafka_password_variable(component)]}
