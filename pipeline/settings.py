"""The pipeline's settings: one pydantic-settings model, the single place where `CCAS_*` variables meet their defaults.

`pipeline.options.CcasOptions` turns each field into a Beam pipeline flag (`--kafka_bootstrap`, …), so a setting is a flag and a
variable at once; a flag given on the command line wins over the variable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator

from core.config import secret
from core.settings import DatabaseSettings, KafkaSettings, RecorderSettings, S3Settings


def fixed_utc_offset_s(time_zone: str) -> int:
    """The zone's one UTC offset (s). Fixed windows cannot follow a daylight-saving change, so such a zone is refused."""
    try:
        zone = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {time_zone!r} (an IANA name such as Asia/Ho_Chi_Minh)") from None
    start = datetime(2020, 1, 1, tzinfo=UTC)
    offsets = {zone.utcoffset((start + timedelta(days=day)).replace(tzinfo=None)) for day in range(0, 366 * 12, 7)}
    if len(offsets) != 1:
        raise ValueError(f"time zone {time_zone!r} changes its UTC offset (daylight saving): daily windows need a zone with "
                         "one offset, e.g. Asia/Ho_Chi_Minh, UTC or Etc/GMT-7")
    (offset,) = offsets
    return int(offset.total_seconds())


# core.pii.customer_key refuses shorter keys; the settings refuse them first, naming the variable.
MIN_PII_HMAC_KEY_BYTES = 16
SECONDS_PER_DAY = 24 * 3600


class PipelineSettings(KafkaSettings, DatabaseSettings, S3Settings, RecorderSettings):
    kafka_io: Literal["java", "python"] = Field(
        default="java", description="java: Beam's ReadFromKafka (cross-language); python: the pure-Python reader")
    expansion_service: str = Field(default="", description="host:port of Beam's Java expansion service (kafka_io=java)")
    consumer_group: str = Field(default="ccas-pipeline", description="consumer group the job resumes from and commits to")
    input_topic: str = Field(default="calls.raw", description="topic of finished recordings")
    scoring_url: str = Field(description="scoring service base URL")
    scoring_token: SecretStr | None = Field(
        default=None, description="bearer token of the scoring API (at least 16 characters): the scoring service requires it "
                                  "on every /v1 request, the pipeline sends it")
    scoring_ca_file: str = Field(default="", description="PEM CA bundle that verifies an https scoring URL (empty: the system "
                                                         "trust store); the path must exist where the workers run")
    pii_hmac_key: SecretStr = Field(
        description=f"key of the customer-number hash (HMAC-SHA256, at least {MIN_PII_HMAC_KEY_BYTES} bytes) stored in "
                    "call.customer_key and published on calls.enriched instead of the number; changing it changes every "
                    "customer's key")
    pii_store_encrypted_number: bool = Field(
        default=False, description="also store the customer's number in call.customer_number_enc, encrypted with "
                                   "CCAS_PII_ENCRYPTION_KEY (false: only the hash is stored)")
    pii_encryption_key: SecretStr | None = Field(
        default=None, description="Fernet key (cryptography.fernet: 32 url-safe base64-encoded bytes) of "
                                  "call.customer_number_enc; required when CCAS_PII_STORE_ENCRYPTED_NUMBER is true")
    download_concurrency: int = Field(default=32, ge=1, description="concurrent replay downloads per worker process")
    scoring_concurrency: int = Field(default=8, ge=1, description="concurrent scoring requests per worker process")
    download_attempts: int = Field(default=5, ge=1, description="replay attempts before audio.ready.dlq (backoff 1, 2, 4, 8 s)")
    download_backoff_s: float = Field(default=1.0, ge=0, description="first download retry delay; doubles each attempt")
    scoring_attempts: int = Field(default=3, ge=1, description="scoring attempts on 5xx/timeouts (4xx: dead letter at once)")
    scoring_backoff_s: float = Field(default=1.0, ge=0, description="base of the scoring retry delay (full jitter)")
    outage_budget_s: float = Field(default=900.0, ge=0, description="how long a call is held and retried while a dependency "
                                   "(recorder, S3, scoring, PostgreSQL, Kafka) is unavailable before the job gives up on it")
    outage_backoff_cap_s: float = Field(default=30.0, gt=0, description="longest wait between two tries of an unavailable "
                                                                         "dependency (capped exponential backoff with jitter)")
    skill_languages: str = Field(
        default="", description="language of calls by skill, sent to ASR as the recording's metadata: 'skill=lang,...' "
                                "(a skill ending in * is a prefix, e.g. VN_*=vi); unlisted skills: the ASR detects it")
    dedup_ttl_s: int = Field(default=24 * 3600, ge=1, description="how long DedupPerCall remembers a call_id (event time, s)")
    scorecard_time_zone: str = Field(
        default="Asia/Ho_Chi_Minh", description="time zone of the scorecards' hourly and daily windows (a day starts at its "
                                                "local midnight); a zone with one UTC offset, no daylight saving")
    scorecard_allowed_lateness_s: int = Field(
        default=2 * 24 * 3600, ge=0, description="how long after a scorecard window's end a late call still updates its row "
                                                 "(s, event time); later calls are counted and dropped")
    scorecard_early_firing_s: int = Field(
        default=60, ge=0, description="while a scorecard window is open its row is refreshed this often (s, processing "
                                        "time); 0: written only when the window closes and for late calls")
    analytics_export: bool = Field(default=True, description="write each scored call as a row of a Parquet file under "
                                                             "analytics/scoring_results/ in the bucket (docs/analytics.md)")
    analytics_window_s: int = Field(default=3600, ge=60, le=SECONDS_PER_DAY,
                                    description="event-time window of one analytics file (s); a whole number of minutes that "
                                                "divides a day, so no window straddles two date= partitions")
    analytics_allowed_lateness_s: int = Field(
        default=2 * SECONDS_PER_DAY, ge=0, description="how long after its window's end a late call is still exported, in an "
                                                       "extra file of the window (later ones are not; scoring_result has them)")
    analytics_shards: int = Field(default=1, ge=1, le=64, description="analytics files per window and pane: the rows spread "
                                                                      "over this many writers by a hash of their key (the call)")
    rescore_rate: float = Field(
        default=2.0, gt=0, le=1000, description="re-score (`ccas rescore`): most calls sent to the scoring service per second, "
                                                 "so the live calls keep their latency (docs/analytics.md, Re-scoring)")
    rescore_chunk: int = Field(default=50, ge=1, le=10_000,
                               description="re-score: calls per bounded run; a run's results are written when it ends, so an "
                                           "interrupted re-score loses at most one chunk and the next run redoes it")
    rescore_lookback_s: int = Field(
        default=7 * SECONDS_PER_DAY, ge=60, description="re-score on a model.version.updated event (the streaming job, or "
                                                        "`ccas rescore --follow`): calls started this many seconds back are "
                                                        "re-scored")
    rescore_on_events: bool = Field(
        default=True, description="the streaming job re-scores the look-back itself on each model.version.updated event, "
                                  "paced to CCAS_RESCORE_RATE per worker process (false: run `ccas rescore --follow` instead)")
    pipeline_metrics_host: str = Field(default="127.0.0.1", json_schema_extra={"flag": "--metrics_host"},
                                       description="address the worker's Prometheus endpoint binds (0.0.0.0 in a container)")
    pipeline_metrics_port: int = Field(default=0, ge=0, le=65535, json_schema_extra={"flag": "--metrics_port"},
                                       description="Prometheus port of the first SDK worker process (0: off); "
                                                   "further worker processes take the next free ports")
    job_endpoint: str = Field(default="", description="host:port of the Beam Job API for --runner=PortableRunner")
    worker_pool: str = Field(default="", description="host:port of the Python SDK worker pool (EXTERNAL environment) for "
                                                     "--runner=PortableRunner/FlinkRunner; empty: LOOPBACK on PortableRunner")
    flink_master: str = Field(default="", description="host:port of the Flink JobManager REST API for --runner=FlinkRunner")
    flink_job_server_jar: str = Field(default="", description="path of Beam's Flink job-server jar (empty: Beam's cache or "
                                                              "its download from Maven Central)")
    prism_location: str = Field(default="", description="path of the Prism binary for --runner=DirectRunner/PrismRunner "
                                                        "(empty: Beam downloads it)")
    # Process level (pipeline/supervisor.py, pipeline/fencing.py): read by run_pipeline.py / ccas-pipeline before the job starts.
    pipeline_restart: Literal["no", "on-failure"] = Field(
        default="no", json_schema_extra={"flag": "--restart"},
        description="on-failure: run the job as a supervised child process and restart it when it fails or dies "
                    "(capped exponential backoff); no: run it in this process, exit when it ends")
    pipeline_restart_backoff_s: float = Field(default=1.0, gt=0, json_schema_extra={"flag": "--restart_backoff_s"},
                                              description="first delay before a restart; doubles with each failure in a row")
    pipeline_restart_backoff_max_s: float = Field(default=60.0, gt=0, json_schema_extra={"flag": "--restart_backoff_max_s"},
                                                  description="longest delay between two restarts")
    pipeline_restart_reset_s: float = Field(default=300.0, gt=0, json_schema_extra={"flag": "--restart_reset_s"},
                                            description="a child that ran this long (s) before failing restarts after the "
                                                        "first delay again")
    supervisor_metrics_port: int = Field(default=0, ge=0, le=65535,
                                         description="Prometheus port of the supervisor (pipeline_restarts_total; 0: off); "
                                                     "must lie outside the workers' --metrics_port span")
    pipeline_standby: bool = Field(default=False, json_schema_extra={"flag": "--standby"},
                                   description="when another pipeline holds the consumer group, wait until it is released "
                                               "and then start (instead of exiting with code 3)")
    fencing_check_interval_s: float = Field(default=5.0, gt=0,
                                            description="how often the consumer-group lock is verified while the job runs, "
                                                        "and retried on standby")
    fencing_connect_timeout_s: float = Field(default=120.0, ge=0,
                                             description="how long PostgreSQL may stay unreachable at start (taking the "
                                                         "consumer-group lock) before the pipeline gives up with exit code 1")

    @field_validator("pii_hmac_key")
    @classmethod
    def _hmac_key_long_enough(cls, value: SecretStr) -> SecretStr:
        # A short key makes the hash of a phone number (a small space) cheap to invert by brute force.
        if len(secret(value).encode()) < MIN_PII_HMAC_KEY_BYTES:
            raise ValueError(f"must be at least {MIN_PII_HMAC_KEY_BYTES} bytes")
        return value

    @field_validator("scorecard_time_zone")
    @classmethod
    def _one_utc_offset(cls, value: str) -> str:
        fixed_utc_offset_s(value)
        return value

    @field_validator("analytics_window_s")
    @classmethod
    def _window_divides_a_day(cls, value: int) -> int:
        if value % 60 or SECONDS_PER_DAY % value:
            raise ValueError("must be a whole number of minutes that divides a day (e.g. 300, 900, 3600, 86400)")
        return value

    @field_validator("pii_encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                Fernet(secret(value).encode())
            except ValueError:  # the message names the variable, never the value
                raise ValueError("is not a Fernet key (32 url-safe base64-encoded bytes: "
                                 "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
                                 ) from None
        return value

    @model_validator(mode="after")
    def _encryption_key_when_storing(self) -> PipelineSettings:
        # A model-level error has no variable of its own: the message names both.
        if self.pii_store_encrypted_number and self.pii_encryption_key is None:
            raise ValueError("CCAS_PII_STORE_ENCRYPTED_NUMBER is true but CCAS_PII_ENCRYPTION_KEY is not set")
        return self
