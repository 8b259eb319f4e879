"""PostgreSQL writes of the pipeline: idempotent, batched upserts that never move a call's status backwards.

Status machine (docs/design.md): PENDING_DOWNLOAD → DOWNLOADED → SCORED; ERROR may return to PENDING_DOWNLOAD. A replayed message
(after a crash, or a requeue) runs the same statements again and leaves the same rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions
from psycopg2.extras import execute_values

from pipeline.model import EnrichedCall, ScoredCall, StoredAudio

log = logging.getLogger(__name__)
T = TypeVar("T")

_UPSERT_AGENTS = """
INSERT INTO agent (agent_id, full_name) VALUES %s
ON CONFLICT (agent_id) DO UPDATE SET full_name = COALESCE(EXCLUDED.full_name, agent.full_name), updated_at = now()
"""
_UPSERT_CALLS = """
INSERT INTO call (call_id, started_at, ended_at, duration_seconds, agent_id, customer_key, customer_number_enc, skill, service,
                  switch_call_id, status)
VALUES %s
ON CONFLICT (call_id) DO UPDATE SET
  started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at, duration_seconds = EXCLUDED.duration_seconds,
  agent_id = EXCLUDED.agent_id, customer_key = EXCLUDED.customer_key,
  customer_number_enc = COALESCE(EXCLUDED.customer_number_enc, call.customer_number_enc),
  skill = EXCLUDED.skill, service = EXCLUDED.service, switch_call_id = EXCLUDED.switch_call_id,
  status = CASE WHEN call.status = 'ERROR' THEN 'PENDING_DOWNLOAD' ELSE call.status END,
  error_reason = CASE WHEN call.status = 'ERROR' THEN NULL ELSE call.error_reason END,
  updated_at = now()
RETURNING call_id, status
"""
_UPSERT_ASSETS = """
INSERT INTO audio_asset
  (call_id, s3_key, s3_version_id, sha256, codec, sample_rate, channels, duration_seconds, size_bytes, status)
VALUES %s
ON CONFLICT (call_id) DO UPDATE SET
  s3_key = EXCLUDED.s3_key, s3_version_id = EXCLUDED.s3_version_id, sha256 = EXCLUDED.sha256, codec = EXCLUDED.codec,
  sample_rate = EXCLUDED.sample_rate, channels = EXCLUDED.channels, duration_seconds = EXCLUDED.duration_seconds,
  size_bytes = EXCLUDED.size_bytes, status = 'READY', updated_at = now()
"""
_MARK_DOWNLOADED = """
UPDATE call SET status = 'DOWNLOADED', error_reason = NULL, updated_at = now()
WHERE call_id = ANY(%s) AND status IN ('PENDING_DOWNLOAD', 'ERROR')
"""
_UPSERT_SCORES = """
INSERT INTO scoring_result (call_id, score, scorable, reason, model_version, details, latency_ms, end_to_end_ms) VALUES %s
ON CONFLICT (call_id, model_version) DO UPDATE SET
  score = EXCLUDED.score, scorable = EXCLUDED.scorable, reason = EXCLUDED.reason, details = EXCLUDED.details,
  latency_ms = EXCLUDED.latency_ms, end_to_end_ms = LEAST(scoring_result.end_to_end_ms, EXCLUDED.end_to_end_ms),
  updated_at = now()
"""
_UPSERT_TRANSCRIPTS = """
INSERT INTO transcript (call_id, asr_model, language, s3_key, word_count, confidence) VALUES %s
ON CONFLICT (call_id, asr_model) DO UPDATE SET
  language = EXCLUDED.language, s3_key = EXCLUDED.s3_key, word_count = EXCLUDED.word_count,
  confidence = EXCLUDED.confidence, updated_at = now()
"""
# The result just written becomes the call's current one (call.model_version), for the live job and the re-score alike.
_MARK_SCORED = """
UPDATE call SET status = 'SCORED', model_version = data.model_version, error_reason = NULL, updated_at = now()
FROM (VALUES %s) AS data (call_id, model_version)
WHERE call.call_id = data.call_id
"""
# Scored calls whose current result is not of the target version, oldest first (docs/analytics.md, Re-scoring).
_RESCORE_CANDIDATES = """
SELECT call_id FROM call
WHERE status = 'SCORED' AND model_version IS DISTINCT FROM %(target)s
  AND (%(since)s::timestamptz IS NULL OR started_at >= %(since)s) AND (%(until)s::timestamptz IS NULL OR started_at < %(until)s)
  AND (%(agent_id)s::text IS NULL OR agent_id = %(agent_id)s)
ORDER BY started_at, call_id
"""
_RESCORE_AUDIO = """
SELECT c.call_id, c.started_at, c.ended_at, c.duration_seconds, c.agent_id, c.customer_key, c.skill, c.service,
       c.switch_call_id, c.model_version, a.s3_key, a.s3_version_id, a.sha256, a.size_bytes, a.codec, a.sample_rate,
       a.channels, a.duration_seconds, a.status, a.updated_at
FROM call c LEFT JOIN audio_asset a ON a.call_id = c.call_id
WHERE c.call_id = ANY(%(call_ids)s) AND c.status = 'SCORED' AND c.model_version IS DISTINCT FROM %(target)s
"""
RESCORE_AUDIO_COLUMNS = (
    "call_id", "started_at", "ended_at", "duration_seconds", "agent_id", "customer_key", "skill", "service", "switch_call_id",
    "model_version", "s3_key", "s3_version_id", "sha256", "size_bytes", "codec", "sample_rate", "channels",
    "audio_duration_seconds", "audio_status", "stored_at",
)
SCORECARD_COLUMNS = (
    "dimension", "dimension_key", "granularity", "window_start", "window_end", "time_zone", "pane_index", "pane_timing",
    "calls", "scored_calls", "score_mean", "score_min", "score_max", "score_p50", "score_p90", "criteria", "dead_air_total_s",
    "hold_total_s", "talk_listen_ratio_mean", "customer_sentiment_mean", "model_versions",
)
_SCORECARD_KEY = ("dimension", "dimension_key", "granularity", "window_start")
# A window's row only moves forward: a pane retried or delivered out of order never replaces a later one.
_UPSERT_SCORECARDS = (
    f"INSERT INTO agent_scorecard ({', '.join(SCORECARD_COLUMNS)}) VALUES %s\n"
    f"ON CONFLICT ({', '.join(_SCORECARD_KEY)}) DO UPDATE SET\n  "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in SCORECARD_COLUMNS if c not in _SCORECARD_KEY)
    + ", updated_at = now()\nWHERE agent_scorecard.pane_index <= EXCLUDED.pane_index"
)
_MARK_ERROR = """
UPDATE call SET status = 'ERROR', error_reason = data.reason, updated_at = now()
FROM (VALUES %s) AS data (call_id, reason)
WHERE call.call_id = data.call_id AND call.status <> 'SCORED'
"""


class Database:
    """One connection per DoFn instance; each method is one transaction; a dropped connection is reopened once."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._connection: psycopg2.extensions.connection | None = None

    def _connect(self) -> psycopg2.extensions.connection:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg2.connect(self.url, connect_timeout=10, application_name="ccas-pipeline")
        return self._connection

    def _transaction(self, work: Callable[[Any], T]) -> T:
        for attempt in (1, 2):
            connection = self._connect()
            try:
                with connection, connection.cursor() as cursor:
                    return work(cursor)
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if attempt == 2:
                    raise
                log.warning("database connection lost; reconnecting once")
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None and not self._connection.closed:
            self._connection.close()
        self._connection = None

    def upsert_calls(self, calls: Sequence[EnrichedCall]) -> dict[str, str]:
        """Agents and calls (PENDING_DOWNLOAD unless further along); returns each call's status after the upsert."""
        # One row per key: ON CONFLICT cannot touch the same row twice in one statement.
        calls = list({c.call_id: c for c in calls}.values())
        agents = {c.agent_id: (c.agent_id, c.agent_name) for c in calls if c.agent_id}
        # The customer as enrich left it: the keyed hash, and the encrypted number when the job stores one. A requeued call
        # comes back with its key but without the number (pipeline/transforms/enrich.py), so its stored copy is kept.
        rows = [(c.call_id, c.started_at, c.ended_at, c.duration, c.agent_id, c.customer_key, c.customer_number_enc, c.skill,
                 c.service, c.switch_call_id, "PENDING_DOWNLOAD") for c in calls]

        def work(cursor: Any) -> dict[str, str]:
            if agents:
                execute_values(cursor, _UPSERT_AGENTS, [agents[key] for key in sorted(agents)])
            result = execute_values(cursor, _UPSERT_CALLS, rows, fetch=True)
            return dict(result)

        return self._transaction(work)

    def record_assets(self, assets: Sequence[StoredAudio]) -> None:
        assets = list({a.call_id: a for a in assets}.values())
        rows = [(a.call_id, a.s3_key, a.s3_version_id, a.sha256, a.codec, a.sample_rate, a.channels, a.duration_s, a.size_bytes,
                 "READY") for a in assets]

        def work(cursor: Any) -> None:
            execute_values(cursor, _UPSERT_ASSETS, rows)
            cursor.execute(_MARK_DOWNLOADED, ([a.call_id for a in assets],))

        self._transaction(work)

    def record_scores(self, scored: Sequence[ScoredCall], end_to_end_ms: dict[str, int | None]) -> None:
        scored = list({(s.call_id, s.model_version): s for s in scored}.values())
        rows = [(s.call_id, s.score, s.scorable, s.reason, s.model_version, json.dumps(s.response), s.latency_ms,
                 end_to_end_ms.get(s.call_id)) for s in scored]

        transcripts = [(s.call_id, t["asr_model"], t.get("language"), t["s3_key"], t["word_count"], t.get("confidence"))
                       for s in scored if (t := s.transcript)]

        def work(cursor: Any) -> None:
            execute_values(cursor, _UPSERT_SCORES, rows)
            if transcripts:
                execute_values(cursor, _UPSERT_TRANSCRIPTS, transcripts)
            # One row per call: the last result of the batch is the current one.
            execute_values(cursor, _MARK_SCORED, list({s.call_id: (s.call_id, s.model_version) for s in scored}.values()))

        self._transaction(work)

    def rescore_candidates(self, target: str, since: datetime | None = None, until: datetime | None = None,
                           agent_id: str | None = None) -> list[str]:
        """Scored calls started in [since, until) (of `agent_id`) whose current model_version is not `target`."""
        params = {"target": target, "since": since, "until": until, "agent_id": agent_id}

        def work(cursor: Any) -> list[str]:
            cursor.execute(_RESCORE_CANDIDATES, params)
            return [row[0] for row in cursor.fetchall()]

        return self._transaction(work)

    def rescore_audio(self, call_ids: Sequence[str], target: str) -> list[dict[str, Any]]:
        """The stored call and its audio_asset (None columns when it has none) of each call still to re-score to `target`;
        a call re-scored meanwhile (by another run) is left out."""
        def work(cursor: Any) -> list[dict[str, Any]]:
            cursor.execute(_RESCORE_AUDIO, {"call_ids": list(call_ids), "target": target})
            return [dict(zip(RESCORE_AUDIO_COLUMNS, row, strict=True)) for row in cursor.fetchall()]

        return self._transaction(work)

    def call_statuses(self, call_ids: Sequence[str]) -> dict[str, str]:
        """The current status of each call that has a row."""
        def work(cursor: Any) -> dict[str, str]:
            cursor.execute("SELECT call_id, status FROM call WHERE call_id = ANY(%s)", (list(call_ids),))
            return dict(cursor.fetchall())

        return self._transaction(work)

    def mark_errors(self, reasons: dict[str, str]) -> None:
        if not reasons:
            return
        self._transaction(lambda cursor: execute_values(cursor, _MARK_ERROR, sorted(reasons.items())))

    def upsert_scorecards(self, rows: Sequence[dict[str, Any]]) -> None:
        """agent_scorecard rows (pipeline/transforms/scorecard.py), each window's highest pane of the batch."""
        latest: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in rows:
            key = tuple(row[c] for c in _SCORECARD_KEY)
            if key not in latest or latest[key]["pane_index"] <= row["pane_index"]:
                latest[key] = row
        values = [tuple(json.dumps(row[c]) if c == "criteria" else row[c] for c in SCORECARD_COLUMNS)
                  for _, row in sorted(latest.items())]
        if values:
            self._transaction(lambda cursor: execute_values(cursor, _UPSERT_SCORECARDS, values))
