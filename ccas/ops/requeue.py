"""Requeue dead letters: republish the original calls.raw value with a new ingest_uuid, `requeued_from` and a higher
`requeue_count` (so DedupPerCall lets it through again), recorded in `dlq_requeue` so the same DLQ record never goes twice.

Every stage's failure goes back to calls.raw: that is what the pipeline consumes, and it re-runs every stage idempotently.
A call that is already SCORED is reported, not requeued. The row is inserted before the publish and committed only after
the broker acknowledged it, so a failed publish leaves nothing recorded and a concurrent requeue of the same record loses
the race on the unique key.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2

import schemas
from ccas.ops.dlq import DeadLetterRecord, Filter, list_dead_letters

log = logging.getLogger(__name__)

TARGET_TOPIC = "calls.raw"


@dataclass
class Outcome:
    call_id: str | None
    dlq: str
    stage: str
    error_type: str
    action: str  # requeued | would_requeue | already_requeued | already_scored | superseded | invalid
    detail: str = ""
    requeue_count: int | None = None
    ingest_uuid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def requeued_value(record: DeadLetterRecord, requeue_count: int) -> dict[str, Any]:
    """The original calls.raw value, re-stamped; raises SchemaError when it is not a valid calls.raw value."""
    payload = record.value.get("payload")
    if not isinstance(payload, dict):
        raise schemas.SchemaError(TARGET_TOPIC, "", "the dead letter holds no JSON object payload")
    value = {**payload, "ingest_uuid": str(uuid.uuid4()), "event_ts": _iso_now(), "requeue_count": requeue_count,
             "requeued_from": record.position}
    schemas.validate(TARGET_TOPIC, value)
    return value


class Requeuer:
    def __init__(self, bootstrap: str, database_url: str, requested_by: str = "cli") -> None:
        self.bootstrap = bootstrap
        self.database_url = database_url
        self.requested_by = requested_by[:64]

    def _state(self, cursor: Any, call_ids: list[str], positions: list[str]) -> tuple[dict[str, str], set[str], dict[str, int]]:
        cursor.execute("SELECT call_id, status FROM call WHERE call_id = ANY(%s)", (call_ids,))
        statuses = dict(cursor.fetchall())
        cursor.execute("SELECT dlq_topic || ':' || dlq_partition || ':' || dlq_offset FROM dlq_requeue"
                       " WHERE dlq_topic || ':' || dlq_partition || ':' || dlq_offset = ANY(%s)", (positions,))
        done = {row[0] for row in cursor.fetchall()}
        cursor.execute("SELECT call_id, max(requeue_count) FROM dlq_requeue WHERE call_id = ANY(%s) GROUP BY call_id",
                       (call_ids,))
        counts = dict(cursor.fetchall())
        return statuses, done, counts

    def requeue(self, where: Filter, dry_run: bool = False) -> list[Outcome]:
        records = list_dead_letters(self.bootstrap, where)
        with_ids = [r for r in records if schemas.is_valid_call_id(r.call_id)]
        outcomes = [Outcome(r.call_id, r.position, r.stage, r.error_type, "invalid", "no valid call_id")
                    for r in records if r not in with_ids]
        connection = psycopg2.connect(self.database_url)
        try:
            with connection.cursor() as cursor:
                statuses, done, counts = self._state(cursor, sorted({str(r.call_id) for r in with_ids}),
                                                     [r.position for r in with_ids])
            connection.rollback()
            # The newest not-yet-requeued record of a call is the one republished; older ones of the same call ride along.
            pending: dict[str, list[DeadLetterRecord]] = {}
            for record in with_ids:
                call_id = str(record.call_id)
                if record.position in done:
                    outcomes.append(Outcome(call_id, record.position, record.stage, record.error_type, "already_requeued"))
                elif statuses.get(call_id) == "SCORED":
                    outcomes.append(Outcome(call_id, record.position, record.stage, record.error_type, "already_scored",
                                            "the call is SCORED; nothing to do"))
                else:
                    pending.setdefault(call_id, []).append(record)
            producer = None if dry_run or not pending else self._producer()
            try:
                for call_id, group in sorted(pending.items()):
                    outcomes += self._requeue_call(connection, producer, call_id, group, counts.get(call_id, 0), dry_run)
            finally:
                if producer is not None:
                    producer.close(timeout=10)
        finally:
            connection.close()
        return outcomes

    def _producer(self) -> Any:
        from core.kafka import producer

        return producer(self.bootstrap, client_id="ccas-dlq-requeue")

    def _requeue_call(self, connection: Any, producer: Any, call_id: str, group: list[DeadLetterRecord], previous: int,
                      dry_run: bool) -> list[Outcome]:
        newest = max(group, key=lambda r: (r.failed_at, r.position))
        payload = newest.value.get("payload")
        carried = int(payload.get("requeue_count") or 0) if isinstance(payload, dict) else 0
        count = max(previous, carried) + 1
        try:
            value = requeued_value(newest, count)
        except schemas.SchemaError as error:
            return [Outcome(call_id, r.position, r.stage, r.error_type, "invalid", f"not a valid calls.raw value: {error}")
                    for r in group]
        outcomes = [Outcome(call_id, r.position, r.stage, r.error_type, "superseded", f"republished with {newest.position}")
                    for r in group if r is not newest]
        if dry_run:
            return [Outcome(call_id, newest.position, newest.stage, newest.error_type, "would_requeue",
                            f"to {TARGET_TOPIC}", count), *outcomes]
        try:
            with connection.cursor() as cursor:
                inserted = 0
                for record in group:
                    cursor.execute(
                        "INSERT INTO dlq_requeue (dlq_topic, dlq_partition, dlq_offset, call_id, stage, error_type, target_topic,"
                        " requeue_count, ingest_uuid, requested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (dlq_topic, dlq_partition, dlq_offset) DO NOTHING",
                        (record.topic, record.partition, record.offset, call_id, record.stage[:16], record.error_type[:128],
                         TARGET_TOPIC, count, value["ingest_uuid"], self.requested_by))
                    inserted += cursor.rowcount
                if inserted < len(group):  # a concurrent requeue got there first
                    connection.rollback()
                    return [Outcome(call_id, r.position, r.stage, r.error_type, "already_requeued") for r in group]
                producer.send(TARGET_TOPIC, key=call_id.encode(), value=json.dumps(value).encode()).get(timeout=30)
            connection.commit()
        except Exception:
            connection.rollback()
            raise
        log.info("requeued %s from %s to %s (requeue_count %d)", call_id, newest.position, TARGET_TOPIC, count)
        return [Outcome(call_id, newest.position, newest.stage, newest.error_type, "requeued", f"to {TARGET_TOPIC}", count,
                        value["ingest_uuid"]), *outcomes]
