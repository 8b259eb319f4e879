"""Small numpy DSP for telephone audio: resampling, int16 ↔ float conversion, overall and per-frame levels in dBFS."""

from __future__ import annotations

from math import gcd

import numpy as np

FULL_SCALE = 32768.0


def _lowpass_kernel(cutoff: float, taps: int) -> np.ndarray:
    """Windowed-sinc low-pass; `cutoff` is a fraction of the sample rate (0–0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return kernel / kernel.sum()


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample a 1-D float signal. Integer down-ratios filter and decimate; other ratios filter then interpolate linearly.

    Telephone audio only needs the band under 4 kHz, so a 63-tap filter is plenty and keeps this cheap on long calls.
    """
    x = np.asarray(x, dtype=np.float32)
    if rate_in == rate_out or len(x) == 0:
        return x.copy()
    taps = 63
    if rate_out < rate_in:
        x = np.convolve(x, _lowpass_kernel(0.45 * rate_out / rate_in, taps).astype(np.float32), mode="same")
        if rate_in % rate_out == 0:
            return np.ascontiguousarray(x[:: rate_in // rate_out])
    else:
        common = gcd(rate_in, rate_out)
        if rate_out % rate_in == 0 and common == rate_in:
            up = rate_out // rate_in
            stuffed = np.zeros(len(x) * up, dtype=np.float32)
            stuffed[::up] = x * up
            return np.convolve(stuffed, _lowpass_kernel(0.45 / up, taps * up).astype(np.float32), mode="same")
    n_out = int(round(len(x) * rate_out / rate_in))
    positions = np.arange(n_out, dtype=np.float64) * (rate_in / rate_out)
    return np.interp(positions, np.arange(len(x)), x).astype(np.float32)


def to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / FULL_SCALE


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * FULL_SCALE), -32768, 32767).astype(np.int16)


def frame_db(x: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of consecutive frames of `frame` samples (a float signal in [-1, 1])."""
    n = len(x) // frame
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    blocks = x[: n * frame].reshape(n, frame).astype(np.float64)
    rms = np.sqrt(np.mean(blocks * blocks, axis=1))
    return (20 * np.log10(np.maximum(rms, 1e-6))).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    if len(x) == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return 20 * np.log10(max(rms, 1e-6))
