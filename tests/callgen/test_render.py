"""Rendering: real speech where the truth says, on the right channel, byte-identical for a seed; the CLI dumps a call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from audio import dsp
from audio.wav import read_wav
from callgen import plan_call, render_call
from callgen.__main__ import main as callgen_main
from callgen.plan import DOUBLE_BEEP_GAP_S


def _level(x: np.ndarray, start: float, end: float, rate: int = 8000) -> float:
    return dsp.rms_db(dsp.to_float(x[int(start * rate) : int(end * rate)]))


def test_render_is_deterministic() -> None:
    plan = plan_call(11, duration_s=40, stereo=True)
    assert np.array_equal(render_call(plan), render_call(plan))


def test_stereo_puts_agent_left_customer_right() -> None:
    plan = plan_call(12, duration_s=60, language="en", stereo=True)
    pcm = render_call(plan)
    assert pcm.dtype == np.int16 and pcm.shape == (480000, 2)
    for s in plan.truth["segments"]:
        if s["kind"] != "speech" or s["end_s"] - s["start_s"] < 0.5:
            continue
        own, other = (0, 1) if s["speaker"] == "agent" else (1, 0)
        assert _level(pcm[:, own], s["start_s"], s["end_s"]) > -40
        others = [o for o in plan.truth["segments"] if o["kind"] == "speech" and o["speaker"] != s["speaker"]]
        if not any(o["start_s"] < s["end_s"] and o["end_s"] > s["start_s"] for o in others):
            assert _level(pcm[:, other], s["start_s"], s["end_s"]) < -50  # only line noise on the other side


def test_hold_has_energy_and_dead_air_is_quiet_but_not_digital_zero() -> None:
    for seed in range(40):
        plan = plan_call(seed, duration_s=200, hold_kind="music")
        segs = plan.truth["segments"]
        if any(s["kind"] == "hold" for s in segs) and any(s["kind"] == "dead_air" for s in segs):
            break
    pcm = render_call(plan, sample_rate=16000)[:, 0]
    for s in segs:
        if s["kind"] == "hold":
            assert -30 < _level(pcm, s["start_s"] + 0.5, s["end_s"] - 0.5, 16000) < -18
        if s["kind"] == "dead_air":
            level = _level(pcm, s["start_s"] + 0.1, s["end_s"] - 0.1, 16000)
            assert -72 < level < -50


def test_beep_hold_is_tone_bursts_on_the_agent_side_with_silence_between() -> None:
    plan = plan_call(1, duration_s=80, language="en", stereo=True, hold_kind="beep", force_hold=True)
    hold = plan.holds[0]
    assert hold.beeps == 2  # a double beep: two tones and a pause in each burst
    pcm = render_call(plan)
    agent, customer = dsp.to_float(pcm[:, 0]), dsp.to_float(pcm[:, 1])
    beep_s = (hold.on_s - DOUBLE_BEEP_GAP_S) / 2
    for onset in hold.burst_onsets():
        for start in (onset, onset + beep_s + DOUBLE_BEEP_GAP_S):
            a, b = int(start * 8000), int((start + beep_s) * 8000)
            assert -28.5 < dsp.rms_db(agent[a + 160 : b - 160]) < -17.5  # the burst's level, fades left out
            assert dsp.rms_db(customer[a:b]) < -50
            spectrum = np.abs(np.fft.rfft(agent[a:b]))
            assert abs(np.argmax(spectrum) * 8000 / (b - a) - hold.tone_hz) < 10
            # Fades in and out: no click at the edges.
            peak = float(np.max(np.abs(agent[a:b])))
            assert np.max(np.abs(agent[a : a + 16])) < 0.3 * peak and np.max(np.abs(agent[b - 16 : b])) < 0.3 * peak
        gap = onset + hold.on_s + 0.05, onset + hold.period_s - 0.05
        if gap[1] < hold.end_s:
            assert _level(pcm[:, 0], *gap) < -50  # line noise only between bursts


def test_cli_writes_wav_and_truth(tmp_path: Path) -> None:
    wav, truth = tmp_path / "x.wav", tmp_path / "x.json"
    assert callgen_main(["--seed", "7", "--duration", "25", "--out", str(wav), "--truth", str(truth)]) == 0
    pcm, rate, codec = read_wav(str(wav))
    assert (rate, codec, pcm.shape) == (8000, "ulaw", (200000, 1))
    meta = json.loads(truth.read_text())
    assert meta["seed"] == 7 and meta["truth"]["duration_s"] == 25.0
