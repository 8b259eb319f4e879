"""What a perfect ASR would have heard in a planned call, and word error rate against it.

The reference is the plan's utterances in time order (per speaker on stereo, the whole line on mono), cut-off utterances
dropped (nobody knows how many of their words were heard). Both sides are normalised the same way: NFC, lower case,
punctuation removed; Vietnamese keeps its diacritics, which are part of the word.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from callgen.plan import CallPlan

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)


def words_of(text: str) -> list[str]:
    return _PUNCT.sub(" ", unicodedata.normalize("NFC", text).lower()).split()


def reference_words(plan: CallPlan, speaker: str | None = None) -> list[str]:
    """The words spoken (by `speaker`, or by both in time order), cut-off utterances excluded."""
    spoken = [u for u in plan.utterances if not u.truncated and (speaker is None or u.speaker == speaker)]
    return [w for u in sorted(spoken, key=lambda u: u.start_s) for w in words_of(u.text)]


def spoken_truncated(plan: CallPlan) -> bool:
    return any(u.truncated for u in plan.utterances)


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_error_rate(pairs: Iterable[tuple[list[str], list[str]]]) -> float:
    """Corpus WER: total edits over total reference words (not a mean of per-call rates)."""
    edits = words = 0
    for ref, hyp in pairs:
        edits += edit_distance(ref, hyp)
        words += len(ref)
    return edits / words if words else 0.0
