"""Render a CallPlan to PCM: espeak-ng speech, hold music or beeps, line noise; stereo (agent left, customer right) or mono."""

from __future__ import annotations

import numpy as np

from audio import dsp
from callgen import synth
from callgen.plan import DOUBLE_BEEP_GAP_S, CallPlan, Hold

# Major/minor triads of a slow loop: tonal, steady energy, no speech-like formant motion (silero-vad scores it < 0.3).
_CHORDS_HZ = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6), (196.0, 246.9, 293.7))
_CHORD_S = 1.2


def hold_music(n_samples: int, sample_rate: int, level_dbfs: float, phase_s: float = 0.0) -> np.ndarray:
    """Music-on-hold-like signal: chords with a few harmonics, cross-faded so the level never dips to silence."""
    t = phase_s + np.arange(n_samples, dtype=np.float64) / sample_rate
    index = np.floor(t / _CHORD_S).astype(np.int64)
    out = np.zeros(n_samples, dtype=np.float64)
    for k, chord in enumerate(_CHORDS_HZ):
        # Each chord's weight rises and falls over its slot with 100 ms ramps; neighbours overlap in the ramps.
        pos = (t - index * _CHORD_S) / 0.1
        ramp = np.clip(np.minimum(pos + 0.5, (_CHORD_S / 0.1) - pos + 0.5), 0.0, 1.0)
        weight = np.where(index % len(_CHORDS_HZ) == k, ramp, 0.0)
        weight += np.where((index - 1) % len(_CHORDS_HZ) == k, np.clip(0.5 - pos, 0.0, 1.0), 0.0)
        if not weight.any():
            continue
        voice = sum(g * np.sin(2 * np.pi * f * h * t) for f in chord for h, g in ((1, 1.0), (2, 0.35), (3, 0.15)))
        out += weight * voice
    out *= 1.0 + 0.15 * np.sin(2 * np.pi * 0.5 * t)  # gentle tremolo
    # Hold sources fade in and out; a hard start is a click that voice-activity detectors read as a syllable.
    fade = min(n_samples // 2, int(0.08 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        out[:fade] *= ramp
        out[n_samples - fade :] *= ramp[::-1]
    rms = float(np.sqrt(np.mean(out * out))) if n_samples else 1.0
    return (out * (10 ** (level_dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


BEEP_FADE_S = 0.015


def hold_beeps(n_samples: int, sample_rate: int, level_dbfs: float, hold: Hold) -> np.ndarray:
    """A beep or tone hold: a sine burst (or two, for a double beep) at each of the hold's onsets, silence between.

    `level_dbfs` is the RMS inside a burst. Each beep fades in and out over 15 ms: a hard edge is a broadband click, which is
    neither what a PBX plays nor tonal.
    """
    out = np.zeros(n_samples, dtype=np.float64)
    amplitude = np.sqrt(2.0) * 10 ** (level_dbfs / 20)
    beep_s = (hold.on_s - DOUBLE_BEEP_GAP_S) / 2 if hold.beeps == 2 else hold.on_s
    offsets = (0.0, beep_s + DOUBLE_BEEP_GAP_S) if hold.beeps == 2 else (0.0,)
    length = int(round(beep_s * sample_rate))
    t = np.arange(length) / sample_rate
    fade = min(length // 2, int(BEEP_FADE_S * sample_rate))
    envelope = np.ones(length)
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
        envelope[:fade], envelope[length - fade :] = ramp, ramp[::-1]
    beep = amplitude * envelope * np.sin(2 * np.pi * hold.tone_hz * t)
    for onset in hold.burst_onsets():
        for offset in offsets:
            start = int(round((onset + offset - hold.start_s) * sample_rate))
            piece = beep[: max(0, n_samples - start)]
            out[start : start + len(piece)] += piece
    return out.astype(np.float32)


def line_noise(rng: np.random.Generator, n_samples: int, level_dbfs: float) -> np.ndarray:
    """Band-limited hiss at `level_dbfs` RMS: a quiet line is never digital zero on a real trunk."""
    white = rng.standard_normal(n_samples + 8)
    shaped = np.convolve(white, np.ones(4) / 2.0, mode="same")[4 : 4 + n_samples]
    rms = float(np.sqrt(np.mean(shaped * shaped))) if n_samples else 1.0
    return (shaped * (10 ** (level_dbfs / 20) / max(rms, 1e-9))).astype(np.float32)


def render_call(plan: CallPlan, *, sample_rate: int = 8000) -> np.ndarray:
    """PCM int16 of shape (n_samples, 1) for mono or (n_samples, 2) for stereo (agent left, customer right)."""
    n = int(round(plan.duration_s * sample_rate))
    tracks = {"agent": np.zeros(n, dtype=np.float32), "customer": np.zeros(n, dtype=np.float32)}
    for u in plan.utterances:
        audio = synth.synthesize(u.text, u.voice, u.speed, u.pitch, sample_rate)
        start = int(round(u.start_s * sample_rate))
        length = min(int(round(u.duration_s * sample_rate)), len(audio), n - start)
        if length > 0:
            piece = audio[:length] * u.gain
            if u.truncated:
                # A cut-off line ends with a 10 ms fade, as a real hang-up or barge-in does, not a click.
                fade = min(length, sample_rate // 100)
                piece[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            tracks[u.speaker][start : start + length] += piece
    for hold in plan.holds:
        start, end = int(round(hold.start_s * sample_rate)), min(n, int(round(hold.end_s * sample_rate)))
        # The agent side plays the hold (it is what the recorder taps); the mono mix carries it either way.
        if hold.kind == "music":
            tracks["agent"][start:end] += hold_music(end - start, sample_rate, plan.music_dbfs)
        else:
            tracks["agent"][start:end] += hold_beeps(end - start, sample_rate, plan.music_dbfs, hold)
    rng = np.random.default_rng([plan.seed, 0x4E015E])
    if plan.stereo:
        left = tracks["agent"] + line_noise(rng, n, plan.noise_dbfs)
        right = tracks["customer"] + line_noise(rng, n, plan.noise_dbfs)
        return dsp.to_int16(np.stack([left, right], axis=1))
    mono = tracks["agent"] + tracks["customer"] + line_noise(rng, n, plan.noise_dbfs)
    return dsp.to_int16(mono.reshape(-1, 1))
