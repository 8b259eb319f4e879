"""What the re-score makes of a stored call: the StoredAudio ScoreCall takes (read back from S3, flagged as a re-score, so its
result has no end-to-end latency), or a dead letter for scoring.results.dlq when there is no audio to score."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

import schemas
from pipeline.model import DeadLetter, ScoredCall, StoredAudio
from pipeline.transforms.rescore import RESCORE_SOURCE, stored_audio_of
from pipeline.transforms.write import dead_letter_value

TARGET = "sc2.0.0+fx1.1.0"


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "call_id": "100234567890123", "started_at": datetime(2026, 12, 1, 8, tzinfo=UTC),
        "ended_at": datetime(2026, 12, 1, 8, 2, tzinfo=UTC), "duration_seconds": Decimal("120.5"), "agent_id": "1234",
        "customer_key": "hk1:0123456789abcdef0123456789abcdef", "skill": "billing", "service": "VDN 5001",
        "switch_call_id": "00012A3F", "model_version": "sc1.1.0+fx1.1.0", "s3_key": "raw/2026/12/01/100234567890123.wav",
        "s3_version_id": "v1", "sha256": "ab" * 32, "size_bytes": 1928044, "codec": "mulaw", "sample_rate": 8000,
        "channels": 1, "audio_duration_seconds": Decimal("120.5"), "audio_status": "READY",
        "stored_at": datetime(2026, 12, 1, 8, 3, tzinfo=UTC),
    }
    return {**base, **changes}


def test_a_stored_call_becomes_the_audio_scorecall_reads_from_s3() -> None:
    audio = stored_audio_of(row(), TARGET)
    assert isinstance(audio, StoredAudio)
    assert (audio.s3_key, audio.s3_version_id, audio.size_bytes, audio.duration_s) == \
        ("raw/2026/12/01/100234567890123.wav", "v1", 1928044, 120.5)
    assert (audio.call.call_id, audio.call.agent_id, audio.call.skill, audio.call.duration) == \
        ("100234567890123", "1234", "billing", 120.5)
    assert audio.call.started_at == "2026-12-01T08:00:00+00:00" and audio.source == RESCORE_SOURCE and audio.rescore


def test_a_rescored_result_has_no_end_to_end_latency_and_a_live_one_has() -> None:
    audio = stored_audio_of(row(), TARGET)
    assert isinstance(audio, StoredAudio)
    scored = ScoredCall(audio, 80.0, True, None, TARGET, 900, [], scored_at="2026-12-03T15:00:00+00:00")
    assert scored.end_to_end_ms is None
    live = ScoredCall(audio.__class__(**{**audio.__dict__, "rescore": False}), 80.0, True, None, TARGET, 900, [],
                      scored_at="2026-12-01T08:02:30+00:00")
    assert live.end_to_end_ms == 30_000
    message = {"call_id": audio.call_id, "score": 80.0, "scorable": True, "reason": None, "model_version": TARGET,
               "latency_ms": 900, "end_to_end_ms": None, "breakdown": [], "transcript_s3_key": None,
               "event_ts": "2026-12-03T15:00:00+00:00", "ingest_uuid": "0b7e1f57-6c1e-4c38-9a53-1f0f5e4f2f0a"}
    schemas.validate("scoring.results", message)


@pytest.mark.parametrize("changes", [{"s3_key": None, "audio_status": None}, {"audio_status": "MISSING"},
                                     {"audio_status": "ERROR"}])
def test_a_call_without_ready_audio_is_a_score_dead_letter_with_its_reason(changes: dict[str, Any]) -> None:
    letter = stored_audio_of(row(**changes), TARGET)
    assert isinstance(letter, DeadLetter)
    assert (letter.stage, letter.error_type, letter.topic, letter.call_id, letter.retries) == \
        ("score", "AudioMissing", "scoring.results.dlq", "100234567890123", 0)
    assert "no READY audio_asset" in letter.error
    value = dead_letter_value(letter)
    assert value["source_topic"] == "rescore"
    assert value["payload"]["rescore_model_version"] == TARGET and value["payload"]["other_parties"] is None
    schemas.validate("scoring.results.dlq", {**value, "event_ts": "2026-12-03T15:00:00+00:00",
                                             "ingest_uuid": "0b7e1f57-6c1e-4c38-9a53-1f0f5e4f2f0a"})
