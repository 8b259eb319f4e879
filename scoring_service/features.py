"""Call audio → metrics: voice activity per speaker, dead air, hold, overtalk, talk ratio, agent delivery.

Two-party metrics need one speaker per channel; on mono they are reported as not applicable with the reason, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from audio import dsp
from audio.intervals import Interval, complement, intersect, longest, mask_runs, merge, total
from scoring_service import tones, vad
from scoring_service.vad import ANALYSIS_RATE

FEATURE_VERSION = "1.1.0"
DEAD_AIR_MIN_S = 3.0
HOLD_MIN_S = 10.0
QUIET_DBFS = -40.0  # line noise sits well under this; music on hold and speech well above
LEVEL_FRAME_S = 0.02
SMOOTH_FRAMES = 25  # 0.5 s median: a note change or a click does not split a hold, a breath does not split dead air
MONOLOGUE_GAP_S = 1.5
MUSIC_BLIP_S = 0.5
CLIP_LEVEL = 31784  # 0.97 of full scale: G.711 tops out at 32124 (µ-law) / 32256 (A-law)
MONO_REASON = "mono recording: one channel carries both parties, so per-speaker metrics cannot be measured"


@dataclass
class Features:
    duration_s: float
    layout: str  # mono | agent_left | agent_right
    metrics: dict[str, Any]
    intervals: dict[str, list[Interval]]
    not_applicable: dict[str, str] = field(default_factory=dict)
    speech: dict[str, list[Interval]] = field(default_factory=dict)  # speaker (agent|customer|line) → segments
    signals: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # speaker → 8 kHz float audio, for ASR


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 3)


def _median_smooth(mask: np.ndarray, width: int) -> np.ndarray:
    if len(mask) < width:
        return mask
    pad = width // 2
    padded = np.pad(mask.astype(np.float32), pad, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return windows.mean(axis=1) > 0.5


def split_silence(
    speech: list[Interval], loud_frames: np.ndarray, duration: float, patterns: list[Interval] | None = None
) -> tuple[list[Interval], list[Interval], list[Interval]]:
    """Non-speech time → (quiet runs, dead air ≥ 3 s, hold ≥ 10 s). `loud_frames`: per 20 ms frame, level > QUIET_DBFS.

    `patterns`: spans of a beep/tone hold (`tones.hold_patterns`); mostly quiet, but hold all through, never dead air.
    """
    quiet, dead, hold = [], [], []
    for g0, g1 in complement(speech, duration):
        f0, f1 = int(round(g0 / LEVEL_FRAME_S)), int(round(g1 / LEVEL_FRAME_S))
        loud = _median_smooth(loud_frames[f0:f1], SMOOTH_FRAMES).copy()  # a short gap's mask is a view of loud_frames
        for p0, p1 in patterns or []:
            loud[max(0, int(round(p0 / LEVEL_FRAME_S)) - f0) : max(0, int(round(p1 / LEVEL_FRAME_S)) - f0)] = True
        for mask, sink in ((~loud, quiet), (loud, hold)):
            for a, b in mask_runs(mask):
                start, end = g0 if a == 0 else (f0 + a) * LEVEL_FRAME_S, g1 if f0 + b >= f1 else (f0 + b) * LEVEL_FRAME_S
                sink.append((start, end))
    dead = [iv for iv in quiet if iv[1] - iv[0] >= DEAD_AIR_MIN_S]
    hold = [iv for iv in hold if iv[1] - iv[0] >= HOLD_MIN_S]
    return quiet, dead, hold


def _drop_music_blips(segments: list[Interval], hold: list[Interval]) -> list[Interval]:
    def blip(start: float, end: float) -> bool:
        return end - start < MUSIC_BLIP_S and any(h0 - 0.1 <= end <= h0 + 0.1 or h1 - 0.1 <= start <= h1 + 0.1 for h0, h1 in hold)

    return [(start, end) for start, end in segments if not blip(start, end)]


def _tone_holds(
    signals: dict[str, np.ndarray], levels: dict[str, np.ndarray], speech: dict[str, list[Interval]], duration: float
) -> tuple[dict[str, list[Interval]], list[Interval]]:
    """Beep/tone hold spans, and the speech without the beeps silero took for syllables."""
    frame = int(LEVEL_FRAME_S * ANALYSIS_RATE)
    bursts = [b for who, x in signals.items() for b in tones.find_bursts(x, levels[who] > QUIET_DBFS, frame, ANALYSIS_RATE)]
    loud = np.max(np.stack(list(levels.values())), axis=0) > QUIET_DBFS
    if len(bursts) < tones.MIN_BURSTS:
        return speech, []
    # A beep read as speech would cut the pattern in two: look for patterns as if every burst-shaped blip were not speech...
    everywhere = [(0.0, duration)]
    union = merge([iv for segs in speech.values() for iv in tones.drop_beep_blips(segs, bursts, everywhere)])
    spans = tones.hold_patterns(bursts, union, duration, loud, LEVEL_FRAME_S, HOLD_MIN_S)
    # ...but only the blips inside a pattern are beeps; a lone tonal blip stays whatever silero said.
    return {who: tones.drop_beep_blips(segs, bursts, spans) for who, segs in speech.items()}, spans


def two_party_metrics(agent: list[Interval], customer: list[Interval]) -> tuple[dict[str, Any], dict[str, list[Interval]]]:
    """Metrics defined on per-speaker speech intervals (also applied to the generator's truth by the accuracy tests)."""
    overlaps = intersect(agent, customer)
    by = {"agent": 0, "customer": 0}
    evidence_interrupt = []
    for start, end in overlaps:
        a_start = max(s for s, e in agent if s <= start < e or s == start)
        c_start = max(s for s, e in customer if s <= start < e or s == start)
        who = "agent" if a_start > c_start else "customer"
        by[who] += 1
        if who == "agent":
            evidence_interrupt.append((start, end))
    agent_talk, customer_talk = total(agent), total(customer)
    replies = []
    for _c_start, c_end in customer:
        nxt = next((s for s, _e in agent if s >= c_end), None)
        later_customer = next((s for s, _e in customer if s > c_end), None)
        if nxt is not None and (later_customer is None or later_customer > nxt):
            replies.append((c_end, nxt))
    monologues: list[Interval] = []
    for start, end in agent:
        if monologues and start - monologues[-1][1] < MONOLOGUE_GAP_S and not intersect([(monologues[-1][1], start)], customer):
            monologues[-1] = (monologues[-1][0], end)
        else:
            monologues.append((start, end))
    longest = max(monologues, key=lambda iv: iv[1] - iv[0], default=None)
    gaps = [b - a for a, b in replies]
    metrics = {
        "agent_talk_s": _r(agent_talk),
        "customer_talk_s": _r(customer_talk),
        "talk_listen_ratio": _r(agent_talk / customer_talk) if customer_talk > 0 else None,
        "overtalk_total_s": _r(total(overlaps)),
        "overtalk_count": len(overlaps),
        "interruptions_by_agent": by["agent"],
        "interruptions_by_customer": by["customer"],
        "longest_agent_monologue_s": _r(longest[1] - longest[0]) if longest else 0.0,
        "response_gap_mean_s": _r(float(np.mean(gaps))) if gaps else None,
        "response_gap_max_s": _r(max(gaps)) if gaps else None,
    }
    evidence = {
        "overtalk": overlaps,
        "interruptions_by_agent": evidence_interrupt,
        "monologue": [longest] if longest else [],
        "response_gap": sorted(replies, key=lambda iv: iv[0] - iv[1])[:5],
    }
    return metrics, evidence


def _speech_rate(x: np.ndarray, speech: list[Interval]) -> float | None:
    """Syllable-like energy peaks per second of speech: a tempo proxy that needs no transcript."""
    levels = dsp.frame_db(x, int(0.01 * ANALYSIS_RATE))
    if not speech or len(levels) < 5:
        return None
    smooth = np.convolve(levels, np.ones(5) / 5, mode="same")
    peaks, seconds = 0, 0.0
    for start, end in speech:
        seg = smooth[int(start * 100) : int(end * 100)]
        seconds += end - start
        if len(seg) < 11:
            continue
        local = np.lib.stride_tricks.sliding_window_view(np.pad(seg, 5, mode="edge"), 11).max(axis=1)
        floor = float(np.percentile(seg, 20))
        peaks += int(np.sum((seg == local) & (seg > floor + 6)))
    return peaks / seconds if seconds > 0 else None


def _delivery(raw: np.ndarray, x: np.ndarray, speech: list[Interval]) -> dict[str, Any]:
    mask = np.zeros(len(x), dtype=bool)
    for start, end in speech:
        mask[int(start * ANALYSIS_RATE) : int(end * ANALYSIS_RATE)] = True
    return {
        "agent_loudness_dbfs": _r(dsp.rms_db(x[mask])) if mask.any() else None,
        "agent_clipping_ratio": round(float(np.mean(np.abs(raw.astype(np.int32)) >= CLIP_LEVEL)), 6) if len(raw) else 0.0,
        "agent_speech_rate": _r(_speech_rate(x, speech)),
    }


def extract(pcm: np.ndarray, sample_rate: int, layout: str) -> Features:
    """int16 frames (n, channels) → Features. `layout` is mono, agent_left or agent_right (stereo files only)."""
    duration = len(pcm) / sample_rate
    if pcm.shape[1] == 2 and layout != "mono":
        agent_col = 0 if layout == "agent_left" else 1
        raw = {"agent": pcm[:, agent_col], "customer": pcm[:, 1 - agent_col]}
    else:
        layout = "mono"
        mixed = pcm[:, 0] if pcm.shape[1] == 1 else (pcm.astype(np.int32).sum(axis=1) // 2).astype(np.int16)
        raw = {"line": mixed}
    signals = {who: dsp.resample(dsp.to_float(ch), sample_rate, ANALYSIS_RATE) for who, ch in raw.items()}
    speech = {who: vad.speech_segments(x) for who, x in signals.items()}
    frame = int(LEVEL_FRAME_S * ANALYSIS_RATE)
    levels = {who: dsp.frame_db(x, frame) for who, x in signals.items()}
    loud = np.max(np.stack(list(levels.values())), axis=0) > QUIET_DBFS
    speech, patterns = _tone_holds(signals, levels, speech, duration)
    union = merge([iv for segs in speech.values() for iv in segs])
    _quiet, _dead, hold = split_silence(union, loud, duration, patterns)
    if hold:
        # silero reads the onset of music as ~0.3 s of speech; a blip that only touches a hold belongs to the hold.
        speech = {who: _drop_music_blips(segs, hold) for who, segs in speech.items()}
        union = merge([iv for segs in speech.values() for iv in segs])
    quiet, dead, hold = split_silence(union, loud, duration, patterns)
    metrics: dict[str, Any] = {
        "speech_total_s": _r(total(union)),
        "speech_share": _r(total(union) / duration) if duration else 0.0,
        "dead_air_total_s": _r(total(dead)),
        "dead_air_count": len(dead),
        "dead_air_longest_s": _r(longest(dead)),
        "longest_silence_s": _r(longest(quiet)),
        "silence_share": _r(total(quiet) / duration) if duration else 0.0,
        "hold_total_s": _r(total(hold)),
        "hold_count": len(hold),
    }
    intervals: dict[str, list[Interval]] = {"dead_air": dead, "hold": hold}
    not_applicable: dict[str, str] = {}
    if layout == "mono":
        for name in (
            "agent_talk_s",
            "customer_talk_s",
            "talk_listen_ratio",
            "overtalk_total_s",
            "overtalk_count",
            "interruptions_by_agent",
            "interruptions_by_customer",
            "longest_agent_monologue_s",
            "response_gap_mean_s",
            "response_gap_max_s",
            "agent_speech_rate",
        ):
            metrics[name] = None
            not_applicable[name] = MONO_REASON
        # Level and clipping of the line are still the agent's recording quality; measured on the whole line.
        line = _delivery(raw["line"], signals["line"], speech["line"])
        metrics["agent_loudness_dbfs"] = line["agent_loudness_dbfs"]
        metrics["agent_clipping_ratio"] = line["agent_clipping_ratio"]
    else:
        two, evidence = two_party_metrics(speech["agent"], speech["customer"])
        metrics.update(two)
        intervals.update(evidence)
        metrics.update(_delivery(raw["agent"], signals["agent"], speech["agent"]))
    for key, ivs in intervals.items():
        intervals[key] = [(round(s, 3), round(e, 3)) for s, e in ivs]
    return Features(round(duration, 3), layout, metrics, intervals, not_applicable, speech, signals)
