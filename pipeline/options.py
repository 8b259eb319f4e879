"""Pipeline options: every setting is a flag whose default comes from its CCAS_ environment variable (or the local stack).

Bad configuration fails here, before a job is submitted (`validate_options`), with every problem listed at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions

import schemas

KAFKA_IO_MODES = ("java", "python")


def _env(name: str, default: str | None = None) -> str | None:
    """The CCAS_ setting from the environment, else the local stack's value, else default (resolved lazily: no stack needed)."""
    value = os.environ.get(name)
    if value:
        return value
    try:
        from ccas.settings import local_stack_env

        return local_stack_env().get(name, default)
    except Exception:  # noqa: BLE001 - no local stack is a normal case on a cluster
        return default


class ConfigError(ValueError):
    """The pipeline cannot start with this configuration; the message lists every problem."""


class CcasOptions(PipelineOptions):
    """CCAS application options (runner options stay Beam's own)."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add = parser.add_argument
        add("--kafka_bootstrap", default=None, help="Kafka bootstrap servers [CCAS_KAFKA_BOOTSTRAP]")
        add("--kafka_io", default=os.environ.get("CCAS_KAFKA_IO", "java"), choices=KAFKA_IO_MODES,
            help="java: Beam's ReadFromKafka (cross-language, default); python: our splittable DoFn [CCAS_KAFKA_IO]")
        add("--expansion_service", default=None, help="host:port of the Java expansion service [CCAS_EXPANSION_SERVICE]")
        add("--consumer_group", default=os.environ.get("CCAS_CONSUMER_GROUP", "ccas-pipeline"),
            help="Kafka consumer group whose committed offsets the pipeline resumes from and advances")
        add("--input_topic", default="calls.raw", help="topic of finished recordings")
        add("--database_url", default=None, help="PostgreSQL URL [CCAS_DATABASE_URL]")
        add("--s3_endpoint", default=None, help="S3 endpoint URL; empty for AWS [CCAS_S3_ENDPOINT]")
        add("--s3_bucket", default=None, help="audio bucket [CCAS_S3_BUCKET]")
        add("--s3_access_key", default=None, help="[CCAS_S3_ACCESS_KEY]")
        add("--s3_secret_key", default=None, help="[CCAS_S3_SECRET_KEY]")
        add("--avaya_url", default=None, help="recorder base URL [CCAS_AVAYA_URL]")
        add("--avaya_user", default=None, help="[CCAS_AVAYA_USER]")
        add("--avaya_password", default=None, help="[CCAS_AVAYA_PASSWORD]")
        add("--scoring_url", default=None, help="scoring service base URL [CCAS_SCORING_URL]")
        add("--download_concurrency", type=int, default=int(os.environ.get("CCAS_DOWNLOAD_CONCURRENCY", "32")),
            help="concurrent replay downloads per worker process")
        add("--scoring_concurrency", type=int, default=int(os.environ.get("CCAS_SCORING_CONCURRENCY", "8")),
            help="concurrent scoring requests per worker process")
        add("--download_attempts", type=int, default=5, help="replay attempts before audio.ready.dlq (backoff 1, 2, 4, 8 s)")
        add("--download_backoff_s", type=float, default=1.0, help="first download retry delay; doubles each attempt")
        add("--scoring_attempts", type=int, default=3, help="scoring attempts on 5xx/timeouts (4xx: dead letter at once)")
        add("--scoring_backoff_s", type=float, default=1.0, help="base of the scoring retry delay (with jitter)")
        add("--dedup_ttl_s", type=int, default=24 * 3600, help="how long a call_id is remembered by DedupPerCall (event time)")
        add("--metrics_port", type=int, default=None,
            help="Prometheus port of the worker process (0: off) [CCAS_PIPELINE_METRICS_PORT]")
        add("--env_name", default=os.environ.get("CCAS_ENV", "dev"), help="environment name used in object tags")


@dataclass(frozen=True)
class JobConfig:
    """Everything the transforms need, resolved and validated; plain values, so DoFns pickle it."""

    kafka_bootstrap: str
    kafka_io: str
    expansion_service: str | None
    consumer_group: str
    input_topic: str
    database_url: str
    s3_endpoint: str | None
    s3_bucket: str
    s3_access_key: str | None
    s3_secret_key: str | None
    avaya_url: str
    avaya_user: str
    avaya_password: str
    scoring_url: str
    download_concurrency: int
    scoring_concurrency: int
    download_attempts: int
    download_backoff_s: float
    scoring_attempts: int
    scoring_backoff_s: float
    dedup_ttl_s: int
    metrics_port: int
    env_name: str

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"JobConfig(kafka={self.kafka_bootstrap}, io={self.kafka_io}, bucket={self.s3_bucket}, scoring={self.scoring_url})"


def _default_metrics_port() -> int:
    value = os.environ.get("CCAS_PIPELINE_METRICS_PORT")
    if value:
        return int(value)
    try:
        from ccas.settings import ports

        return ports().pipeline_metrics
    except Exception:  # noqa: BLE001
        return 0


def validate_options(options: PipelineOptions) -> JobConfig:
    """Resolve each setting (flag, else CCAS_ variable, else local stack) and check it; ConfigError lists every problem."""
    o = options.view_as(CcasOptions)
    values = {
        "kafka_bootstrap": o.kafka_bootstrap or _env("CCAS_KAFKA_BOOTSTRAP"),
        "expansion_service": o.expansion_service or _env("CCAS_EXPANSION_SERVICE"),
        "database_url": o.database_url or _env("CCAS_DATABASE_URL"),
        "s3_endpoint": o.s3_endpoint or _env("CCAS_S3_ENDPOINT"),
        "s3_bucket": o.s3_bucket or _env("CCAS_S3_BUCKET"),
        "s3_access_key": o.s3_access_key or _env("CCAS_S3_ACCESS_KEY"),
        "s3_secret_key": o.s3_secret_key or _env("CCAS_S3_SECRET_KEY"),
        "avaya_url": o.avaya_url or _env("CCAS_AVAYA_URL"),
        "avaya_user": o.avaya_user or _env("CCAS_AVAYA_USER"),
        "avaya_password": o.avaya_password or _env("CCAS_AVAYA_PASSWORD"),
        "scoring_url": o.scoring_url or _env("CCAS_SCORING_URL"),
    }
    problems = [f"--{name} / CCAS_{name.upper()} is not set" for name, value in values.items()
                if not value and name not in ("expansion_service", "s3_endpoint", "s3_access_key", "s3_secret_key")]
    if o.kafka_io == "java" and not values["expansion_service"]:
        problems.append("--kafka_io=java needs --expansion_service / CCAS_EXPANSION_SERVICE (or use --kafka_io=python)")
    for name in ("avaya_url", "scoring_url", "s3_endpoint"):
        if values[name] and urlsplit(values[name]).scheme not in ("http", "https"):
            problems.append(f"--{name} must be an http(s) URL, got {values[name]!r}")
    if values["database_url"] and urlsplit(values["database_url"]).scheme not in ("postgresql", "postgres"):
        problems.append("--database_url must be a postgresql:// URL")
    if o.input_topic not in schemas.topics():
        problems.append(f"--input_topic {o.input_topic!r} is not a declared topic")
    for name, low in (("download_concurrency", 1), ("scoring_concurrency", 1), ("download_attempts", 1),
                      ("scoring_attempts", 1), ("dedup_ttl_s", 1)):
        if getattr(o, name) < low:
            problems.append(f"--{name} must be >= {low}")
    if problems:
        raise ConfigError("invalid pipeline configuration:\n  - " + "\n  - ".join(problems))
    return JobConfig(
        kafka_io=o.kafka_io, consumer_group=o.consumer_group, input_topic=o.input_topic,
        download_concurrency=o.download_concurrency, scoring_concurrency=o.scoring_concurrency,
        download_attempts=o.download_attempts, download_backoff_s=o.download_backoff_s,
        scoring_attempts=o.scoring_attempts, scoring_backoff_s=o.scoring_backoff_s, dedup_ttl_s=o.dedup_ttl_s,
        metrics_port=o.metrics_port if o.metrics_port is not None else _default_metrics_port(), env_name=o.env_name,
        **values,  # type: ignore[arg-type]
    )
