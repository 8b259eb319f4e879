"""Publishing to calls.raw exactly once: one Kafka transaction per window, and reconciliation against the topic on doubt.

Why both: the dedup rows are written to PostgreSQL after the Kafka transaction commits, and no transaction spans the two. A crash
(or a DB error) between them leaves calls on the topic that the table does not know. Before polling again the poller therefore
(1) re-inits the transactional producer, which fences any zombie and aborts its open transaction, then (2) reads the topic
back with isolation read_committed from the earliest timestamp an unrecorded call can have (values are stamped with the call's
end time, which is after its start, which is inside the un-checkpointed window) and records every call_id found. Consumers of
calls.raw must read with isolation.level=read_committed so aborted attempts are invisible to them.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from avaya_source.records import Recording
from avaya_source.store import Published
from core.kafka import KafkaSecurity, client_security
from schemas.contracts import WATERMARK_KEY, is_watermark_marker

log = logging.getLogger(__name__)


class TransactionalPublisher:
    def __init__(self, bootstrap: str, topic: str, transactional_id: str, *, transaction_timeout_ms: int = 60_000,
                 delivery_wait_s: float = 20.0, security: KafkaSecurity | None = None) -> None:
        self.bootstrap = bootstrap
        self.security = security  # None: the CCAS_KAFKA_* environment (core.kafka)
        self.topic = topic
        self.transactional_id = transactional_id
        self.transaction_timeout_ms = transaction_timeout_ms
        self.delivery_wait_s = delivery_wait_s
        self._producer: KafkaProducer | None = None

    def _open(self) -> KafkaProducer:
        if self._producer is None:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap,
                client_id="ccas-poller",
                **client_security(self.security),
                transactional_id=self.transactional_id,
                transaction_timeout_ms=self.transaction_timeout_ms,
                enable_idempotence=True,
                acks="all",
                compression_type="lz4",
                linger_ms=5,
                key_serializer=str.encode,
                value_serializer=lambda value: json.dumps(value, separators=(",", ":")).encode(),
            )
            producer.init_transactions()  # fences an earlier instance with this id and aborts what it left open
            self._producer = producer
        return self._producer

    def start(self) -> None:
        self._open()

    def publish(self, events: list[tuple[Recording, dict]], watermark: datetime | None = None) -> None:
        """Send all events in one transaction, then (when given) a watermark marker into every partition; returns once the
        transaction is committed (which flushes), raises if it is not."""
        if not events and watermark is None:
            return
        producer = self._open()
        producer.begin_transaction()
        try:
            sent = []
            for recording, value in events:
                ended_at = recording.ended_at
                assert ended_at is not None
                # Kafka timestamp = call end: the pipeline's event time (docs/design.md: latency is measured from call end).
                sent.append(producer.send(self.topic, key=recording.call_id, value=value,
                                          timestamp_ms=int(ended_at.timestamp() * 1000)))
            if watermark is not None:
                # After the calls, in the same transaction: a reader never sees the marker without the calls before it.
                marker = {"watermark": watermark.isoformat(), "producer": self.transactional_id}
                for partition in sorted(producer.partitions_for(self.topic)):
                    sent.append(producer.send(self.topic, key=WATERMARK_KEY, value=marker, partition=partition,
                                              timestamp_ms=int(watermark.timestamp() * 1000)))
            # Every record acknowledged before the commit: kafka-python commits a transaction even when a record of it
            # expired undelivered (seen with the broker stopped for 30 s: the window was checkpointed, the call never
            # reached the topic). A failed send raises here, and the transaction is aborted by reset(). The wait is bounded:
            # after a broker restart kafka-python may keep a batch until its delivery timeout (120 s) although the broker is
            # back; a fresh producer (reset) delivers the retried window at once.
            producer.flush(timeout=self.delivery_wait_s)
            for future in sent:
                future.get(timeout=self.delivery_wait_s)
            producer.commit_transaction()
        except Exception:
            self.reset()
            raise

    def reset(self) -> None:
        """Drop the producer after any doubt; the next use re-inits the transactional id (aborting anything left open)."""
        if self._producer is not None:
            try:
                self._producer.close(timeout=5)
            except Exception:  # noqa: BLE001 - closing a broken producer must not mask the original error
                log.debug("closing producer failed", exc_info=True)
        self._producer = None

    def close(self) -> None:
        self.reset()

    def read_back(self, since: datetime, timeout_s: float = 60.0) -> list[Published]:
        """Every committed call on the topic whose Kafka timestamp (= call end) is >= since."""
        self._open()  # fence first, so nothing of ours is still in flight while we read
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id="ccas-poller-reconcile",
            **client_security(self.security),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            consumer_timeout_ms=int(timeout_s * 1000),
        )
        found: list[Published] = []
        try:
            partitions = consumer.partitions_for_topic(self.topic) or set()
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            if not tps:
                return found
            consumer.assign(tps)
            starts = consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            ends = consumer.end_offsets(tps)
            todo = {}
            for tp in tps:
                start = starts.get(tp)
                if start is None or start.offset >= ends[tp]:
                    consumer.pause(tp)
                    continue
                consumer.seek(tp, start.offset)
                todo[tp] = ends[tp]
            deadline = time.monotonic() + timeout_s
            while todo:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reconcile: {self.topic} not read back to its end within {timeout_s} s")
                batch = consumer.poll(timeout_ms=1000, max_records=2000)
                for tp, messages in batch.items():
                    for message in messages:
                        if message.offset < todo.get(tp, -1) and not is_watermark_marker(message.key):
                            found.append(_published_of(message.value))
                for tp in list(todo):
                    if consumer.position(tp) >= todo[tp]:
                        consumer.pause(tp)
                        del todo[tp]
        finally:
            consumer.close()
        return [p for p in found if p is not None]


def _published_of(raw: bytes) -> Published | None:
    try:
        value = json.loads(raw)
        started = datetime.fromisoformat(value["started_at"].replace("Z", "+00:00"))
        ended = datetime.fromisoformat(value["ended_at"].replace("Z", "+00:00")) if value.get("ended_at") else None
        return Published(value["call_id"], value.get("switch_call_id"), started, ended)
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("reconcile: unreadable value on the topic skipped", exc_info=True)
        return None
