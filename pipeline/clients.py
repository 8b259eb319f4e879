"""The clients the I/O stages open, built in one place from the job's configuration.

Each I/O composite takes a `StageClients` (the real one from its `JobConfig` when none is given) and its DoFns call it in
`setup()`, so a worker opens its connections where it runs, never at graph construction. The factory holds only the
configuration, so it pickles with the DoFns; a test passes a subclass whose methods return in-memory fakes and runs the stages
under TestPipeline with no service at all.
"""

from __future__ import annotations

from typing import Any

from core.kafka import KafkaSecurity, consumer_config, producer
from core.recorder import Credentials, RecorderHttp
from core.s3 import s3_client
from pipeline.io.database import Database
from pipeline.io.publisher import EventPublisher
from pipeline.io.scoring_client import ScoringClient
from pipeline.io.storage import AudioStore
from pipeline.options import JobConfig

COMMIT_CLIENT_ID = "ccas-pipeline-commit"


def offset_consumer(bootstrap: str, group_id: str, security: KafkaSecurity | None = None) -> Any:
    """A consumer of the job's group that only commits offsets and probes partitions (CommitOffsets); never subscribes."""
    from kafka import KafkaConsumer

    # One record per poll and a small fetch: it only looks for the next data record after a gap, never reads the stream.
    return KafkaConsumer(**consumer_config(bootstrap, group_id, client_id=COMMIT_CLIENT_ID, security=security, max_poll_records=1,
                                           fetch_max_bytes=1024 * 1024))


class StageClients:
    """Opens the database, Kafka, S3, recorder and scoring clients of the I/O stages (one set per DoFn instance).

    Args:
        config: the job's resolved configuration; nothing else is kept, so instances pickle with the DoFns.
    """

    def __init__(self, config: JobConfig) -> None:
        self.config = config

    def database(self) -> Database:
        return Database(self.config.database_url)

    def publisher(self, client_id: str) -> EventPublisher:
        # A short linger: a stage flushes after each bundle anyway, so batching beyond the bundle buys nothing.
        def open_producer() -> Any:
            return producer(self.config.kafka_bootstrap, client_id=client_id, security=self.config.kafka_security, linger_ms=2)

        # Opened on first use, not here: a broker that is down while a worker starts must hold calls, not fail setup.
        return EventPublisher(None, reopen=open_producer)

    def audio_store(self, max_pool: int) -> AudioStore:
        c = self.config
        return AudioStore(s3_client(c.s3_endpoint, c.s3_access_key, c.s3_secret_key, region=c.s3_region, max_pool=max_pool,
                                    ca_file=c.s3_ca_file), c.s3_bucket)

    def analytics_s3(self) -> Any:
        """The S3 client of the Parquet export: the bucket and identity of the recordings, one small PUT per file."""
        c = self.config
        return s3_client(c.s3_endpoint, c.s3_access_key, c.s3_secret_key, region=c.s3_region, ca_file=c.s3_ca_file)

    def recorder(self) -> RecorderHttp:
        c = self.config
        # The download stage's retry policy is the only one: the transport's own retries are off.
        return RecorderHttp(c.avaya_url, Credentials(c.avaya_user, c.avaya_password), retries=0, read_timeout=60)

    def scoring(self, pool_size: int) -> ScoringClient:
        c = self.config
        return ScoringClient(c.scoring_url, token=c.scoring_token, ca_file=c.scoring_ca_file or None, pool_size=pool_size)

    def scoring_model_version(self) -> str:
        """The model_version the scoring service scores with now (one request on a client of its own)."""
        scoring = self.scoring(pool_size=1)
        try:
            return scoring.model_version()
        finally:
            scoring.close()

    def offset_consumer(self) -> Any:
        return offset_consumer(self.config.kafka_bootstrap, self.config.consumer_group, self.config.kafka_security)
