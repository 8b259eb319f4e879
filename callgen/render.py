"""Render a CallPlan to PCM: speech from espeak-ng, hold music, line noise; stereo (agent left, customer right) or a mono mix."""

from __future__ import annotations

import numpy as np

from audio import dsp
from callgen import synth
from callgen.plan import CallPlan

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
        # The agent side plays the music (it is what the recorder taps); the mono mix carries it either way.
        tracks["agent"][start:end] += hold_music(end - start, sample_rate, plan.music_dbfs)
    rng = np.random.default_rng([plan.seed, 0x4E015E])
    if plan.stereo:
        left = tracks["agent"] + line_noise(rng, n, plan.noise_dbfs)
        right = tracks["customer"] + line_noise(rng, n, plan.noise_dbfs)
        return dsp.to_int16(np.stack([left, right], axis=1))
    mono = tracks["agent"] + tracks["customer"] + line_noise(rng, n, plan.noise_dbfs)
    return dsp.to_int16(mono.reshape(-1, 1))
