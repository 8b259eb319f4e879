"""ASR engines are real: they hear only the VAD's speech, per channel, and every word lands at its time in the call."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from audio import dsp
from audio.wav import wav_bytes
from callgen import CallPlan, plan_call, render_call
from ccas.settings import whisper_model_dir
from scoring_service.asr import (
    ENGINE_RATE,
    PocketsphinxTranscriber,
    make_transcriber,
    parse_language_engines,
    segments_from_words,
    speech_track,
)
from scoring_service.scorer import ScoreFields, Scorer
from scoring_service.settings import ScoringSettings
from scoring_service.vad import ANALYSIS_RATE


@pytest.mark.slow
def test_pocketsphinx_transcribes_stereo_speech_segments() -> None:
    plan = plan_call(77, duration_s=20, language="en", stereo=True)
    transcriber = make_transcriber("pocketsphinx")
    assert isinstance(transcriber, PocketsphinxTranscriber)
    scorer = Scorer(ScoringSettings(asr_engine="pocketsphinx"), transcriber=transcriber)
    result = scorer.score_file(io.BytesIO(wav_bytes(render_call(plan), 8000, "ulaw")), ScoreFields())
    assert result.transcript_source == "pocketsphinx"
    assert result.metrics["transcript_segments"] >= 2
    by_id = {c.criterion: c for c in result.breakdown}
    assert by_id["greeting"].applicable and by_id["prohibited_words"].applicable
    # The words come from the engine's English dictionary and land inside the truth's speech, per speaker.
    segments = transcriber.transcribe(
        {"agent": _signal(plan, 0), "customer": _signal(plan, 1)},
        {"agent": _truth(plan, "agent"), "customer": _truth(plan, "customer")},
    ).segments
    assert {s.speaker for s in segments} == {"agent", "customer"}
    assert all(s.text and s.text == s.text.lower() for s in segments)
    assert sum(len(s.text.split()) for s in segments) >= 8


def _signal(plan: CallPlan, column: int) -> np.ndarray:
    return dsp.to_float(render_call(plan)[:, column])


def _truth(plan: CallPlan, speaker: str) -> list[tuple[float, float]]:
    return [(s["start_s"], s["end_s"]) for s in plan.truth["segments"] if s["kind"] == "speech" and s["speaker"] == speaker]


def test_faster_whisper_needs_a_local_model_and_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="holds no CTranslate2 model.bin.*scripts/models.sh"):
        make_transcriber("faster-whisper", tmp_path / "no-such-model")
    assert make_transcriber("none") is None
    with pytest.raises(ValueError, match="unknown ASR engine"):
        make_transcriber("cloud")
    with pytest.raises(ValueError, match="bad language engine 'fr=viet-asr'"):
        make_transcriber("pocketsphinx", language_engines="fr=viet-asr")
    assert parse_language_engines(" vi=viet-asr, en=faster-whisper ") == {"vi": "viet-asr", "en": "faster-whisper"}
    assert parse_language_engines("none") == {}


def test_speech_track_maps_engine_time_back_to_call_time() -> None:
    x = np.zeros(20 * ANALYSIS_RATE, dtype=np.float32)
    track = speech_track("agent", x, [(2.0, 3.0), (3.3, 4.0), (10.0, 11.5)])
    # 2.0-3.0 and 3.3-4.0 are one utterance (gap < 0.6 s); each is padded by 0.15 s for the word edges.
    assert [(round(a, 2), round(b, 2), round(c, 2)) for a, b, c in track.chunks] == [(0.0, 1.85, 2.3), (2.7, 9.85, 1.8)]
    assert len(track.audio) == round((2.3 + 0.4 + 1.8 + 0.4) * ENGINE_RATE)
    words = [(0.2, 0.6, " Hello", 0.91), (0.7, 1.1, "there", 0.5), (2.9, 3.4, "bye", None), (4.6, 4.8, " ", 0.2)]
    segments = segments_from_words(track, words)
    assert [(s.start_s, s.end_s, s.text, s.speaker) for s in segments] == [
        (2.05, 2.95, "Hello there", "agent"),
        (10.05, 10.55, "bye", "agent"),
    ]
    assert [(w.start_s, w.end_s, w.confidence) for w in segments[0].words] == [(2.05, 2.45, 0.91), (2.55, 2.95, 0.5)]
    # A word the decoder places in the pause between utterances is clamped to its utterance, never to the gap.
    clamped = segments_from_words(track, [(2.5, 2.6, "um", 0.3)])
    assert clamped[0].start_s == clamped[0].end_s == round(1.85 + 2.3, 3)


@pytest.mark.slow
def test_faster_whisper_scores_with_words_heard_where_they_were_said() -> None:
    model = whisper_model_dir()
    assert (model / "model.bin").is_file(), f"no Whisper model in {model}: run `bash scripts/models.sh`"
    plan = plan_call(77, duration_s=25, language="en", stereo=True)
    scorer = Scorer(ScoringSettings(asr_engine="faster-whisper", asr_model_dir=model))
    result = scorer.score_file(io.BytesIO(wav_bytes(render_call(plan), 8000, "ulaw")), ScoreFields(language=None))
    assert result.transcript_source == "faster-whisper" and result.language == "en"
    transcript = result.transcript
    assert transcript is not None and transcript.asr_model == "whisper-base" and transcript.language_source == "detected"
    assert transcript.word_count >= 15 and transcript.confidence is not None and 0.3 < transcript.confidence <= 1.0
    by_id = {c.criterion: c for c in result.breakdown}
    assert by_id["greeting"].applicable and by_id["prohibited_words"].applicable
    truth = {who: _truth(plan, who) for who in ("agent", "customer")}
    for segment in transcript.segments:
        for word in segment.words:
            # Each word lies in (or within 0.3 s of) the truth speech of the speaker whose channel it came from.
            assert any(s - 0.3 <= word.start_s and word.end_s <= e + 0.3 for s, e in truth[segment.speaker]), word
