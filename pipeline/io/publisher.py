"""Stage results to Kafka from inside DoFns: schema-checked JSON, key = call_id, flushed before the element moves on."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import schemas
from pipeline.model import iso, utcnow

log = logging.getLogger(__name__)


class EventPublisher:
    """Stamps, validates and sends each value through one producer (opened in DoFn setup, closed in teardown).

    The producer is given, not built here: `pipeline.clients.StageClients.publisher` opens the real one (idempotent, lz4,
    acks=all) and passes how to open another (`reopen`); a test passes an in-memory one and still exercises the stamping and
    the schema check. After a failed flush the producer is dropped and the next publish opens a fresh one (when `reopen` is
    given): batches that expired while the broker was away leave an idempotent producer's sequence state behind them.
    """

    def __init__(self, producer: Any, reopen: Callable[[], Any] | None = None) -> None:
        self._producer = producer
        self._reopen = reopen
        self._pending: list[Any] = []

    def _open_producer(self) -> Any:
        if self._producer is None:
            if self._reopen is None:
                raise RuntimeError("the Kafka producer was closed after a failure and cannot be reopened")
            self._producer = self._reopen()
        return self._producer

    def send(self, topic: str, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Stamp event_ts/ingest_uuid, validate against the topic's schema, send; returns the value sent."""
        stamped = {**value, "event_ts": iso(utcnow()), "ingest_uuid": str(uuid.uuid4())}
        schemas.validate(topic, stamped)
        producer = self._open_producer()
        self._pending.append(producer.send(topic, key=key.encode(), value=json.dumps(stamped, default=str).encode()))
        return stamped

    def flush(self, timeout_s: float = 60.0) -> None:
        """Block until every send so far is acknowledged (acks=all); raises if any failed."""
        pending, self._pending = self._pending, []
        try:
            if self._producer is not None:
                self._producer.flush(timeout=timeout_s)
            for future in pending:
                future.get(timeout=timeout_s)
        except Exception:
            self._drop_producer()
            raise

    def publish_all(self, messages: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """Send every (topic, key, value) and wait for all acknowledgements; a failure leaves nothing pending, so the whole
        batch can be published again (consumers see at-least-once: a retry may repeat messages that did arrive)."""
        if not messages:
            return
        try:
            for topic, key, value in messages:
                self.send(topic, key, value)
        except Exception:
            self._pending = []
            raise
        self.flush()

    def _drop_producer(self) -> None:
        if self._reopen is None or self._producer is None:
            return
        producer, self._producer = self._producer, None
        try:
            producer.close(timeout=0)
        except Exception as error:  # it failed already; closing is best effort
            log.debug("closing a failed producer: %s", error)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)
