"""Hold played as tone bursts: a beep, double beep or tone every few seconds with quiet between (what many PBXs play on hold).

Continuous music is loud throughout and is found by its level alone (`features.split_silence`). A beep pattern is mostly quiet, so
level alone would call it dead air. Here a burst is a short loud stretch whose energy sits in one narrow spectral peak (a tone;
speech spreads over harmonics and formants that move), and a hold pattern is ≥ 3 such bursts repeating at a steady period with
quiet between them. The pattern spans from the first burst's start to the last one's end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audio.intervals import Interval, complement, mask_runs

BURST_MIN_S, BURST_MAX_S = 0.08, 2.5
BURST_JOIN_S = 0.3  # the two beeps of a double beep, a few frames of fade: one burst
FFT_N = 256  # 32 ms at 8 kHz: a 31 Hz bin, fine enough that one tone fills ±2 bins and a voice's harmonics do not
PEAK_BINS = 2
TONAL_SHARE = 0.75  # a frame is tonal when this share of its energy lies within ±PEAK_BINS of its spectral peak
TONAL_FRAMES = 0.7  # ... and a burst when this share of its loud frames are tonal at one steady frequency
FREQ_MIN_HZ, FREQ_MAX_HZ = 250.0, 3500.0
FREQ_STEADY = 0.04  # peak frequency within ±4 % over a burst (speech pitch and formants glide far more)
MIN_BURSTS = 3
PERIOD_MIN_S, PERIOD_MAX_S = 1.5, 20.0
PERIOD_JITTER = 0.15  # onset-to-onset within ±15 % (or ±0.25 s) of the pattern's period
LOUD_BETWEEN = 0.1  # at most this share of the time between bursts may be loud: gaps are quiet


@dataclass(frozen=True)
class Burst:
    start_s: float
    end_s: float
    freq_hz: float


def _peaks(x: np.ndarray, frames: np.ndarray, frame: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Per frame index: the spectral peak's frequency and the share of the frame's energy within ±PEAK_BINS of it."""
    starts = np.clip(frames * frame + frame // 2 - FFT_N // 2, 0, max(0, len(x) - FFT_N))
    windows = x[starts[:, None] + np.arange(min(FFT_N, len(x)))].astype(np.float64) * np.hanning(min(FFT_N, len(x)))
    power = np.abs(np.fft.rfft(windows, n=FFT_N, axis=1)) ** 2
    power[:, :2] = 0.0  # DC and mains hum are not a tone anyone plays
    peak = np.argmax(power, axis=1)
    cumulative = np.concatenate([np.zeros((len(power), 1)), np.cumsum(power, axis=1)], axis=1)
    lo, hi = np.maximum(peak - PEAK_BINS, 0), np.minimum(peak + PEAK_BINS + 1, power.shape[1])
    rows = np.arange(len(power))
    share = (cumulative[rows, hi] - cumulative[rows, lo]) / np.maximum(cumulative[:, -1], 1e-20)
    return peak * rate / FFT_N, share


def _steady_frames(freq: np.ndarray, share: np.ndarray, bin_hz: float) -> int:
    """How many frames of one loud run are tonal within ±4 % (at least one FFT bin) of the run's median tonal frequency."""
    tonal = freq[(share >= TONAL_SHARE) & (freq >= FREQ_MIN_HZ) & (freq <= FREQ_MAX_HZ)]
    if not len(tonal):
        return 0
    centre = float(np.median(tonal))
    return int(np.sum(np.abs(tonal - centre) <= max(FREQ_STEADY * centre, bin_hz)))


def find_bursts(x: np.ndarray, loud: np.ndarray, frame: int, rate: int) -> list[Burst]:
    """Tone bursts of one channel: loud runs (`loud` per `frame` samples) of 0.08–2.5 s that are tonal at a steady frequency."""
    frame_s, join = frame / rate, int(round(BURST_JOIN_S * rate / frame))
    groups: list[list[tuple[int, int]]] = []
    for a, b in mask_runs(loud):
        if groups and a - groups[-1][-1][1] <= join:
            groups[-1].append((a, b))
        else:
            groups.append([(a, b)])
    groups = [g for g in groups if BURST_MIN_S <= (g[-1][1] - g[0][0]) * frame_s <= BURST_MAX_S]
    if not groups:
        return []
    runs = [(a, b) for g in groups for a, b in g]
    freq, share = _peaks(x, np.concatenate([np.arange(a, b) for a, b in runs]), frame, rate)
    cuts = np.cumsum([b - a for a, b in runs])[:-1]
    per_run = iter(zip(np.split(freq, cuts), np.split(share, cuts), strict=True))
    bursts = []
    for g in groups:
        # Each beep of a double beep is judged on its own: some PBXs alternate two pitches.
        measured = [next(per_run) for _ in g]
        steady = sum(_steady_frames(f, s, rate / FFT_N) for f, s in measured)
        if steady >= TONAL_FRAMES * sum(len(f) for f, _ in measured):
            tonal = np.concatenate([f[s >= TONAL_SHARE] for f, s in measured])
            bursts.append(Burst(round(g[0][0] * frame_s, 3), round(g[-1][1] * frame_s, 3), round(float(np.median(tonal)), 1)))
    return bursts


def _alike(a: Burst, b: Burst) -> bool:
    """Two bursts of the same pattern: the same pitch and about the same length."""
    la, lb = a.end_s - a.start_s, b.end_s - b.start_s
    return abs(a.freq_hz - b.freq_hz) <= max(FREQ_STEADY * a.freq_hz, 40.0) and max(la, lb) <= 1.6 * min(la, lb) + 0.1


def _quiet_between(a: Burst, b: Burst, loud: np.ndarray, frame_s: float) -> bool:
    seg = loud[int(round(a.end_s / frame_s)) : int(round(b.start_s / frame_s))]
    return not len(seg) or float(np.mean(seg)) <= LOUD_BETWEEN


def hold_patterns(
    bursts: list[Burst], speech: list[Interval], duration: float, loud: np.ndarray, frame_s: float, min_s: float
) -> list[Interval]:
    """Spans (first burst start → last burst end) of ≥ MIN_BURSTS alike bursts at a steady period, quiet between, no speech
    between, lasting ≥ `min_s`. `loud`: per frame of `frame_s`, any channel above the quiet level."""
    found: list[Interval] = []
    ordered = sorted(bursts, key=lambda b: b.start_s)
    for g0, g1 in complement(speech, duration):
        inside = [b for b in ordered if b.start_s >= g0 - 1e-6 and b.end_s <= g1 + 1e-6]
        i = 0
        while i < len(inside):
            chain = [inside[i]]
            for nxt in inside[i + 1 :]:
                prev, step = chain[-1], nxt.start_s - chain[-1].start_s
                ok = PERIOD_MIN_S <= step <= PERIOD_MAX_S and _alike(chain[0], nxt) and _quiet_between(prev, nxt, loud, frame_s)
                if ok and len(chain) >= 2:
                    period = float(np.median(np.diff([b.start_s for b in chain])))
                    ok = abs(step - period) <= max(0.25, PERIOD_JITTER * period)
                if not ok:
                    break
                chain.append(nxt)
            span = (max(g0, chain[0].start_s), min(g1, chain[-1].end_s))
            if len(chain) >= MIN_BURSTS and span[1] - span[0] >= min_s:
                found.append(span)
                i += len(chain)
            else:
                i += 1
    return found


def drop_beep_blips(segments: list[Interval], bursts: list[Burst], spans: list[Interval], slack: float = 0.15) -> list[Interval]:
    """Speech segments that are only a burst of a hold pattern (silero now and then calls a beep a syllable) are hold."""
    inside = [b for b in bursts if any(s0 - 1e-6 <= b.start_s and b.end_s <= s1 + 1e-6 for s0, s1 in spans)]

    def blip(start: float, end: float) -> bool:
        return any(b.start_s - slack <= start and end <= b.end_s + slack for b in inside)

    return [(start, end) for start, end in segments if not blip(start, end)]
