"""Ground truth of a planned call: segments and the aggregates the scorer is checked against.

As in docs/scoring.md: dead air = a stretch ≥ 3 s with no speech and no hold; hold ≥ 10 s = music, or beeps/tones repeating
with silence between (from the first burst's start to the last one's end; none of it dead air); overtalk = both
parties speaking at once (counted for every call; the scorer only reports it on stereo).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from audio.intervals import complement, longest, merge, total

DEAD_AIR_MIN_S = 3.0
GREETING_WINDOW_S = 15.0
CLOSING_WINDOW_S = 30.0
HOLD_ETIQUETTE_WINDOW_S = 30.0


def _r(x: float) -> float:
    return round(x, 3)


def derive_truth(utterances: Sequence[Any], holds: Sequence[Any], duration: float) -> dict[str, Any]:
    """Truth dict (JSON-able) from the plan's utterances (speaker, role, text, start_s, end_s) and holds (start_s, end_s)."""
    speech = {who: [(u.start_s, u.end_s) for u in utterances if u.speaker == who] for who in ("agent", "customer")}
    hold_iv = [(h.start_s, h.end_s) for h in holds]
    segments: list[dict[str, Any]] = [
        {
            "speaker": u.speaker,
            "kind": "speech",
            "role": u.role,
            "start_s": _r(u.start_s),
            "end_s": _r(u.end_s),
            "text": u.text,
            "truncated": u.truncated,
        }
        for u in utterances
    ]
    for h in holds:
        # `pattern` says how the hold sounded (music, beep, tone); the span is the same whatever plays.
        pattern = getattr(h, "kind", "music")
        segments.append({"speaker": "none", "kind": "hold", "start_s": _r(h.start_s), "end_s": _r(h.end_s), "pattern": pattern})
    occupied = merge(speech["agent"] + speech["customer"] + hold_iv)
    silences = complement(occupied, duration)
    dead = [(s, e) for s, e in silences if e - s >= DEAD_AIR_MIN_S]
    segments += [{"speaker": "none", "kind": "dead_air", "start_s": _r(s), "end_s": _r(e)} for s, e in dead]
    overtalk, interruptions = [], {"agent": 0, "customer": 0}
    for a in utterances:
        for c in utterances:
            if a.speaker == "agent" and c.speaker == "customer":
                start, end = max(a.start_s, c.start_s), min(a.end_s, c.end_s)
                if end > start:
                    by = "agent" if a.start_s > c.start_s else "customer"  # who started while the other was talking
                    interruptions[by] += 1
                    overtalk.append((start, end))
                    segments.append({"speaker": by, "kind": "overtalk", "start_s": _r(start), "end_s": _r(end)})
    segments.sort(key=lambda seg: (seg["start_s"], seg["kind"]))
    roles = {u.role for u in utterances}
    agent_talk = total(speech["agent"])
    customer_talk = total(speech["customer"])
    phrases = {
        "greeting": any(u.role == "greeting" and u.start_s < GREETING_WINDOW_S for u in utterances),
        "closing": any(u.role == "closing" and u.end_s >= duration - CLOSING_WINDOW_S for u in utterances),
        "empathy": "empathy" in roles,
        "prohibited": "prohibited" in roles,
        "hold_etiquette": _hold_etiquette(utterances, hold_iv),
    }
    return {
        "duration_s": duration,
        "segments": segments,
        "phrases": phrases,
        "dead_air_total_s": _r(total(dead)),
        "dead_air_longest_s": _r(longest(dead)),
        "dead_air_count": len(dead),
        "longest_silence_s": _r(longest(silences)),
        "hold_total_s": _r(total(hold_iv)),
        "hold_count": len(hold_iv),
        "overtalk_total_s": _r(total(overtalk)),
        "interruptions": interruptions,
        "agent_talk_s": _r(agent_talk),
        "customer_talk_s": _r(customer_talk),
        "speech_total_s": _r(total(merge(speech["agent"] + speech["customer"]))),
    }


def _hold_etiquette(utterances: Sequence[Any], holds: list[tuple[float, float]]) -> bool | None:
    """None without holds; else every hold was announced before and thanked after, within the window."""
    if not holds:
        return None
    for start, end in holds:
        asked = any(u.role == "hold" and start - HOLD_ETIQUETTE_WINDOW_S <= u.end_s <= start for u in utterances)
        thanked = any(u.role == "after_hold" and end <= u.start_s <= end + HOLD_ETIQUETTE_WINDOW_S for u in utterances)
        if not (asked and thanked):
            return False
    return True
