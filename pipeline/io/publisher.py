"""Stage results to Kafka from inside DoFns: schema-checked JSON, key = call_id, flushed before the element moves on."""

from __future__ import annotations

import json
import uuid
from typing import Any

import schemas
from pipeline.model import iso, utcnow


class EventPublisher:
    """Stamps, validates and sends each value through one producer (opened in DoFn setup, closed in teardown).

    The producer is given, not built here: `pipeline.clients.StageClients.publisher` opens the real one (idempotent, lz4,
    acks=all); a test passes an in-memory one and still exercises the stamping and the schema check.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._pending: list[Any] = []

    def send(self, topic: str, key: str, value: dict[str, Any]) -> dict[str, Any]:
        """Stamp event_ts/ingest_uuid, validate against the topic's schema, send; returns the value sent."""
        stamped = {**value, "event_ts": iso(utcnow()), "ingest_uuid": str(uuid.uuid4())}
        schemas.validate(topic, stamped)
        self._pending.append(self._producer.send(topic, key=key.encode(), value=json.dumps(stamped, default=str).encode()))
        return stamped

    def flush(self, timeout_s: float = 60.0) -> None:
        """Block until every send so far is acknowledged (acks=all); raises if any failed."""
        self._producer.flush(timeout=timeout_s)
        pending, self._pending = self._pending, []
        for future in pending:
            future.get(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close(timeout=10)
