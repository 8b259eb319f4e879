"""A mono call scored with speaker roles: two-party metrics applicable when the roles are confident, N/A with the reason when
not, and the transcript's words given to the party that said them."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest

from audio.wav import wav_bytes
from callgen import CallPlan, plan_call, render_call
from ccas.settings import voice_encoder_weights
from scoring_service.features import MONO_REASON
from scoring_service.mono import OVERLAP_REASON
from scoring_service.schemas import ScoreResponse, TranscriptSegment
from scoring_service.scorer import ScoreFields, Scorer
from scoring_service.settings import ScoringSettings
from scoring_service.speakers import ROLE_CONFIDENCE_GATE

pytestmark = pytest.mark.slow

WEIGHTS = voice_encoder_weights()
SEED, DURATION_S = 7001, 97.0  # English: an en-us woman agent and an en-us+m3 man, the agent greets first


def _score(plan: CallPlan, speaker_model: Path | None) -> ScoreResponse:
    assert speaker_model is None or speaker_model.is_file(), f"no voice encoder at {speaker_model}: run `bash scripts/models.sh`"
    scorer = Scorer(ScoringSettings(asr_engine="none", speaker_model=speaker_model))
    # What a mono ASR gives: the words and their times, no speaker.
    heard = [
        TranscriptSegment(start_s=s["start_s"], end_s=s["end_s"], text=s["text"])
        for s in plan.truth["segments"]
        if s["kind"] == "speech" and not s["truncated"]
    ]
    body = io.BytesIO(wav_bytes(render_call(plan), 8000, "ulaw"))
    return scorer.score_file(body, ScoreFields(call_id="mono1", transcript=heard, language=plan.language))


def _criteria(result: ScoreResponse) -> dict:
    return {c.criterion: c for c in result.breakdown}


def test_confident_roles_make_talk_metrics_applicable_on_mono() -> None:
    plan = plan_call(SEED, duration_s=DURATION_S, language="en", stereo=False)
    result = _score(plan, WEIGHTS)
    m, by_id = result.metrics, _criteria(result)
    assert m["speaker_roles_confidence"] >= ROLE_CONFIDENCE_GATE
    # Overlapping speech is heard as one voice on mono, so each party's talk time may miss up to the overlap (+0.5 s).
    for talk in ("agent_talk_s", "customer_talk_s"):
        truth = plan.truth[talk]
        assert abs(m[talk] - truth) <= plan.truth["overtalk_total_s"] + 0.5, (talk, m[talk], truth)
    assert by_id["talk_listen_ratio"].applicable and by_id["agent_monologue"].applicable
    assert by_id["response_time"].applicable
    assert not by_id["overtalk"].applicable and by_id["overtalk"].reason == OVERLAP_REASON
    assert not by_id["agent_interruptions"].applicable
    # The customer's lines no longer count as the agent's: no empathy phrase from "Okay I understand".
    assert m["empathy_count"] == int(plan.truth["phrases"]["empathy"])
    assert m["customer_sentiment_mean"] is not None, "the customer's turns are known, so is their sentiment"


def test_without_a_voice_encoder_or_a_second_voice_mono_stays_not_applicable() -> None:
    plan = plan_call(SEED, duration_s=DURATION_S, language="en", stereo=False)
    plain = _criteria(_score(plan, None))
    assert not plain["talk_listen_ratio"].applicable and plain["talk_listen_ratio"].reason == MONO_REASON
    # Only the agent speaks: one voice, so no roles to trust.
    alone = dataclasses.replace(plan, utterances=tuple(u for u in plan.utterances if u.speaker == "agent"))
    result = _score(alone, WEIGHTS)
    assert result.metrics["speaker_roles_confidence"] < ROLE_CONFIDENCE_GATE
    reason = _criteria(result)["talk_listen_ratio"].reason
    assert reason is not None and reason.startswith("mono recording: speaker roles uncertain (confidence")
