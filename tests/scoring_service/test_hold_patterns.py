"""Hold played as periodic beeps or tones: hold from the first burst to the last, never dead air; speech, clicks and a lone beep
are not hold."""

from __future__ import annotations

import numpy as np
import pytest

from audio import dsp
from audio.wav import Codec, read_wav, wav_bytes
from callgen import plan_call, render_call
from callgen.render import line_noise
from scoring_service import features, tones
from scoring_service.features import extract

RATE = 8000


def dead_air_tolerance(truth: float) -> float:
    return max(0.3, 0.03 * truth)  # as tests/scoring_service/test_accuracy.py


def _decoded(pcm: np.ndarray, codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path = tmp_path_factory.mktemp("hold") / "call.wav"
    path.write_bytes(wav_bytes(pcm, RATE, codec))
    return read_wav(str(path))[0]


# (seed, kind, language, stereo, codec): single and double beeps, short and long tones, ~0.2–14 s periods, mono µ-law and stereo.
GENERATED = [
    (1, "beep", "en", True, "alaw"),  # double beep every 12 s
    (8, "beep", "vi", False, "ulaw"),  # 0.22 s beep every 8 s
    (31, "beep", "en", False, "ulaw"),  # double beep every 2 s, two holds
    (14, "beep", "vi", True, "pcm16"),  # 1.4 kHz beep every 3.4 s
    (12, "tone", "vi", True, "pcm16"),
    (19, "tone", "en", False, "ulaw"),
]


@pytest.mark.parametrize(("seed", "kind", "language", "stereo", "codec"), GENERATED)
def test_generated_beep_and_tone_holds_match_truth(
    seed: int, kind: str, language: str, stereo: bool, codec: Codec, tmp_path_factory: pytest.TempPathFactory
) -> None:
    plan = plan_call(seed, duration_s=80, language=language, stereo=stereo, hold_kind=kind, force_hold=True)
    assert plan.holds and all(h.kind == kind and len(h.burst_onsets()) >= 3 for h in plan.holds)
    pcm = _decoded(render_call(plan), codec, tmp_path_factory)
    f = extract(pcm, RATE, "agent_left" if stereo else "mono")
    truth, m = plan.truth, f.metrics
    assert m["hold_count"] == truth["hold_count"]
    assert abs(m["hold_total_s"] - truth["hold_total_s"]) <= 1.0
    for (start, end), hold in zip(f.intervals["hold"], plan.holds, strict=True):
        assert abs(start - hold.start_s) < 0.3 and abs(end - hold.end_s) < 0.3
    assert abs(m["dead_air_total_s"] - truth["dead_air_total_s"]) <= dead_air_tolerance(truth["dead_air_total_s"])
    assert abs(m["speech_total_s"] - truth["speech_total_s"]) < 0.5  # no beep taken for speech


def test_call_with_dead_air_and_no_hold_gets_no_hold(tmp_path_factory: pytest.TempPathFactory) -> None:
    plan = plan_call(13, duration_s=70, language="en")
    assert not plan.holds and plan.truth["dead_air_total_s"] > 10
    f = extract(_decoded(render_call(plan), "ulaw", tmp_path_factory), RATE, "mono")
    truth = plan.truth["dead_air_total_s"]
    assert f.metrics["hold_count"] == 0
    assert abs(f.metrics["dead_air_total_s"] - truth) <= dead_air_tolerance(truth)


def _tone(hz: float, length_s: float, level_dbfs: float = -24.0) -> np.ndarray:
    t = np.arange(int(length_s * RATE)) / RATE
    fade = np.clip(np.minimum(t, length_s - t) / 0.01, 0.0, 1.0)
    return (np.sqrt(2) * 10 ** (level_dbfs / 20) * fade * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _line(duration_s: float, sounds: list[tuple[float, np.ndarray]]) -> np.ndarray:
    x = line_noise(np.random.default_rng(3), int(duration_s * RATE), -60)
    for at, sound in sounds:
        x[int(at * RATE) : int(at * RATE) + len(sound)] += sound
    return x


def _mono(x: np.ndarray) -> np.ndarray:
    return dsp.to_int16(x).reshape(-1, 1)


def test_regular_beeps_are_one_hold_and_not_dead_air() -> None:
    onsets = [5.0 + 3.0 * k for k in range(6)]  # last beep ends at 20.3
    f = extract(_mono(_line(30, [(t, _tone(900, 0.3)) for t in onsets])), RATE, "mono")
    assert f.intervals["hold"] == [(5.0, 20.3)]
    assert f.intervals["dead_air"] == [(0.0, 5.0), (20.3, 30.0)]
    assert f.metrics["speech_total_s"] == 0.0


def test_double_beep_is_one_burst_at_its_pitch() -> None:
    double = np.concatenate([_tone(600, 0.15), np.zeros(int(0.12 * RATE), np.float32), _tone(600, 0.15)])
    x = _line(8, [(1.0, double), (4.0, _tone(1200, 0.4))])
    bursts = tones.find_bursts(x, dsp.frame_db(x, 160) > features.QUIET_DBFS, 160, RATE)
    assert [(b.start_s, b.end_s) for b in bursts] == [(1.0, 1.42), (4.0, 4.4)]
    assert abs(bursts[0].freq_hz - 600) < 35 and abs(bursts[1].freq_hz - 1200) < 35


def _noise_burst(length_s: float) -> np.ndarray:
    return (0.05 * np.random.default_rng(9).standard_normal(int(length_s * RATE))).astype(np.float32)


def _chirp(length_s: float) -> np.ndarray:
    t = np.arange(int(length_s * RATE)) / RATE
    return (0.05 * np.sin(2 * np.pi * (300 * t + 900 * t * t / length_s))).astype(np.float32)  # glides 300 → 2100 Hz


NOT_HOLD = {
    "single beep": [(10.0, _tone(900, 0.4))],
    "two beeps": [(10.0, _tone(900, 0.4)), (14.0, _tone(900, 0.4))],
    "irregular beeps": [(t, _tone(900, 0.3)) for t in (3.0, 5.0, 12.0, 13.6, 24.0, 27.5)],
    "regular clicks": [(3.0 + 3.0 * k, _noise_burst(0.004)) for k in range(9)],
    "regular noise bursts": [(3.0 + 3.0 * k, _noise_burst(0.3)) for k in range(9)],
    "regular glides": [(3.0 + 3.0 * k, _chirp(0.4)) for k in range(9)],
    "beeps of changing pitch": [(3.0 + 3.0 * k, _tone(500 + 150 * k, 0.3)) for k in range(9)],
}


@pytest.mark.parametrize("name", list(NOT_HOLD))
def test_lone_beeps_irregular_beeps_and_untonal_sounds_are_not_hold(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pcm = _mono(_line(32, NOT_HOLD[name]))
    f = extract(pcm, RATE, "mono")
    assert f.metrics["hold_count"] == 0 and f.metrics["hold_total_s"] == 0.0
    # ...and the quiet around them is dead air exactly as the level-only rule makes it.
    monkeypatch.setattr(features, "_tone_holds", lambda _signals, _levels, speech, _duration: (speech, []))
    level_only = extract(pcm, RATE, "mono")
    assert f.intervals["dead_air"] == level_only.intervals["dead_air"] and f.metrics["dead_air_total_s"] > 7


def test_pattern_stops_at_speech() -> None:
    bursts = [tones.Burst(3.0 * k, 3.0 * k + 0.3, 800.0) for k in range(11)]  # 0 … 30.3 s
    loud = np.zeros(2000, dtype=bool)
    spans = tones.hold_patterns(bursts, [(14.0, 16.0)], 40.0, loud, 0.02, 10.0)
    assert spans == [(0.0, 12.3), (18.0, 30.3)]
    # Speech over a burst: the pattern resumes after it; 0–6.3 s before it is too short to be hold.
    assert tones.hold_patterns(bursts, [(8.0, 9.5)], 40.0, loud, 0.02, 10.0) == [(12.0, 30.3)]


def test_beeps_that_silero_calls_speech_are_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    onsets = [4.0 + 2.5 * k for k in range(7)]  # last beep ends at 19.4
    x = _line(30, [(t, _tone(700, 0.4, -18)) for t in onsets])
    real_words = (24.0, 26.5)

    def fake_vad(_signal: np.ndarray) -> list[tuple[float, float]]:
        return [(t - 0.05, t + 0.45) for t in onsets[1::2]] + [real_words]

    monkeypatch.setattr(features.vad, "speech_segments", fake_vad)
    f = extract(_mono(x), RATE, "mono")
    assert f.intervals["hold"] == [(4.0, 19.4)]
    assert f.speech["line"] == [real_words] and f.metrics["speech_total_s"] == 2.5
