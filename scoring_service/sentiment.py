"""Per-turn and whole-call sentiment of English and Vietnamese transcripts.

Scores are VADER-style compounds in [-1, 1]. English uses VADER itself, with a small call-centre override list
(lexicons/sentiment_en_overrides.yaml: "support", "active", "please", "yes" are not affect on a support line; "does not work" and
"already called" are). Vietnamese has no packaged sentiment model, so it uses the project's lexicon (lexicons/sentiment_vi.yaml)
over underthesea's word segmentation with VADER's rules: boosters before/after a word add or take 0.293 (decaying with
distance), a negator up to three words back multiplies by -0.74, "nhưng" (but) halves what precedes and boosts what follows,
and the sum x is normalised as x / sqrt(x^2 + 15). Lexicon values follow VADER's where a word has an English equivalent, so one
threshold means the same for both languages.

Language: "en" or "vi" (a region suffix such as "vi-VN" is ignored); None or anything else decides per segment: any
Vietnamese diacritic or "đ" makes it Vietnamese, everything else goes to VADER.

Call metrics, from the non-empty turns of each party ("unknown" speakers, a mono transcript without roles, count for neither):
- customer_sentiment_mean, agent_sentiment_mean, agent_sentiment_min: over all of that party's turns.
- customer_sentiment_start / _end: mean of the customer's first / last k = ceil(n / 3) turns, n = their turn count. For n >= 2
  the two windows never overlap (2 * ceil(n / 3) <= n), so n = 2 compares the first turn with the last; with a single
  customer turn start, end and delta are not applicable rather than a misleading 0.
- customer_sentiment_delta = end - start: did the customer leave happier than they came.
Turns are weighted equally, so short neutral backchannels ("vâng", "right") pull the means towards 0.

underthesea is imported on the first Vietnamese text only (about 0.8 s and 90 MB RSS, plus 0.4 s and 25 MB for its CRF model on
the first call); afterwards word_tokenize costs about 0.3 ms per segment. Its lazily loaded model is not documented as
thread-safe, so calls go through a lock (the service scores two calls in parallel threads).
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from scoring_service.schemas import TranscriptSegment
from scoring_service.transcript import NO_TRANSCRIPT_REASON

LEXICON_DIR = Path(__file__).resolve().parent / "lexicons"
VI_LEXICON = LEXICON_DIR / "sentiment_vi.yaml"
EN_OVERRIDES = LEXICON_DIR / "sentiment_en_overrides.yaml"
SENTIMENT_METRICS = (
    "customer_sentiment_mean",
    "customer_sentiment_start",
    "customer_sentiment_end",
    "customer_sentiment_delta",
    "agent_sentiment_mean",
    "agent_sentiment_min",
)
CUSTOMER_METRICS = SENTIMENT_METRICS[:4]
AGENT_METRICS = SENTIMENT_METRICS[4:]

# VADER's constants (vaderSentiment 3.3.2), reused so Vietnamese scores sit on the same scale as English ones.
NORMALISATION_ALPHA = 15.0
NEGATION_SCALAR = -0.74
WINDOW_DECAY = (1.0, 0.95, 0.9)
CONTRAST_BEFORE, CONTRAST_AFTER = 0.5, 1.5
QUOTE_CHARS = 80

# Combining marks of Vietnamese letters after NFD: grave, acute, circumflex, tilde, breve, hook above, horn, dot below.
_VI_MARKS = frozenset("\u0300\u0301\u0302\u0303\u0306\u0309\u031b\u0323")
_PUNCT = re.compile(r"^[^\w\s]+$", re.UNICODE)


class _Entry(NamedTuple):
    kind: str  # sent | neg | boost | contrast | neutral
    value: float = 0.0  # valence (sent) or the scalar of a booster placed before the word
    after: float = 0.0  # the scalar of a booster placed after the word


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; in a hand-edited lexicon that hides a mistake, so refuse it."""


def _no_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"duplicate keys in lexicon: {dupes}")
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _key(phrase: str) -> str:
    if not isinstance(phrase, str):  # YAML 1.1 turns a bare yes/no/on/off key into a boolean
        raise ValueError(f"lexicon key {phrase!r} is not a string: quote it")
    return " ".join(unicodedata.normalize("NFC", phrase).lower().split())


def _load_yaml(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_UniqueKeyLoader)  # a SafeLoader subclass: no arbitrary objects


def load_vi_lexicon(path: Path = VI_LEXICON) -> dict[str, _Entry]:
    """phrase → entry; a phrase in two sections or a valence outside [-4, 4] is an error, raised at first use."""
    data = _load_yaml(path)
    entries: dict[str, _Entry] = {}

    def add(phrase: str, entry: _Entry) -> None:
        key = _key(phrase)
        old = entries.get(key)
        if old is not None and not (old.kind == entry.kind == "boost"):
            raise ValueError(f"{path.name}: {key!r} is both {old.kind} and {entry.kind}")
        if old is not None:  # one word can boost from either side ("quá tệ", "tệ quá")
            entry = _Entry("boost", old.value or entry.value, old.after or entry.after)
        entries[key] = entry

    for section, sign in (("positive", 1), ("negative", -1)):
        for phrase, valence in data[section].items():
            if not (0 < sign * float(valence) <= 4):
                raise ValueError(f"{path.name}: {section} {phrase!r} has valence {valence}")
            add(phrase, _Entry("sent", float(valence)))
    for section, kind in (("neutral", "neutral"), ("negators", "neg"), ("contrast", "contrast")):
        for phrase in data[section]:
            add(phrase, _Entry(kind))
    for phrase, scalar in data["boosters_before"].items():
        add(phrase, _Entry("boost", float(scalar)))
    for phrase, scalar in data["boosters_after"].items():
        add(phrase, _Entry("boost", 0.0, float(scalar)))
    return entries


# One lock per analyser, so a thread building VADER never waits for another importing underthesea.
_en_lock = threading.Lock()
_vi_lock = threading.Lock()
_tokenize_lock = threading.Lock()
_vader: Any = None
_en_patterns: tuple[re.Pattern[str], dict[str, str]] | None = None
_vi: tuple[dict[str, _Entry], int, Any] | None = None


def _english() -> tuple[Any, re.Pattern[str], dict[str, str]]:
    global _vader, _en_patterns
    if _vader is None:
        with _en_lock:
            if _vader is None:
                from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

                analyzer = SentimentIntensityAnalyzer()
                data = _load_yaml(EN_OVERRIDES)
                analyzer.lexicon.update({_key(w): float(v) for w, v in data["words"].items()})
                # VADER scores single words only: a phrase becomes one made-up token carrying the phrase's valence.
                sentinels: dict[str, str] = {}
                for i, (phrase, valence) in enumerate(data["phrases"].items()):
                    sentinels[_key(phrase)] = token = f"ccasphrase{i}x"
                    if valence:
                        analyzer.lexicon[token] = float(valence)
                alternatives = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in sorted(sentinels, key=len, reverse=True))
                _en_patterns = (re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE), sentinels)
                _vader = analyzer
    assert _en_patterns is not None
    return _vader, *_en_patterns


def _vietnamese() -> tuple[dict[str, _Entry], int, Any]:
    global _vi
    if _vi is None:
        with _vi_lock:
            if _vi is None:
                from underthesea import word_tokenize  # ~0.8 s and ~90 MB: only when Vietnamese text turns up

                entries = load_vi_lexicon()
                _vi = (entries, max(len(k.split()) for k in entries), word_tokenize)
    return _vi


def _score_en(text: str) -> float:
    analyzer, pattern, sentinels = _english()
    text = pattern.sub(lambda m: sentinels[_key(m.group(0))], text.replace("\u2019", "'"))
    return float(analyzer.polarity_scores(text)["compound"])


def _units(tokens: list[str], entries: dict[str, _Entry], longest: int) -> list[_Entry]:
    """Longest-first lexicon match over syllables; a one-syllable entry must be a whole segmented word."""
    syllables: list[str] = []
    whole_words: set[int] = set()  # syllable positions that are a one-syllable word
    for token in tokens:
        parts = _key(token).split()
        if len(parts) == 1:
            whole_words.add(len(syllables))
        syllables.extend(parts)
    units: list[_Entry] = []
    i = 0
    while i < len(syllables):
        for n in range(min(longest, len(syllables) - i), 0, -1):
            entry = entries.get(" ".join(syllables[i : i + n]))
            if entry is not None and (n > 1 or i in whole_words):
                units.append(entry)
                i += n
                break
        else:
            units.append(_Entry("break" if _PUNCT.match(syllables[i]) else "word"))
            i += 1
    return units


def _score_vi(text: str) -> float:
    entries, longest, word_tokenize = _vietnamese()
    with _tokenize_lock:
        tokens = word_tokenize(unicodedata.normalize("NFC", text))
    units = _units(tokens, entries, longest)
    contrast = next((i for i, u in enumerate(units) if u.kind == "contrast"), None)
    total = 0.0
    for i, unit in enumerate(units):
        if unit.kind != "sent":
            continue
        valence = unit.value
        sign = math.copysign(1.0, valence)
        negated = False
        for dist, j in enumerate(range(i - 1, max(i - 4, -1), -1)):
            if units[j].kind in ("break", "contrast"):
                break
            if units[j].kind == "boost":
                valence += sign * units[j].value * WINDOW_DECAY[dist]
            negated = negated or units[j].kind == "neg"
        for dist, j in enumerate(range(i + 1, min(i + 3, len(units)))):
            if units[j].kind in ("break", "contrast", "sent"):
                break  # a trailing booster belongs to the nearest word before it
            if units[j].kind == "boost":
                valence += sign * units[j].after * WINDOW_DECAY[dist]
        if negated:
            valence *= NEGATION_SCALAR
        if contrast is not None:
            valence *= CONTRAST_BEFORE if i < contrast else CONTRAST_AFTER
        total += valence
    return max(-1.0, min(1.0, total / math.sqrt(total * total + NORMALISATION_ALPHA)))


def is_vietnamese(text: str) -> bool:
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "đ" in decomposed or any(ch in _VI_MARKS for ch in decomposed)


def _language(text: str, language: str | None) -> str:
    code = (language or "").lower().replace("_", "-").split("-")[0]
    if code in ("en", "vi"):
        return code
    return "vi" if is_vietnamese(text) else "en"


def score_text(text: str, language: str | None) -> float:
    """Compound sentiment in [-1, 1] of one utterance; 0.0 for text without words."""
    if not any(ch.isalnum() for ch in text):
        return 0.0
    return _score_vi(text) if _language(text, language) == "vi" else _score_en(text)


def turn_sentiment(segments: list[TranscriptSegment] | None, language: str | None) -> list[dict[str, Any]]:
    """One row per segment in time order: start_s, end_s, speaker, text, sentiment (3 decimals)."""
    return [
        {"start_s": s.start_s, "end_s": s.end_s, "speaker": s.speaker, "text": s.text,
         "sentiment": round(score_text(s.text, language), 3)}
        for s in sorted(segments or [], key=lambda s: s.start_s)
    ]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def _note(party: str, turn: dict[str, Any]) -> tuple[float, float, str]:
    return (turn["start_s"], turn["end_s"], f"{party} {turn['sentiment']:+.2f}: '{_quote(turn['text'])}'")


def _no_turns_reason(party: str, turns: list[dict[str, Any]]) -> str:
    if any(t["speaker"] == "unknown" for t in turns):
        return f"no {party} turns: the transcript's speakers are unknown (mono call without speaker roles)"
    return f"no {party} turns in the transcript"


def sentiment_metrics(
    segments: list[TranscriptSegment] | None, language: str | None
) -> tuple[dict[str, Any], dict[str, str], dict[str, list[tuple[float, float, str]]]]:
    """(metrics, not_applicable reasons, evidence) for the sentiment criteria, shaped like transcript_metrics."""
    if segments is None:
        return dict.fromkeys(SENTIMENT_METRICS), dict.fromkeys(SENTIMENT_METRICS, NO_TRANSCRIPT_REASON), {}
    turns = [t for t in turn_sentiment(segments, language) if any(ch.isalnum() for ch in t["text"])]
    customer = [t for t in turns if t["speaker"] == "customer"]
    agent = [t for t in turns if t["speaker"] == "agent"]
    metrics: dict[str, Any] = dict.fromkeys(SENTIMENT_METRICS)
    not_applicable: dict[str, str] = {}
    evidence: dict[str, list[tuple[float, float, str]]] = {"customer_sentiment": [], "agent_sentiment": []}

    if customer:
        scores = [t["sentiment"] for t in customer]
        metrics["customer_sentiment_mean"] = round(_mean(scores), 3)
        if len(scores) >= 2:
            k = math.ceil(len(scores) / 3)
            start, end = _mean(scores[:k]), _mean(scores[-k:])
            metrics.update(customer_sentiment_start=round(start, 3), customer_sentiment_end=round(end, 3),
                           customer_sentiment_delta=round(end - start, 3))
        else:
            for name in CUSTOMER_METRICS[1:]:
                not_applicable[name] = "only one customer turn: the start and the end of the call cannot be told apart"
        lowest, highest = min(customer, key=lambda t: t["sentiment"]), max(customer, key=lambda t: t["sentiment"])
        picked = [t for t, keep in ((lowest, lowest["sentiment"] < 0), (highest, highest["sentiment"] > 0)) if keep]
        evidence["customer_sentiment"] = [_note("customer", t) for t in sorted(picked, key=lambda t: t["start_s"])]
    else:
        not_applicable.update(dict.fromkeys(CUSTOMER_METRICS, _no_turns_reason("customer", turns)))

    if agent:
        scores = [t["sentiment"] for t in agent]
        metrics.update(agent_sentiment_mean=round(_mean(scores), 3), agent_sentiment_min=round(min(scores), 3))
        lowest = min(agent, key=lambda t: t["sentiment"])
        evidence["agent_sentiment"] = [_note("agent", lowest)] if lowest["sentiment"] < 0 else []
    else:
        not_applicable.update(dict.fromkeys(AGENT_METRICS, _no_turns_reason("agent", turns)))
    return metrics, not_applicable, evidence
