"""The poller's PostgreSQL state: the single-row checkpoint, the dedup table of published inums and the recordings tracked
while in progress (psycopg2, no ORM)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import psycopg2
import psycopg2.extras

from avaya_source.records import Recording
from avaya_source.tracking import Tracked, TrackingChange

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Published:
    """A row of ingested_recording: what dedup needs to know about a call already on the topic."""

    call_id: str
    switch_call_id: str | None
    started_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, recording: Recording) -> Published:
        return cls(recording.call_id, recording.switch_call_id or None, recording.started_at, recording.ended_at)


class IngestStore:
    """One connection, reopened after a failure; every method is one short transaction."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: psycopg2.extensions.connection | None = None

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg2.connect(self.dsn, connect_timeout=5, application_name="ccas-poller")
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def _run(self, work):  # noqa: ANN001, ANN202 - a callable taking a cursor
        conn = self._connection()
        try:
            with conn, conn.cursor() as cur:  # commits on success, rolls back on error
                return work(cur)
        except psycopg2.Error:
            self.close()  # a broken connection is reopened on the next call
            raise

    def checkpoint(self) -> tuple[datetime, datetime] | None:
        def work(cur):  # noqa: ANN001, ANN202
            cur.execute("SELECT last_polled_from, last_polled_to FROM ingestion_checkpoint WHERE id = 1")
            return cur.fetchone()

        row = self._run(work)
        return (row[0], row[1]) if row else None

    def known(self, call_ids: Iterable[str]) -> set[str]:
        ids = list(call_ids)
        if not ids:
            return set()

        def work(cur):  # noqa: ANN001, ANN202
            cur.execute("SELECT call_id FROM ingested_recording WHERE call_id = ANY(%s)", (ids,))
            return {row[0] for row in cur.fetchall()}

        return self._run(work)

    def tracked(self) -> list[Tracked]:
        """Every recording tracked as in progress, oldest start first."""

        def work(cur):  # noqa: ANN001, ANN202
            cur.execute(
                "SELECT call_id, started_at, first_seen_at, last_seen_at, switch_call_id FROM in_progress_recording"
                " ORDER BY started_at, call_id"
            )
            return [Tracked(*row) for row in cur.fetchall()]

        return self._run(work)

    def commit_window(
        self,
        published: list[Published],
        window_start: datetime,
        window_end: datetime,
        tracking: TrackingChange | None = None,
    ) -> int:
        """Record published calls, update the tracking of recordings in progress and move the checkpoint, atomically; the
        checkpoint never moves backwards (backfills)."""

        def work(cur):  # noqa: ANN001, ANN202
            inserted = _insert(cur, published)
            _untrack(cur, {p.call_id for p in published} | (tracking.dropped if tracking else set()))
            if tracking is not None:
                _track(cur, tracking)
            cur.execute(
                """
                INSERT INTO ingestion_checkpoint (id, last_polled_from, last_polled_to, updated_at)
                VALUES (1, %s, %s, now())
                ON CONFLICT (id) DO UPDATE
                   SET last_polled_from = EXCLUDED.last_polled_from,
                       last_polled_to = EXCLUDED.last_polled_to,
                       updated_at = now()
                 WHERE ingestion_checkpoint.last_polled_to <= EXCLUDED.last_polled_to
                """,
                (window_start, window_end),
            )
            return inserted

        return self._run(work)

    def mark_published(self, published: list[Published]) -> int:
        """Insert rows found on the topic (reconciliation) and stop tracking those calls; returns how many were missing."""

        def work(cur):  # noqa: ANN001, ANN202
            inserted = _insert(cur, published)
            _untrack(cur, {p.call_id for p in published})
            return inserted

        return self._run(work)


def _insert(cur, published: list[Published]) -> int:  # noqa: ANN001
    if not published:
        return 0
    rows = psycopg2.extras.execute_values(
        cur,
        """
        INSERT INTO ingested_recording (call_id, switch_call_id, started_at, ended_at)
        VALUES %s ON CONFLICT (call_id) DO NOTHING RETURNING call_id
        """,
        [(p.call_id, p.switch_call_id, p.started_at, p.ended_at) for p in published],
        page_size=500,
        fetch=True,
    )
    return len(rows)


def _untrack(cur, call_ids: set[str]) -> None:  # noqa: ANN001
    if call_ids:
        cur.execute("DELETE FROM in_progress_recording WHERE call_id = ANY(%s)", (sorted(call_ids),))


def _track(cur, change: TrackingChange) -> None:  # noqa: ANN001
    if not change.seen:
        return
    assert change.seen_at is not None, "a change with recordings seen says when"
    psycopg2.extras.execute_values(
        cur,
        """
        INSERT INTO in_progress_recording (call_id, switch_call_id, started_at, first_seen_at, last_seen_at)
        VALUES %s ON CONFLICT (call_id) DO UPDATE
           SET last_seen_at = GREATEST(in_progress_recording.last_seen_at, EXCLUDED.last_seen_at)
        """,
        [(r.call_id, r.switch_call_id or None, r.started_at, change.seen_at, change.seen_at) for r in change.seen],
        page_size=500,
    )
