"""The pocketsphinx backend is a real engine: it decodes each VAD speech segment into timed, speaker-labelled text."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from audio import dsp
from audio.wav import wav_bytes
from callgen import CallPlan, plan_call, render_call
from scoring_service.asr import PocketsphinxTranscriber, make_transcriber
from scoring_service.scorer import ScoreFields, Scorer
from scoring_service.settings import ScoringSettings


@pytest.mark.slow
def test_pocketsphinx_transcribes_stereo_speech_segments() -> None:
    plan = plan_call(77, duration_s=20, language="en", stereo=True)
    transcriber = make_transcriber("pocketsphinx")
    assert isinstance(transcriber, PocketsphinxTranscriber)
    scorer = Scorer(ScoringSettings(asr="pocketsphinx"), transcriber=transcriber)
    result = scorer.score_file(io.BytesIO(wav_bytes(render_call(plan), 8000, "ulaw")), ScoreFields())
    assert result.transcript_source == "pocketsphinx"
    assert result.metrics["transcript_segments"] >= 2
    by_id = {c.criterion: c for c in result.breakdown}
    assert by_id["greeting"].applicable and by_id["prohibited_words"].applicable
    # The words come from the engine's English dictionary and land inside the truth's speech, per speaker.
    segments = transcriber.transcribe(
        {"agent": _signal(plan, 0), "customer": _signal(plan, 1)},
        {"agent": _truth(plan, "agent"), "customer": _truth(plan, "customer")},
    )
    assert {s.speaker for s in segments} == {"agent", "customer"}
    assert all(s.text and s.text == s.text.lower() for s in segments)
    assert sum(len(s.text.split()) for s in segments) >= 8


def _signal(plan: CallPlan, column: int) -> np.ndarray:
    return dsp.to_float(render_call(plan)[:, column])


def _truth(plan: CallPlan, speaker: str) -> list[tuple[float, float]]:
    return [(s["start_s"], s["end_s"]) for s in plan.truth["segments"] if s["kind"] == "speech" and s["speaker"] == speaker]


def test_faster_whisper_needs_a_local_model_and_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        make_transcriber("faster-whisper", tmp_path / "no-such-model")
    assert make_transcriber("none") is None
    with pytest.raises(ValueError, match="unknown ASR backend"):
        make_transcriber("cloud")
