"""The pipeline's settings: one pydantic-settings model, the single place where `CCAS_*` variables meet their defaults.

`pipeline.options.CcasOptions` turns each field into a Beam pipeline flag (`--kafka_bootstrap`, …), so a setting is a flag and a
variable at once; a flag given on the command line wins over the variable.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.settings import DatabaseSettings, KafkaSettings, RecorderSettings, S3Settings


class PipelineSettings(KafkaSettings, DatabaseSettings, S3Settings, RecorderSettings):
    kafka_io: Literal["java", "python"] = Field(
        default="java", description="java: Beam's ReadFromKafka (cross-language); python: the pure-Python reader")
    expansion_service: str = Field(default="", description="host:port of Beam's Java expansion service (kafka_io=java)")
    consumer_group: str = Field(default="ccas-pipeline", description="consumer group the job resumes from and commits to")
    input_topic: str = Field(default="calls.raw", description="topic of finished recordings")
    scoring_url: str = Field(description="scoring service base URL")
    download_concurrency: int = Field(default=32, ge=1, description="concurrent replay downloads per worker process")
    scoring_concurrency: int = Field(default=8, ge=1, description="concurrent scoring requests per worker process")
    download_attempts: int = Field(default=5, ge=1, description="replay attempts before audio.ready.dlq (backoff 1, 2, 4, 8 s)")
    download_backoff_s: float = Field(default=1.0, ge=0, description="first download retry delay; doubles each attempt")
    scoring_attempts: int = Field(default=3, ge=1, description="scoring attempts on 5xx/timeouts (4xx: dead letter at once)")
    scoring_backoff_s: float = Field(default=1.0, ge=0, description="base of the scoring retry delay (full jitter)")
    dedup_ttl_s: int = Field(default=24 * 3600, ge=1, description="how long DedupPerCall remembers a call_id (event time, s)")
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
