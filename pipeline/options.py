"""Pipeline options: the flags of `PipelineSettings` as Beam pipeline options, resolved and validated into one `JobConfig`.

Each flag's value wins over its `CCAS_*` variable; the variable wins over the field's default. Nothing else is consulted: the
job never looks for a developer's local stack. Bad configuration fails in `validate_options`, before a job is submitted, with
every problem listed at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from apache_beam.options.pipeline_options import PipelineOptions

import schemas
from core.config import ConfigurationError, add_flags, load, secret
from core.kafka import KafkaSecurity
from core.recorder import Credentials
from pipeline.settings import PipelineSettings

KAFKA_IO_MODES = ("java", "python")
# Settings whose flag is Beam's own (--prism_location, --job_endpoint, --flink_master): the variable fills the flag when absent.
BEAM_OWNED_FLAGS = ("prism_location", "job_endpoint", "flink_master", "flink_job_server_jar")
# Settings with no flag: a command line shows in `ps`, and Beam keeps its options in the job (the Flink and Prism UIs show them).
# The value reaches the workers inside JobConfig, pickled with the DoFns.
ENVIRONMENT_ONLY = ("scoring_token", "pii_hmac_key", "pii_encryption_key", "kafka_password")


class ConfigError(ConfigurationError):
    """The pipeline cannot start with this configuration; the message lists every problem."""


class CcasOptions(PipelineOptions):
    """CCAS application options (runner options stay Beam's own): one flag per PipelineSettings field."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_flags(parser, PipelineSettings, style="_", skip=(*BEAM_OWNED_FLAGS, *ENVIRONMENT_ONLY))


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
    s3_region: str | None
    s3_access_key: str | None
    s3_secret_key: str | None
    s3_ca_file: str | None
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
    metrics_host: str
    metrics_port: int
    prism_location: str = ""
    outage_budget_s: float = 900.0
    outage_backoff_cap_s: float = 30.0
    skill_languages: tuple[tuple[str, str], ...] = ()
    scoring_token: str = ""
    scoring_ca_file: str = ""
    # The customer-number keys (core.pii): enrich hashes the number, and encrypts it too when the second is set.
    pii_hmac_key: str = ""
    pii_encryption_key: str | None = None
    kafka_security: KafkaSecurity = KafkaSecurity()
    scorecard_time_zone: str = "Asia/Ho_Chi_Minh"
    scorecard_lateness_s: int = 2 * 24 * 3600
    scorecard_early_firing_s: int = 60
    # The Parquet export (pipeline/transforms/analytics.py).
    analytics_export: bool = True
    analytics_window_s: int = 3600
    analytics_allowed_lateness_s: int = 2 * 24 * 3600
    analytics_shards: int = 1
    # The re-score on model.version.updated events (RescoreOnModelVersion, pipeline/transforms/rescore.py).
    rescore_on_events: bool = True
    rescore_rate: float = 2.0
    rescore_lookback_s: int = 7 * 24 * 3600

    def __repr__(self) -> str:  # secrets never reach a log line
        return f"JobConfig(kafka={self.kafka_bootstrap}, io={self.kafka_io}, bucket={self.s3_bucket}, scoring={self.scoring_url})"


def settings_of(options: PipelineOptions) -> PipelineSettings:
    """PipelineSettings from the CCAS_* environment with every pipeline flag that was given on top."""
    flags = options.view_as(CcasOptions).get_all_options(drop_default=False)
    try:
        return load(PipelineSettings, flags, style="_")
    except ConfigurationError as error:
        raise ConfigError(str(error)) from None


def validate_options(options: PipelineOptions, settings: PipelineSettings | None = None) -> JobConfig:
    """Resolve each setting (flag, else CCAS_ variable, else default) and check it; ConfigError lists every problem."""
    s = settings or settings_of(options)
    problems = []
    if s.kafka_io == "java" and not s.expansion_service:
        problems.append("--kafka_io=java needs --expansion_service / CCAS_EXPANSION_SERVICE (or use --kafka_io=python)")
    for name in ("avaya_url", "scoring_url", "s3_endpoint"):
        value = getattr(s, name)
        if value and urlsplit(value).scheme not in ("http", "https"):
            problems.append(f"--{name} / CCAS_{name.upper()} must be an http(s) URL, got {value!r}")
    if urlsplit(secret(s.database_url)).scheme not in ("postgresql", "postgres"):
        problems.append("--database_url / CCAS_DATABASE_URL must be a postgresql:// URL")
    if s.input_topic not in schemas.topics():
        problems.append(f"--input_topic {s.input_topic!r} is not a declared topic")
    if bool(s.s3_access_key) != bool(s.s3_secret_key):
        problems.append("CCAS_S3_ACCESS_KEY and CCAS_S3_SECRET_KEY go together (or neither: the AWS credential chain)")
    if not s.avaya_password and not s.avaya_password_file:
        problems.append("--avaya_password / CCAS_AVAYA_PASSWORD (or CCAS_AVAYA_PASSWORD_FILE) is not set")
    # Without it every call would be refused (401) and held until the outage budget is spent: refuse to start instead.
    if not secret(s.scoring_token).strip():
        problems.append("CCAS_SCORING_TOKEN (the scoring service's bearer token) is not set")
    if s.scoring_ca_file and not Path(s.scoring_ca_file).is_file():
        problems.append(f"--scoring_ca_file / CCAS_SCORING_CA_FILE: {s.scoring_ca_file} is not a file")
    try:
        skill_languages = parse_skill_languages(s.skill_languages)
    except ValueError as error:
        problems.append(str(error))
    if problems:
        raise ConfigError("invalid pipeline configuration:\n  - " + "\n  - ".join(problems))
    try:
        password = Credentials.of(s.avaya_user, secret(s.avaya_password), s.avaya_password_file).password
    except (OSError, ValueError) as error:
        raise ConfigError(f"invalid pipeline configuration:\n  - {error}") from None
    return JobConfig(
        kafka_bootstrap=s.kafka_bootstrap, kafka_io=s.kafka_io, expansion_service=s.expansion_service or None,
        consumer_group=s.consumer_group, input_topic=s.input_topic, database_url=secret(s.database_url),
        s3_endpoint=s.s3_endpoint or None, s3_bucket=s.s3_bucket, s3_region=s.s3_region or None,
        s3_access_key=secret(s.s3_access_key) or None, s3_secret_key=secret(s.s3_secret_key) or None,
        s3_ca_file=s.s3_ca_file or None,
        avaya_url=s.avaya_url, avaya_user=s.avaya_user, avaya_password=password, scoring_url=s.scoring_url,
        download_concurrency=s.download_concurrency, scoring_concurrency=s.scoring_concurrency,
        download_attempts=s.download_attempts, download_backoff_s=s.download_backoff_s, scoring_attempts=s.scoring_attempts,
        scoring_backoff_s=s.scoring_backoff_s, dedup_ttl_s=s.dedup_ttl_s, outage_budget_s=s.outage_budget_s,
        outage_backoff_cap_s=s.outage_backoff_cap_s, metrics_host=s.pipeline_metrics_host,
        metrics_port=s.pipeline_metrics_port, prism_location=s.prism_location, skill_languages=skill_languages,
        scoring_token=secret(s.scoring_token), scoring_ca_file=s.scoring_ca_file, pii_hmac_key=secret(s.pii_hmac_key),
        pii_encryption_key=(secret(s.pii_encryption_key) or None) if s.pii_store_encrypted_number else None,
        kafka_security=s.kafka_security(), scorecard_time_zone=s.scorecard_time_zone,
        scorecard_lateness_s=s.scorecard_allowed_lateness_s, scorecard_early_firing_s=s.scorecard_early_firing_s,
        analytics_export=s.analytics_export, analytics_window_s=s.analytics_window_s,
        analytics_allowed_lateness_s=s.analytics_allowed_lateness_s, analytics_shards=s.analytics_shards,
        rescore_on_events=s.rescore_on_events, rescore_rate=s.rescore_rate, rescore_lookback_s=s.rescore_lookback_s,
    )


LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")


def parse_skill_languages(text: str) -> tuple[tuple[str, str], ...]:
    """'VN_SUPPORT=vi,EN_*=en' → (('VN_SUPPORT', 'vi'), ('EN_*', 'en')); a bad item is an error naming it."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        skill, sep, language = (x.strip() for x in item.partition("="))
        if not sep or not skill or not LANGUAGE_CODE.match(language):
            raise ValueError(f"--skill_languages item {item!r}: write skill=language, e.g. VN_SUPPORT=vi or VN_*=vi")
        out.append((skill, language))
    return tuple(out)


def language_of(skill: str | None, skill_languages: tuple[tuple[str, str], ...]) -> str | None:
    """The language configured for `skill` (exact entries before prefix ones), or None: let the ASR detect it."""
    if not skill:
        return None
    for pattern, language in skill_languages:
        if pattern == skill:
            return language
    for pattern, language in skill_languages:
        if pattern.endswith("*") and skill.startswith(pattern[:-1]):
            return language
    return None
