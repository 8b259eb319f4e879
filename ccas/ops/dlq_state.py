"""What became of each dead letter: was it requeued (`dlq_requeue`), where is its call now (`call`, `scoring_result`), and
is it resolved.

Resolved — the rule behind `ccas dlq list --hide-resolved` and `GET /v1/dlq?hide_resolved=true` — means: the record's call
has status SCORED in `call` and at least one `scoring_result` row. How it got there does not matter (a requeue of this
record, a requeue of another record of the same call, a replay): a SCORED call has nothing left to do, and a requeue would
report it `already_scored`. The pipeline writes both rows in one transaction (pipeline/io/database.py `record_scores`), so
asking for both changes nothing in normal operation, but a call marked SCORED without a result stays in sight. A requeued
record whose call is not SCORED yet is not resolved; a record without a valid call_id or without a call row never is.

PostgreSQL is optional for a listing: when it is unset or unreachable, the records are listed with every state unknown
(None) and nothing is hidden, because nothing can be known to be resolved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg2

import schemas
from ccas.ops.dlq import DeadLetterRecord

CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class Requeue:
    """The `dlq_requeue` row of one dead letter: it went back to calls.raw as the call's requeue number `requeue_count`."""

    requeue_count: int
    requeued_at: datetime
    ingest_uuid: str
    requested_by: str


@dataclass(frozen=True)
class CallState:
    status: str | None  # None: no `call` row (a parse failure, or the call never reached EnrichCall)
    has_scoring_result: bool


NO_CALL = CallState(None, False)


def is_resolved(call_status: str | None, has_scoring_result: bool) -> bool:
    """The resolved rule of the module docstring."""
    return call_status == "SCORED" and has_scoring_result


@dataclass(frozen=True)
class RecordState:
    requeue: Requeue | None
    call: CallState

    @property
    def resolved(self) -> bool:
        return is_resolved(self.call.status, self.call.has_scoring_result)

    def fields(self) -> dict[str, Any]:
        requeue = self.requeue
        return {"requeued": requeue is not None,
                "requeue_count": requeue.requeue_count if requeue else None,
                "requeued_at": _iso(requeue.requeued_at) if requeue else None,
                "requeue_ingest_uuid": requeue.ingest_uuid if requeue else None,
                "requeued_by": requeue.requested_by if requeue else None,
                "call_status": self.call.status, "has_scoring_result": self.call.has_scoring_result,
                "resolved": self.resolved}


UNKNOWN_FIELDS: dict[str, Any] = dict.fromkeys(RecordState(None, NO_CALL).fields())


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def lookup(database_url: str, records: Sequence[DeadLetterRecord]) -> dict[str, RecordState]:
    """Each record's state, keyed by its position; raises psycopg2.Error when PostgreSQL cannot answer."""
    call_ids = sorted({str(r.call_id) for r in records if schemas.is_valid_call_id(r.call_id)})
    connection = psycopg2.connect(database_url, connect_timeout=CONNECT_TIMEOUT_S)
    try:
        connection.set_session(readonly=True)
        with connection.cursor() as cursor:
            # Requeue only records rows for valid call_ids, so selecting by call_id finds every row of these records.
            cursor.execute("SELECT dlq_topic, dlq_partition, dlq_offset, requeue_count, requeued_at, ingest_uuid::text,"
                           " requested_by FROM dlq_requeue WHERE call_id = ANY(%s)", (call_ids,))
            requeues = {f"{topic}:{partition}:{offset}": Requeue(count, at, ingest_uuid, by)
                        for topic, partition, offset, count, at, ingest_uuid, by in cursor.fetchall()}
            cursor.execute("SELECT call_id, status, EXISTS (SELECT 1 FROM scoring_result s WHERE s.call_id = call.call_id)"
                           " FROM call WHERE call_id = ANY(%s)", (call_ids,))
            calls = {call_id: CallState(status, has_result) for call_id, status, has_result in cursor.fetchall()}
    finally:
        connection.close()
    return {r.position: RecordState(requeues.get(r.position), calls.get(str(r.call_id), NO_CALL)) for r in records}


@dataclass(frozen=True)
class Listing:
    """Dead letters with their states; `states` is None (and `unknown_reason` says why) when PostgreSQL could not tell."""

    records: list[DeadLetterRecord]
    states: dict[str, RecordState] | None
    unknown_reason: str | None = None
    hidden: int = 0

    def state(self, record: DeadLetterRecord) -> RecordState | None:
        return None if self.states is None else self.states.get(record.position)

    def rows(self) -> list[dict[str, Any]]:
        rows = []
        for record in self.records:
            state = self.state(record)
            rows.append({**record.summary(), **(state.fields() if state else UNKNOWN_FIELDS)})
        return rows

    def without_resolved(self) -> Listing:
        if self.states is None:
            return self
        kept = [r for r in self.records if not self.states[r.position].resolved]
        return Listing(kept, self.states, self.unknown_reason, self.hidden + len(self.records) - len(kept))

    def warning(self, hide_resolved: bool) -> str | None:
        """One line for the operator when the state columns are unknown."""
        if self.unknown_reason is None:
            return None
        hidden = "; nothing hidden by hide-resolved" if hide_resolved else ""
        return f"requeue and call status unknown because {self.unknown_reason}{hidden}"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0].strip() if lines else type(error).__name__)[:200]


def annotate(records: list[DeadLetterRecord], database_url: str | None) -> Listing:
    """The records with their states, or with unknown states when PostgreSQL is unset or cannot answer (never raises for it)."""
    if not database_url:
        return Listing(records, None, "no PostgreSQL URL is set (CCAS_DATABASE_URL / --database-url)")
    try:
        return Listing(records, lookup(database_url, records))
    except psycopg2.OperationalError as error:
        return Listing(records, None, f"PostgreSQL is unreachable ({_first_line(error)})")
    except psycopg2.Error as error:
        return Listing(records, None, f"PostgreSQL could not answer ({_first_line(error)})")
