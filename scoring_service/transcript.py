"""Transcript criteria: greeting, closing, empathy, hold etiquette, prohibited phrases (Vietnamese and English lists).

Matching is on normalised text (NFC, lower case, punctuation → space, whole words) so "Xin chào!" and "xin   chào" match the
phrase "xin chào" while "holding" does not match "hold". Segments labelled `customer` are ignored; `unknown` ones (mono ASR)
count as the line, which is the best a single channel allows.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from scoring_service.schemas import TranscriptSegment

GREETING_WINDOW_S = 15.0
CLOSING_WINDOW_S = 30.0
HOLD_ETIQUETTE_WINDOW_S = 30.0
NO_TRANSCRIPT_REASON = "no transcript: ASR backend is 'none' and the request carried no transcript"
NO_HOLD_REASON = "no hold detected in this call"
TRANSCRIPT_METRICS = ("greeting_found", "closing_found", "empathy_count", "hold_etiquette_ok", "prohibited_count")

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower()
    return " " + " ".join(_PUNCT.sub(" ", text).split()) + " "


def _phrases(lists: dict[str, list[str]]) -> list[str]:
    return [normalise(p) for lang in sorted(lists) for p in lists[lang]]


def _first_match(text: str, phrases: list[str]) -> str | None:
    return next((p.strip() for p in phrases if p in text), None)


def transcript_metrics(
    segments: list[TranscriptSegment] | None,
    phrase_lists: dict[str, dict[str, list[str]]],
    duration: float,
    holds: list[tuple[float, float]],
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[tuple[float, float, str]]]]:
    """(metrics, not_applicable reasons, evidence) for the transcript criteria."""
    if segments is None:
        return dict.fromkeys(TRANSCRIPT_METRICS), dict.fromkeys(TRANSCRIPT_METRICS, NO_TRANSCRIPT_REASON), {}
    lists = {
        kind: _phrases(phrase_lists.get(kind, {}))
        for kind in ("greeting", "closing", "empathy", "hold_request", "hold_thanks", "prohibited")
    }
    agent = [(s, normalise(s.text)) for s in sorted(segments, key=lambda s: s.start_s) if s.speaker != "customer"]
    evidence: dict[str, list[tuple[float, float, str]]] = {
        k: [] for k in ("greeting", "closing", "empathy", "prohibited", "hold_etiquette")
    }
    for seg, text in agent:
        for kind, window_ok in (
            ("greeting", seg.start_s < GREETING_WINDOW_S),
            ("closing", seg.end_s >= duration - CLOSING_WINDOW_S),
            ("empathy", True),
            ("prohibited", True),
        ):
            hit = _first_match(text, lists[kind]) if window_ok else None
            if hit:
                evidence[kind].append((seg.start_s, seg.end_s, f"{kind}: '{hit}'"))
    metrics: dict[str, Any] = {
        "greeting_found": int(bool(evidence["greeting"])),
        "closing_found": int(bool(evidence["closing"])),
        "empathy_count": len(evidence["empathy"]),
        "prohibited_count": len(evidence["prohibited"]),
    }
    not_applicable: dict[str, str] = {}
    if holds:
        ok = True
        for start, end in holds:
            asked = any(
                start - HOLD_ETIQUETTE_WINDOW_S <= seg.end_s <= start + 1.0 and _first_match(text, lists["hold_request"])
                for seg, text in agent
            )
            thanked = any(
                end - 1.0 <= seg.start_s <= end + HOLD_ETIQUETTE_WINDOW_S and _first_match(text, lists["hold_thanks"])
                for seg, text in agent
            )
            ok = ok and asked and thanked
            note = "announced" if asked else "not announced"
            note += " and thanked" if thanked else " and not thanked"
            evidence["hold_etiquette"].append((start, end, f"hold {note}"))
        metrics["hold_etiquette_ok"] = int(ok)
    else:
        metrics["hold_etiquette_ok"] = None
        not_applicable["hold_etiquette_ok"] = NO_HOLD_REASON
    return metrics, not_applicable, evidence
