"""`--kafka_io=python`: an unbounded splittable DoFn over Kafka partitions (kafka-python), for machines without Java.

Impulse → ListPartitions (one element per partition, starting at the group's committed offset, else the earliest) →
ReadPartitions (unbounded SDF, one restriction per partition). It never commits offsets: the pipeline's last stage does,
after every sink write succeeded (docs/design.md, guarantees), so the consumer group only records finished work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.iobase import RestrictionProgress
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from kafka import KafkaConsumer, TopicPartition

from pipeline.io.records import KafkaRecord
from pipeline.io.resilience import UNAVAILABLE, classify

OUTAGE_PAUSE_S = 2.0  # between two tries of a partition whose broker is unreachable

log = logging.getLogger(__name__)

# Kafka offsets are int64: the restriction of a partition is [start, this) and is never split anywhere but at its position.
MAX_OFFSET = 2**63 - 1


class PartitionStart(NamedTuple):
    """Where reading a partition begins: the group's committed offset, else the partition's earliest offset."""

    topic: str
    partition: int
    start_offset: int


def kafka_python_config(consumer_config: dict[str, Any] | None) -> dict[str, Any]:
    """Consumer settings in kafka-python's spelling; Java-style dotted names (as given to ReadFromKafka) are accepted."""
    return {key.replace(".", "_"): value for key, value in (consumer_config or {}).items()}


class CheckpointOnlyTracker(OffsetRestrictionTracker):
    """An offset tracker for an unbounded partition that only ever splits at its current position.

    A plain OffsetRestrictionTracker over [start, 2**63) honours fractional splits: Prism asks for 0.5 of the remainder
    when a bundle looks idle, and the residual then starts around 2**62, an offset that will never exist (the job
    failed that way here). Claims take each record's real offset, so gaps left by transaction markers or aborted records
    are fine: positions only have to increase.
    """

    def try_split(self, fraction_of_remainder: float) -> tuple[OffsetRange, OffsetRange] | None:
        # Fractional splits are declined (None): the residual would start at a guessed offset, and splitting a partition
        # cannot add parallelism anyway (one consumer reads it in order). A checkpoint (fraction 0) is a split at the
        # next unclaimed offset: the primary keeps what was claimed, the residual resumes right after it.
        if fraction_of_remainder > 0 or self._checkpointed:
            return None
        split_at = self._range.start if self._last_claim_attempt is None else self._last_claim_attempt + 1
        if split_at >= self._range.stop:
            return None
        self._checkpointed = True
        self._range, residual = self._range.split_at(split_at)
        return self._range, residual

    def current_progress(self) -> RestrictionProgress:
        # The end of an unbounded partition is unknown: report work done so far and a nominal remainder rather than a
        # fraction of 2**63, which runners would read as "nothing left" or scale splits by.
        done = 0 if self._last_claim_attempt is None else self._last_claim_attempt + 1 - self._range.start
        return RestrictionProgress(completed=max(done, 0), remaining=1)

    def is_bounded(self) -> bool:
        return False


class _PartitionRestrictionProvider(RestrictionProvider):
    def initial_restriction(self, element: PartitionStart) -> OffsetRange:
        return OffsetRange(element.start_offset, MAX_OFFSET)

    def create_tracker(self, restriction: OffsetRange) -> CheckpointOnlyTracker:
        return CheckpointOnlyTracker(restriction)

    def split(self, element: PartitionStart, restriction: OffsetRange) -> Iterator[OffsetRange]:
        # Initial splitting would cut the offset space at arbitrary points: a partition stays one restriction.
        yield restriction

    def restriction_size(self, element: PartitionStart, restriction: OffsetRange) -> float:
        # The backlog is unknown without a broker round trip; equal weights keep runners from favouring a partition.
        return 1.0


class _WatermarkProvider(WatermarkEstimatorProvider):
    # Manual, not Monotonic: a MonotonicWatermarkEstimator follows output timestamps only, so a quiet partition would
    # hold the watermark (and every downstream event-time timer, such as the dedup TTL) until its next message. With a
    # manual estimator the reader sets min(newest CreateTime, now) - lag while records flow and now - lag when caught up,
    # which is what Java KafkaIO's create_time_policy does (with lag 0); the lag absorbs producers' small clock skew.
    def initial_estimator_state(self, element: PartitionStart, restriction: OffsetRange) -> Timestamp:
        return MIN_TIMESTAMP

    def create_watermark_estimator(self, estimator_state: Timestamp) -> ManualWatermarkEstimator:
        return ManualWatermarkEstimator(estimator_state)


class _ListPartitions(beam.DoFn):
    """Impulse → one PartitionStart per partition of the topics."""

    def __init__(self, bootstrap_servers: str, topics: list[str], group_id: str, consumer_config: dict[str, Any]) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._group_id = group_id
        self._consumer_config = consumer_config

    def process(self, _impulse: bytes) -> Iterator[PartitionStart]:
        # The group is only read here (committed offsets); auto-commit off so this consumer can never move it. Neither
        # consumer may create a missing topic: a typo must fail the job, not add an empty topic.
        config = {**self._consumer_config, "bootstrap_servers": self._bootstrap_servers, "group_id": self._group_id,
                  "enable_auto_commit": False, "allow_auto_create_topics": False}
        consumer = KafkaConsumer(**config)
        try:
            for topic in self._topics:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    raise ValueError(f"Kafka topic {topic!r} does not exist at {self._bootstrap_servers}")
                tps = [TopicPartition(topic, p) for p in sorted(partitions)]
                earliest = consumer.beginning_offsets(tps)
                for tp in tps:
                    committed = consumer.committed(tp)
                    start = earliest[tp] if committed is None else committed
                    log.info("%s[%d]: reading from offset %d (%s)", topic, tp.partition, start,
                             "earliest" if committed is None else f"committed by group {self._group_id}")
                    yield PartitionStart(topic, tp.partition, start)
        finally:
            consumer.close()


class _ReadPartitions(beam.DoFn):
    """PartitionStart → KafkaRecord stream of that partition, stamped with CreateTime (unbounded SDF)."""

    def __init__(self, bootstrap_servers: str, consumer_config: dict[str, Any], max_records_per_call: int,
                 max_seconds_per_call: float, idle_poll_seconds: float, idle_resume_seconds: float,
                 watermark_lag_seconds: float) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._consumer_config = consumer_config
        self._max_records = max_records_per_call
        self._max_seconds = max_seconds_per_call
        self._idle_poll_ms = int(idle_poll_seconds * 1000)
        self._idle_resume = Duration.of(idle_resume_seconds)
        self._watermark_lag = Duration.of(watermark_lag_seconds)
        self._consumers: dict[TopicPartition, KafkaConsumer] = {}
        self._lock: threading.Lock | None = None
        self._closed = False

    def setup(self) -> None:
        # One consumer per partition, kept across calls. kafka-python's poll() cannot be limited to one partition of a
        # shared consumer without pause/resume juggling, and every seek() drops the fetched-ahead batch; a consumer per
        # partition keeps its position and prefetch between calls, so a resumed restriction usually needs no seek or
        # fetch. The cost is a socket per partition per DoFn instance (12–24 here), which Kafka handles easily.
        self._consumers = {}
        # The SDK calls teardown() from its shutdown thread while a bundle may still be polling (job cancelled).
        self._lock = threading.Lock()
        self._closed = False

    def teardown(self) -> None:
        with self._lock:
            self._closed = True
            consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            consumer.close()

    def _consumer(self, tp: TopicPartition, start: int) -> KafkaConsumer | None:
        with self._lock:
            if self._closed:
                return None
            consumer = self._consumers.get(tp)
            if consumer is None:
                # No group: the reader must never join or commit for the pipeline's group (offsets are committed at the
                # end of the pipeline). read_committed: the poller writes in transactions; aborted records must not be read.
                config = {"auto_offset_reset": "earliest", **self._consumer_config,
                          "bootstrap_servers": self._bootstrap_servers, "group_id": None, "enable_auto_commit": False,
                          "isolation_level": "read_committed", "allow_auto_create_topics": False}
                consumer = KafkaConsumer(**config)
                consumer.assign([tp])
                consumer.seek(tp, start)
                self._consumers[tp] = consumer
            elif consumer.position(tp) != start:
                # The restriction is the truth, not the consumer: after a checkpoint, a retried bundle or a restriction
                # that moved to this instance, read from current_restriction().start. Seeking only when needed keeps
                # the prefetched batch (kafka-python drops it on every seek).
                consumer.seek(tp, start)
            return consumer

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: PartitionStart,
        tracker: CheckpointOnlyTracker = beam.DoFn.RestrictionParam(_PartitionRestrictionProvider()),  # noqa: B008
        watermark: ManualWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(_WatermarkProvider()),  # noqa: B008
    ) -> Iterator[beam.window.TimestampedValue]:
        tp = TopicPartition(element.topic, element.partition)
        try:
            consumer = self._consumer(tp, tracker.current_restriction().start)
        except Exception as error:
            self._drop(tp)
            if self._wait_out(tp, error, tracker):
                return
            raise
        if consumer is None:  # torn down: hand the whole restriction back untouched
            tracker.defer_remainder()
            return
        deadline = time.monotonic() + self._max_seconds
        emitted = 0
        idle = False
        try:
            # Bounded work per call (records and time) so the runner gets a checkpoint, and the watermark moves, often.
            while emitted < self._max_records and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=self._idle_poll_ms, max_records=self._max_records - emitted)
                messages = batch.get(tp, [])
                if not messages:
                    idle = True
                    break
                for message in messages:
                    if not tracker.try_claim(message.offset):
                        return
                    event_time = Timestamp(micros=message.timestamp * 1000)
                    yield beam.window.TimestampedValue(
                        KafkaRecord(message.topic, message.partition, message.offset, message.key, message.value,
                                    message.timestamp),
                        event_time)
                    emitted += 1
                    self._advance(watermark, min(event_time, Timestamp.now()) - self._watermark_lag)
        except Exception as error:
            if self._closed:  # teardown closed the consumer under us: the bundle is being discarded anyway
                log.debug("%s: reader torn down while polling", tp)
                tracker.defer_remainder()
                return
            self._drop(tp)
            if self._wait_out(tp, error, tracker):
                return
            raise
        if idle:
            # Caught up: move the watermark with wall time so downstream event-time timers (dedup TTL) fire while the
            # topic is quiet, as Java KafkaIO's create_time_policy does for an idle partition.
            self._advance(watermark, Timestamp.now() - self._watermark_lag)
            # Prism 2.73 reschedules residuals at once, ignoring the requested delay (measured; its element manager
            # never reads it): there the blocking idle poll above is what paces an idle partition. Flink honours it.
            tracker.defer_remainder(self._idle_resume)
        else:
            tracker.defer_remainder()

    def _wait_out(self, tp: TopicPartition, error: BaseException, tracker: CheckpointOnlyTracker) -> bool:
        """A broker that is unreachable for now (a restart, a network blip) is waited out like every other dependency:
        the restriction is handed back from its last claimed offset and read again after a pause, instead of failing the
        bundle, which Prism gives up on after a few retries and then fails the whole job. False: not an outage, re-raise."""
        if classify(error) != UNAVAILABLE:
            return False
        log.warning("%s: Kafka unavailable (%s: %s); reading again in %.0f s", tp, type(error).__name__, error,
                    OUTAGE_PAUSE_S)
        # Prism reschedules a residual at once (see process()): this pause is what spaces the retries there.
        time.sleep(OUTAGE_PAUSE_S)
        tracker.defer_remainder(self._idle_resume)
        return True

    @staticmethod
    def _advance(watermark: ManualWatermarkEstimator, candidate: Timestamp) -> None:
        if candidate > watermark.current_watermark():
            watermark.set_watermark(candidate)

    def _drop(self, tp: TopicPartition) -> None:
        # A consumer in an unknown state after an error is replaced; the retried restriction seeks a fresh one.
        with self._lock:
            consumer = self._consumers.pop(tp, None)
        if consumer is not None:
            consumer.close()


class ReadFromKafkaPython(beam.PTransform[beam.pvalue.PBegin, beam.PCollection[KafkaRecord]]):
    """Reads Kafka topics as KafkaRecord elements stamped with the producer's CreateTime, with kafka-python (no Java).

    Each partition starts at `group_id`'s committed offset, else at its earliest offset; the reader never commits.
    Partitions are listed once at start-up (partitions added later are not read until the job restarts).

    Args:
        bootstrap_servers: Kafka `host:port[,host:port]`.
        topics: topics to read; each must exist.
        group_id: consumer group whose committed offsets give the start positions.
        consumer_config: extra kafka-python consumer settings (`security_protocol`, ...; dotted Java names accepted).
            `group_id`, `enable_auto_commit` and `isolation_level` of the reading consumers are fixed.
        max_records_per_call / max_seconds_per_call: work done before the SDF checkpoints.
        idle_poll_seconds: how long one call waits for new records before checkpointing as idle (bounds the added
            latency of a live record and, on Prism, the polling rate of an idle partition).
        idle_resume_seconds: delay requested before an idle partition is polled again (ignored by Prism 2.73).
        watermark_lag_seconds: the watermark trails the newest CreateTime (and, when idle, wall time) by this much.
    """

    def __init__(self, bootstrap_servers: str, topics: list[str], group_id: str, consumer_config: dict | None = None, *,
                 max_records_per_call: int = 500, max_seconds_per_call: float = 1.0, idle_poll_seconds: float = 0.2,
                 idle_resume_seconds: float = 0.2, watermark_lag_seconds: float = 2.0) -> None:
        super().__init__()
        if not topics:
            raise ValueError("ReadFromKafkaPython needs at least one topic")
        if max_records_per_call < 1 or max_seconds_per_call <= 0:
            raise ValueError("max_records_per_call and max_seconds_per_call must be positive")
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._group_id = group_id
        self._consumer_config = kafka_python_config(consumer_config)
        self._read = _ReadPartitions(bootstrap_servers, self._consumer_config, max_records_per_call, max_seconds_per_call,
                                     idle_poll_seconds, idle_resume_seconds, watermark_lag_seconds)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection[KafkaRecord]:
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(
                _ListPartitions(self._bootstrap_servers, self._topics, self._group_id, self._consumer_config))
            | "ReadPartitions" >> beam.ParDo(self._read).with_output_types(KafkaRecord)
        )
