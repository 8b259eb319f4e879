"""Feature extraction and transcript criteria on small, controlled inputs."""

from __future__ import annotations

import numpy as np

from audio import dsp
from callgen import plan_call, render_call
from callgen.render import hold_music, line_noise
from scoring_service import vad
from scoring_service.features import extract, split_silence, two_party_metrics
from scoring_service.schemas import TranscriptSegment
from scoring_service.scorecard import load_scorecard
from scoring_service.transcript import NO_TRANSCRIPT_REASON, normalise, transcript_metrics


def test_music_is_hold_not_speech_and_quiet_is_dead_air() -> None:
    rate, rng = 8000, np.random.default_rng(1)
    x = line_noise(rng, rate * 40, -60)
    x[rate * 5 : rate * 25] += hold_music(rate * 20, rate, -25)
    pcm = dsp.to_int16(x).reshape(-1, 1)
    f = extract(pcm, rate, "mono")
    assert f.metrics["speech_total_s"] < 0.5  # silero does not call music speech
    assert f.metrics["hold_count"] == 1 and abs(f.metrics["hold_total_s"] - 20) < 0.3
    assert f.metrics["dead_air_count"] == 2 and abs(f.metrics["dead_air_total_s"] - 20) < 0.3


def test_resampled_input_gives_the_same_segments() -> None:
    plan = plan_call(21, duration_s=25, language="en")
    narrow = extract(render_call(plan, sample_rate=8000), 8000, "mono").speech["line"]
    wide = extract(render_call(plan, sample_rate=44100), 44100, "mono").speech["line"]
    assert len(narrow) == len(wide)
    assert all(abs(a[0] - b[0]) < 0.1 and abs(a[1] - b[1]) < 0.1 for a, b in zip(narrow, wide, strict=True))


def test_split_silence_short_gaps_are_neither() -> None:
    speech = [(0.0, 1.0), (3.0, 4.0)]
    loud = np.zeros(250, dtype=bool)
    quiet, dead, hold = split_silence(speech, loud, 5.0)
    assert quiet == [(1.0, 3.0), (4.0, 5.0)] and dead == [] and hold == []


def test_two_party_metrics_attribute_interruptions() -> None:
    agent = [(0.0, 4.0), (6.0, 8.0)]
    customer = [(3.0, 5.0), (7.5, 9.0)]
    m, evidence = two_party_metrics(agent, customer)
    assert m["overtalk_total_s"] == 1.5 and m["overtalk_count"] == 2
    assert m["interruptions_by_customer"] == 2 and m["interruptions_by_agent"] == 0
    assert m["talk_listen_ratio"] == round(6 / 3.5, 3)
    assert m["response_gap_mean_s"] == 1.0  # customer ends 5.0, agent replies 6.0
    assert evidence["overtalk"] == [(3.0, 4.0), (7.5, 8.0)]


def test_vad_finds_speech_in_a_single_utterance() -> None:
    plan = plan_call(4, duration_s=8, language="vi")
    x = dsp.to_float(render_call(plan)[:, 0])
    segments = vad.speech_segments(x)
    truth = [(s["start_s"], s["end_s"]) for s in plan.truth["segments"] if s["kind"] == "speech"]
    assert segments and truth
    assert abs(sum(e - s for s, e in segments) - sum(e - s for s, e in truth)) < 0.3


def test_transcript_criteria_vi_and_en() -> None:
    card = load_scorecard()
    segs = [
        TranscriptSegment(start_s=1, end_s=4, text="Xin chào quý khách!", speaker="agent"),
        TranscriptSegment(start_s=5, end_s=7, text="Hello, my bill is wrong", speaker="customer"),
        TranscriptSegment(start_s=8, end_s=10, text="I am very SORRY for the inconvenience.", speaker="agent"),
        TranscriptSegment(start_s=11, end_s=13, text="Could you please hold", speaker="agent"),
        TranscriptSegment(start_s=40, end_s=42, text="Thank you for waiting", speaker="agent"),
        TranscriptSegment(start_s=50, end_s=52, text="That is not my problem", speaker="agent"),
        TranscriptSegment(start_s=80, end_s=84, text="Cảm ơn anh chị đã gọi, chúc anh chị một ngày tốt lành", speaker="agent"),
    ]
    m, na, evidence = transcript_metrics(segs, card.phrases, 90.0, [(14.0, 39.0)])
    assert m == {"greeting_found": 1, "closing_found": 1, "empathy_count": 1, "prohibited_count": 1, "hold_etiquette_ok": 1}
    # Evidence is the matched words' time: "not my problem", the last 3 of 5 words spread over 50-52 s.
    assert not na and evidence["prohibited"][0][:2] == (50.8, 52.0)
    m2, na2, _ = transcript_metrics(segs[1:3], card.phrases, 90.0, [])
    assert m2["greeting_found"] == 0 and m2["hold_etiquette_ok"] is None and "hold" in na2["hold_etiquette_ok"]
    m3, na3, _ = transcript_metrics(None, card.phrases, 90.0, [])
    assert all(v is None for v in m3.values()) and set(na3.values()) == {NO_TRANSCRIPT_REASON}


def test_normalise_keeps_vietnamese_and_matches_whole_words() -> None:
    assert normalise("Xin  CHÀO!") == " xin chào "
    assert " hold " not in normalise("thank you for holding")
