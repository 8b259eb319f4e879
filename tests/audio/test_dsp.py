"""DSP primitives: resampling keeps a telephone-band tone and removes what the new rate cannot carry; levels are true dBFS."""

from __future__ import annotations

import numpy as np
import pytest

from audio import dsp


def _tone(freq_hz: float, rate: int, seconds: float = 1.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _dominant_hz(x: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize(("rate_in", "rate_out"), [(16000, 8000), (48000, 8000), (8000, 16000), (44100, 8000), (8000, 11025)])
def test_resample_keeps_length_pitch_and_level_of_a_speech_band_tone(rate_in: int, rate_out: int) -> None:
    out = dsp.resample(_tone(1000.0, rate_in), rate_in, rate_out)
    assert out.dtype == np.float32
    assert abs(len(out) - rate_out) <= 1
    assert abs(_dominant_hz(out, rate_out) - 1000.0) < 5.0
    middle = out[len(out) // 4 : -len(out) // 4]  # away from the filter's edge transients
    assert abs(dsp.rms_db(middle) - dsp.rms_db(_tone(1000.0, rate_in))) < 1.0  # linear interpolation (→ 11025) softens ~0.5 dB


def test_downsampling_filters_out_what_the_lower_rate_would_alias() -> None:
    out = dsp.resample(_tone(6000.0, 16000), 16000, 8000)  # 6 kHz would fold to 2 kHz at 8 kHz without the low-pass
    assert dsp.rms_db(out[500:-500]) < -35.0


def test_resample_same_rate_or_empty_returns_a_copy() -> None:
    x = _tone(440.0, 8000, 0.1)
    same = dsp.resample(x, 8000, 8000)
    assert np.array_equal(same, x) and same is not x
    assert len(dsp.resample(np.zeros(0, dtype=np.float32), 16000, 8000)) == 0


def test_int16_float_round_trip_and_clipping() -> None:
    pcm = np.array([-32768, -1, 0, 1, 12345, 32767], dtype=np.int16)
    x = dsp.to_float(pcm)
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() < 1.0
    assert np.array_equal(dsp.to_int16(x), pcm)
    assert np.array_equal(dsp.to_int16(np.array([-2.0, 2.0], dtype=np.float32)), np.array([-32768, 32767], dtype=np.int16))


def test_frame_db_measures_each_frame_and_drops_the_partial_tail() -> None:
    rate = 8000
    loud, quiet = _tone(500.0, rate, 0.5, amplitude=1.0), _tone(500.0, rate, 0.5, amplitude=0.01)
    levels = dsp.frame_db(np.concatenate([loud, quiet, np.zeros(50, dtype=np.float32)]), 160)
    assert len(levels) == 50  # 1.00625 s in 20 ms frames: the last 50 samples do not make a frame
    assert np.allclose(levels[:25], -3.01, atol=0.05)  # a full-scale sine is 3 dB under full-scale DC
    assert np.allclose(levels[25:], -43.01, atol=0.05)
    assert len(dsp.frame_db(np.zeros(100, dtype=np.float32), 160)) == 0


def test_rms_db_floors_silence_and_empty_input() -> None:
    assert dsp.rms_db(np.zeros(0, dtype=np.float32)) == -120.0
    assert dsp.rms_db(np.zeros(800, dtype=np.float32)) == pytest.approx(-120.0)
    assert dsp.rms_db(np.full(800, 0.5, dtype=np.float32)) == pytest.approx(-6.02, abs=0.01)
