"""Transcript criteria: greeting, closing, empathy, hold etiquette, prohibited phrases, from recognised words.

ASR mishears, so a phrase is found when a run of the agent's words is *close* to it, not only equal:
- text is normalised (NFC, lower case, punctuation → space, whole words);
- multi-word phrases are compared with diacritics folded ("cam on" matches "cảm ơn"): across several words a lost tone mark
  rarely turns one phrase into another, while for a single Vietnamese syllable it often does ("ma"/"mà"/"má"), so one-word
  phrases keep their diacritics;
- a phrase matches a window of as many words (one more, or one fewer for phrases of three words or more) when their
  character similarity (difflib ratio) reaches the scorecard's `matching.fuzzy_threshold`; prohibited phrases, which cap the
  score, need the stricter `matching.prohibited_threshold`; phrases shorter than `matching.min_fuzzy_chars` must match
  exactly ("hold" is not "old").
Each decision carries its evidence: the words heard, their times and the similarity. Customer segments are ignored; `unknown`
ones (mono without speaker roles) count as the line, the best a single channel allows.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from scoring_service.schemas import TranscriptSegment
from scoring_service.scorecard import PhraseMatching

GREETING_WINDOW_S = 15.0
CLOSING_WINDOW_S = 30.0
HOLD_ETIQUETTE_WINDOW_S = 30.0
NO_TRANSCRIPT_REASON = "no transcript: ASR engine is 'none' and the request carried no transcript"
NO_HOLD_REASON = "no hold detected in this call"
TRANSCRIPT_METRICS = ("greeting_found", "closing_found", "empathy_count", "hold_etiquette_ok", "prohibited_count")
PHRASE_KINDS = ("greeting", "closing", "empathy", "hold_request", "hold_thanks", "prohibited")

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFC", text).lower()
    return " " + " ".join(_PUNCT.sub(" ", text).split()) + " "


def fold(text: str) -> str:
    """Diacritics removed (đ → d): the form ASR errors in tone marks collapse to."""
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class HeardWord:
    text: str
    folded: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class PhraseMatch:
    phrase: str
    heard: str
    similarity: float
    start_s: float
    end_s: float

    def note(self, kind: str) -> str:
        how = "" if self.heard == self.phrase else f" heard as '{self.heard}' ({self.similarity:.2f})"
        return f"{kind}: '{self.phrase}'{how}"


def heard_words(segment: TranscriptSegment) -> list[HeardWord]:
    """The segment's words with times; text-only segments get their words spread evenly over the segment."""
    if segment.words:
        pairs = [(w.text, w.start_s, w.end_s) for w in segment.words]
    else:
        tokens = segment.text.split()
        step = (segment.end_s - segment.start_s) / max(len(tokens), 1)
        pairs = [(t, segment.start_s + i * step, segment.start_s + (i + 1) * step) for i, t in enumerate(tokens)]
    out = []
    for text, start, end in pairs:
        for token in normalise(text).split():
            out.append(HeardWord(token, fold(token), start, end))
    return out


def find_phrase(words: list[HeardWord], phrase: str, threshold: float, min_fuzzy_chars: int) -> PhraseMatch | None:
    """The best window of `words` matching `phrase`, if it reaches `threshold` (exact only for short phrases)."""
    tokens = normalise(phrase).split()
    if not tokens or not words:
        return None
    folded_phrase = fold(" ".join(tokens))
    multi = len(tokens) > 1
    exact_only = len(" ".join(tokens)) < min_fuzzy_chars
    best: PhraseMatch | None = None
    # A dropped or extra word is tolerated, but a phrase is never matched by one word fewer when it has only two: the
    # customer's "I understand" must not pass for the agent's "understand how".
    sizes = {len(tokens), len(tokens) + 1} | ({len(tokens) - 1} if len(tokens) >= 3 else set())
    for size in sorted(sizes):
        for i in range(0, len(words) - size + 1):
            window = words[i : i + size]
            heard = " ".join(w.text for w in window)
            a, b = (" ".join(w.folded for w in window), folded_phrase) if multi else (heard, tokens[0])
            if exact_only and a != b:
                continue
            matcher = SequenceMatcher(None, a, b, autojunk=False)
            if matcher.real_quick_ratio() < threshold or matcher.quick_ratio() < threshold:
                continue  # upper bounds of ratio(), far cheaper: most windows stop here
            similarity = matcher.ratio()
            if similarity >= threshold and (best is None or similarity > best.similarity):
                best = PhraseMatch(" ".join(tokens), heard, round(similarity, 3), window[0].start_s, window[-1].end_s)
    return best


def phrases_for(phrase_lists: dict[str, dict[str, list[str]]], kind: str, language: str | None) -> list[str]:
    """The phrases of `kind` in the call's language; every language's when the language is unknown."""
    lists = phrase_lists.get(kind, {})
    if language in lists:
        return list(lists[language])
    return [p for lang in sorted(lists) for p in lists[lang]]


def _first(words: list[HeardWord], phrases: list[str], threshold: float, matching: PhraseMatching) -> PhraseMatch | None:
    found = [m for p in phrases if (m := find_phrase(words, p, threshold, matching.min_fuzzy_chars)) is not None]
    return max(found, key=lambda m: (m.similarity, len(m.phrase)), default=None)


def transcript_metrics(
    segments: list[TranscriptSegment] | None,
    phrase_lists: dict[str, dict[str, list[str]]],
    duration: float,
    holds: list[tuple[float, float]],
    language: str | None = None,
    matching: PhraseMatching | None = None,
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[tuple[float, float, str]]]]:
    """(metrics, not_applicable reasons, evidence) for the transcript criteria."""
    if segments is None:
        return dict.fromkeys(TRANSCRIPT_METRICS), dict.fromkeys(TRANSCRIPT_METRICS, NO_TRANSCRIPT_REASON), {}
    matching = matching or PhraseMatching()
    lists = {kind: phrases_for(phrase_lists, kind, language) for kind in PHRASE_KINDS}
    agent = [(s, heard_words(s)) for s in sorted(segments, key=lambda s: s.start_s) if s.speaker != "customer"]
    evidence: dict[str, list[tuple[float, float, str]]] = {
        k: [] for k in ("greeting", "closing", "empathy", "prohibited", "hold_etiquette")
    }
    for seg, words in agent:
        for kind, window_ok in (
            ("greeting", seg.start_s < GREETING_WINDOW_S),
            ("closing", seg.end_s >= duration - CLOSING_WINDOW_S),
            ("empathy", True),
            ("prohibited", True),
        ):
            threshold = matching.prohibited_threshold if kind == "prohibited" else matching.fuzzy_threshold
            hit = _first(words, lists[kind], threshold, matching) if window_ok else None
            if hit and kind == "closing" and any(s < hit.end_s and hit.start_s < e for s, e, _ in evidence["greeting"]):
                # "Thank you for calling" opens a short call too: words that greeted do not also close.
                continue
            if hit:
                evidence[kind].append((round(hit.start_s, 3), round(hit.end_s, 3), hit.note(kind)))
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
            asked = next(
                (
                    m
                    for seg, words in agent
                    if start - HOLD_ETIQUETTE_WINDOW_S <= seg.end_s <= start + 1.0
                    and (m := _first(words, lists["hold_request"], matching.fuzzy_threshold, matching))
                ),
                None,
            )
            thanked = next(
                (
                    m
                    for seg, words in agent
                    if end - 1.0 <= seg.start_s <= end + HOLD_ETIQUETTE_WINDOW_S
                    and (m := _first(words, lists["hold_thanks"], matching.fuzzy_threshold, matching))
                ),
                None,
            )
            ok = ok and asked is not None and thanked is not None
            note = f"announced ({asked.note('hold_request')})" if asked else "not announced"
            note += f" and thanked ({thanked.note('hold_thanks')})" if thanked else " and not thanked"
            evidence["hold_etiquette"].append((start, end, f"hold {note}"))
        metrics["hold_etiquette_ok"] = int(ok)
    else:
        metrics["hold_etiquette_ok"] = None
        not_applicable["hold_etiquette_ok"] = NO_HOLD_REASON
    return metrics, not_applicable, evidence


def assign_speakers(
    segments: list[TranscriptSegment], agent: list[tuple[float, float]], customer: list[tuple[float, float]]
) -> list[TranscriptSegment]:
    """Mono transcript ('unknown' speakers) → agent/customer segments, each word given to the party whose speech it overlaps
    most; a segment is split where its words change party. Words in neither party's speech keep their neighbour's."""

    def overlap(start: float, end: float, spans: list[tuple[float, float]]) -> float:
        return sum(max(0.0, min(end, e) - max(start, s)) for s, e in spans)

    out: list[TranscriptSegment] = []
    for segment in segments:
        words = segment.words or []
        if not words:
            a, c = overlap(segment.start_s, segment.end_s, agent), overlap(segment.start_s, segment.end_s, customer)
            out.append(segment.model_copy(update={"speaker": "agent" if a >= c else "customer"} if a or c else {}))
            continue
        runs: list[tuple[str, list[Any]]] = []
        for word in words:
            a, c = overlap(word.start_s, word.end_s, agent), overlap(word.start_s, word.end_s, customer)
            who = ("agent" if a >= c else "customer") if a or c else (runs[-1][0] if runs else "unknown")
            if runs and runs[-1][0] == who:
                runs[-1][1].append(word)
            else:
                runs.append((who, [word]))
        for who, run in runs:
            out.append(
                TranscriptSegment(
                    start_s=run[0].start_s,
                    end_s=run[-1].end_s,
                    text=" ".join(w.text for w in run),
                    speaker=who,  # type: ignore[arg-type]
                    words=run,
                )
            )
    return sorted(out, key=lambda s: (s.start_s, s.speaker))
