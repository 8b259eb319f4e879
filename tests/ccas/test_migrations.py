"""Alembic upgrade/downgrade on the real PostgreSQL, in a database of the test's own."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest

from ccas import db_admin
from tests.pipeline import e2e

pytestmark = pytest.mark.integration


@pytest.fixture
def scratch_db(stack_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty database on the stack's server; dropped afterwards."""
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"], migrate=False) as url:
        yield url


def _tables(url: str) -> set[str]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {row[0] for row in cursor.fetchall()}


def test_upgrade_constraints_and_downgrade(scratch_db: str) -> None:
    db_admin.upgrade(scratch_db)
    assert _tables(scratch_db) == {"alembic_version", "agent", "call", "audio_asset", "scoring_result",
                                   "ingestion_checkpoint", "ingested_recording", "dlq_requeue",
                                   "in_progress_recording", "transcript", "audit_log", "agent_scorecard",
                                   "console_user"}

    connection = psycopg2.connect(scratch_db)
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO call (call_id, started_at, agent_id, status) "
                       "VALUES ('100234567890123', '2026-11-25T09:58:00Z', '1234', 'PENDING_DOWNLOAD')")
        cursor.execute("INSERT INTO audio_asset (call_id, s3_key, sha256, codec, sample_rate, duration_seconds, size_bytes,"
                       " status) "
                       "VALUES ('100234567890123', 'raw/2026/11/25/100234567890123.wav', %s, 'mulaw', 8000, 106.2, 849660, "
                       "'READY')", ("ab" * 32,))
        for version, score in (("sc1.0.0+fx1.0.0", 81.5), ("sc1.1.0+fx1.0.0", 84.0)):
            cursor.execute("INSERT INTO scoring_result (call_id, score, model_version, details, latency_ms) "
                           "VALUES ('100234567890123', %s, %s, '{}', 900)", (score, version))
        cursor.execute("SELECT count(*) FROM scoring_result WHERE call_id = '100234567890123'")
        assert cursor.fetchone()[0] == 2

        with pytest.raises(psycopg2.errors.UniqueViolation, match="uq_scoring_result_call_model"):
            cursor.execute("INSERT INTO scoring_result (call_id, score, model_version) "
                           "VALUES ('100234567890123', 90, 'sc1.0.0+fx1.0.0')")
        with pytest.raises(psycopg2.errors.UniqueViolation, match="uq_audio_asset_call"):
            cursor.execute("INSERT INTO audio_asset (call_id, s3_key, sha256, status) VALUES "
                           "('100234567890123', 'raw/x.wav', %s, 'READY')", ("cd" * 32,))
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_call_status"):
            cursor.execute("INSERT INTO call (call_id, started_at, status) VALUES ('2', now(), 'COMPLETED')")
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_call_call_id_pattern"):
            cursor.execute("INSERT INTO call (call_id, started_at, status) VALUES ('../x', now(), 'SCORED')")
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_scoring_result_score_when_scorable"):
            cursor.execute("INSERT INTO scoring_result (call_id, score, model_version) VALUES ('100234567890123', NULL, 'v9')")
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_ingestion_checkpoint_single_row"):
            cursor.execute("INSERT INTO ingestion_checkpoint (id, last_polled_from, last_polled_to) VALUES (2, now(), now())")
        # The checkpoint is one row, moved by UPSERT.
        for _ in range(2):
            cursor.execute("INSERT INTO ingestion_checkpoint (last_polled_from, last_polled_to) VALUES (now(), now()) "
                           "ON CONFLICT (id) DO UPDATE SET last_polled_to = EXCLUDED.last_polled_to, updated_at = now()")
        cursor.execute("SELECT count(*) FROM ingestion_checkpoint")
        assert cursor.fetchone()[0] == 1
        # One transcript per (call, ASR model); confidence is a probability.
        transcript = ("INSERT INTO transcript (call_id, asr_model, language, s3_key, word_count, confidence) "
                      "VALUES ('100234567890123', %s, 'vi', 'transcripts/2026/11/25/x.json', 12, %s)")
        cursor.execute(transcript, ("whisper-base", 0.8))
        cursor.execute(transcript, ("whisper-small", None))
        with pytest.raises(psycopg2.errors.UniqueViolation, match="pk_transcript"):
            cursor.execute(transcript, ("whisper-base", 0.7))
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_transcript_confidence"):
            cursor.execute(transcript, ("other", 1.5))
        # A scorecard row per window, named by its dimension and granularity.
        scorecard = ("INSERT INTO agent_scorecard (dimension, dimension_key, granularity, window_start, window_end, time_zone, "
                     "pane_index, pane_timing, calls, scored_calls, criteria, dead_air_total_s, hold_total_s, model_versions) "
                     "VALUES (%s, 'A1', %s, '2026-12-01T00:00+07', '2026-12-02T00:00+07', 'Asia/Ho_Chi_Minh', 0, 'EARLY', 1, 1, "
                     "'{}', 0, 0, '{}')")
        cursor.execute(scorecard, ("agent", "day"))
        with pytest.raises(psycopg2.errors.UniqueViolation, match="pk_agent_scorecard"):
            cursor.execute(scorecard, ("agent", "day"))
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_agent_scorecard_dimension"):
            cursor.execute(scorecard, ("customer", "day"))
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_agent_scorecard_granularity"):
            cursor.execute(scorecard, ("agent", "week"))
        # The console's users: a role of three, an argon2id hash only; the criteria columns follow `details`.
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_console_user_role"):
            cursor.execute("INSERT INTO console_user (name, password_hash, role) VALUES ('ana', '$argon2id$x', 'root')")
        with pytest.raises(psycopg2.errors.CheckViolation, match="ck_console_user_hash_argon2id"):
            cursor.execute("INSERT INTO console_user (name, password_hash, role) VALUES ('ana', 'plain', 'admin')")
        cursor.execute("UPDATE scoring_result SET details = %s WHERE model_version = 'sc1.0.0+fx1.0.0'", (json.dumps(
            {"language": "vi", "breakdown": [{"criterion": "greeting", "applicable": True, "passed": False},
                                             {"criterion": "hold", "applicable": False, "passed": None},
                                             {"criterion": "closing", "applicable": True, "passed": True}]}),))
        cursor.execute("SELECT criteria_failed, criteria_passed, language FROM scoring_result"
                       " WHERE model_version = 'sc1.0.0+fx1.0.0'")
        assert cursor.fetchone() == (["greeting"], ["closing"], "vi")
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        indexes = {row[0] for row in cursor.fetchall()}
    connection.close()
    assert {"uq_audio_asset_call", "idx_call_status", "idx_scoring_result_created", "ix_agent_scorecard_key_time",
            "ix_call_scored_started"} <= indexes

    db_admin.downgrade(scratch_db)
    assert _tables(scratch_db) <= {"alembic_version"}
    with psycopg2.connect(scratch_db) as check, check.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM alembic_version")
        assert cursor.fetchone()[0] == 0


def _query(url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql)
        rows = cursor.fetchall()
    connection.close()
    return rows


def test_call_model_version_is_backfilled_with_the_latest_result_and_dropped_on_downgrade(scratch_db: str) -> None:
    db_admin.upgrade(scratch_db, "202612031200")
    connection = psycopg2.connect(scratch_db)
    connection.autocommit = True
    with connection.cursor() as cursor:
        for call_id, status in (("c1", "SCORED"), ("c2", "SCORED"), ("c3", "DOWNLOADED")):
            cursor.execute("INSERT INTO call (call_id, started_at, status) VALUES (%s, now(), %s)", (call_id, status))
        # c1 was scored with A, then re-scored with B (the newer row); c2 only with A; c3 not yet.
        for call_id, version, written in (("c1", "scA", "2026-12-01T08:00Z"), ("c1", "scB", "2026-12-02T08:00Z"),
                                          ("c2", "scA", "2026-12-01T09:00Z")):
            cursor.execute("INSERT INTO scoring_result (call_id, score, model_version, created_at, updated_at) "
                           "VALUES (%s, 80, %s, %s, %s)", (call_id, version, written, written))
    connection.close()
    db_admin.upgrade(scratch_db)
    assert _query(scratch_db, "SELECT call_id, model_version FROM call ORDER BY call_id") == \
        [("c1", "scB"), ("c2", "scA"), ("c3", None)]
    db_admin.downgrade(scratch_db, "202612031200")
    assert _query(scratch_db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'call' "
                              "AND column_name = 'model_version'") == [(0,)]
