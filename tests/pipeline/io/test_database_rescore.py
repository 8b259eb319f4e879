"""The re-score's questions to the real PostgreSQL: which scored calls are still to re-score (filters, version, status), what
they hold (the audio_asset, or none), and the writer's call.model_version (the last result written is the current one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from pipeline.io.database import Database
from pipeline.model import ScoredCall
from pipeline.transforms.rescore import stored_audio_of
from tests.pipeline import e2e

A, B = "scA+fx1", "scB+fx1"
CALLS = [  # call_id, started_at, agent, status, current version, has audio
    ("c1", "2026-12-01T08:00Z", "1234", "SCORED", A, True),
    ("c2", "2026-12-01T09:00Z", "1234", "SCORED", A, False),
    ("c3", "2026-12-01T10:00Z", "5678", "SCORED", A, True),
    ("c4", "2026-12-01T11:00Z", "1234", "SCORED", B, True),  # already at the target
    ("c5", "2026-12-01T12:00Z", "1234", "ERROR", None, True),  # never scored: the live job's, not the re-score's
    ("c6", "2026-12-02T08:00Z", "1234", "SCORED", A, True),
]


@pytest.fixture
def database_url(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        for call_id, started, agent, status, version, audio in CALLS:
            e2e.execute(url, "INSERT INTO call (call_id, started_at, ended_at, agent_id, status, model_version) "
                             "VALUES (%s, %s, %s::timestamptz + interval '2 minutes', %s, %s, %s)",
                        (call_id, started, started, agent, status, version))
            if audio:
                e2e.execute(url, "INSERT INTO audio_asset (call_id, s3_key, sha256, size_bytes, status) "
                                 "VALUES (%s, %s, %s, 1000, 'READY')", (call_id, f"raw/2026/12/01/{call_id}.wav", "ab" * 32))
        yield url


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_candidates_are_scored_calls_of_another_version_within_the_filters(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert db.rescore_candidates(B) == ["c1", "c2", "c3", "c6"], "oldest first; not c4 (at B) nor c5 (not scored)"
        assert db.rescore_candidates(B, since=utc("2026-12-01T09:00"), until=utc("2026-12-02T08:00")) == ["c2", "c3"]
        assert db.rescore_candidates(B, agent_id="1234") == ["c1", "c2", "c6"]
        assert db.rescore_candidates(A) == ["c4"]
    finally:
        db.close()


def test_stored_audio_of_each_candidate_and_a_dead_letter_without_audio(database_url: str) -> None:
    db = Database(database_url)
    try:
        rows = {row["call_id"]: row for row in db.rescore_audio(["c1", "c2", "c4", "c5", "nope"], B)}
    finally:
        db.close()
    assert sorted(rows) == ["c1", "c2"], "c4 is at the target already, c5 not scored, nope unknown"
    assert stored_audio_of(rows["c1"], B).s3_key == "raw/2026/12/01/c1.wav"
    assert stored_audio_of(rows["c2"], B).error_type == "AudioMissing"


def test_the_last_result_written_is_the_calls_current_version(database_url: str) -> None:
    db = Database(database_url)
    try:
        rows = {row["call_id"]: row for row in db.rescore_audio(["c1", "c3"], B)}
        audio, other = stored_audio_of(rows["c1"], B), stored_audio_of(rows["c3"], B)
        db.record_scores([ScoredCall(audio, 90.0, True, None, B, 10, [], {}, "2026-12-03T00:00:00+00:00"),
                          ScoredCall(other, 70.0, True, None, B, 10, [], {}, "2026-12-03T00:00:00+00:00")],
                         {audio.call_id: None, other.call_id: None})
        assert db.rescore_candidates(B) == ["c2", "c6"], "a re-scored call is not selected again"
    finally:
        db.close()
    assert e2e.query(database_url, "SELECT call_id, status, model_version FROM call WHERE call_id IN ('c1', 'c3') "
                                   "ORDER BY call_id") == [("c1", "SCORED", B), ("c3", "SCORED", B)]
    assert e2e.query(database_url, "SELECT model_version, end_to_end_ms FROM scoring_result WHERE call_id = 'c1'") == \
        [(B, None)]
