"""Phrase matching that tolerates ASR errors without inventing matches, with the words and times as evidence."""

from __future__ import annotations

from scoring_service.schemas import TranscriptSegment, Word
from scoring_service.scorecard import load_scorecard
from scoring_service.transcript import (
    assign_speakers,
    find_phrase,
    fold,
    heard_words,
    phrases_for,
    transcript_metrics,
)

CARD = load_scorecard()
MATCHING = CARD.matching


def _words(text: str, start: float = 0.0) -> list:
    return heard_words(TranscriptSegment(start_s=start, end_s=start + len(text.split()) * 0.4, text=text, speaker="agent"))


def test_fold_strips_vietnamese_tone_marks_and_d_bar() -> None:
    assert fold("cảm ơn quý khách đã gọi") == "cam on quy khach da goi"
    assert fold("Đồng ý") == "Dong y"


def test_misheard_phrases_match_above_the_threshold_and_say_what_was_heard() -> None:
    hit = find_phrase(_words("and you for calling how may i help you"), "thank you for calling", 0.8, 6)
    assert hit is not None and hit.heard == "and you for calling" and 0.8 <= hit.similarity < 1
    assert hit.note("greeting") == "greeting: 'thank you for calling' heard as 'and you for calling' (0.90)"
    # Lost tone marks on a multi-word Vietnamese phrase still match it, exactly.
    hit = find_phrase(_words("cam on anh chi da goi"), "cảm ơn anh chị đã gọi", 0.8, 6)
    assert hit is not None and hit.similarity == 1.0


def test_unrelated_or_short_words_do_not_match() -> None:
    assert find_phrase(_words("let me check your account details"), "thank you for calling", 0.8, 6) is None
    assert find_phrase(_words("i am old"), "hold", 0.8, 6) is None  # short phrases match exactly only
    assert find_phrase(_words("please hold on"), "hold", 0.8, 6) is not None
    # Short phrases match exactly (tone marks aside): the customer's "của anh" is no greeting.
    assert find_phrase(_words("số của anh"), "chào anh", 0.8, MATCHING.min_fuzzy_chars) is None
    assert find_phrase(_words("chao anh"), "chào anh", 0.8, MATCHING.min_fuzzy_chars) is not None
    # One Vietnamese syllable keeps its tone marks: "ma" is not "mà".
    assert find_phrase(_words("ma"), "mà", 0.9, 0) is None
    # Prohibited phrases cap the score, so the stricter threshold refuses a near miss the normal one would take:
    # "not a problem" is courteous.
    near = _words("no that is not a problem")
    assert find_phrase(near, "not my problem", MATCHING.fuzzy_threshold, 6) is not None
    assert find_phrase(near, "not my problem", MATCHING.prohibited_threshold, 6) is None


def test_evidence_carries_the_matched_words_times() -> None:
    words = [
        Word(start_s=1.0, end_s=1.3, text="Good", confidence=0.9),
        Word(start_s=1.3, end_s=1.8, text="morning", confidence=0.9),
        Word(start_s=2.0, end_s=2.2, text="and", confidence=0.4),
        Word(start_s=2.2, end_s=2.4, text="you", confidence=0.9),
        Word(start_s=2.4, end_s=2.6, text="for", confidence=0.9),
        Word(start_s=2.6, end_s=3.1, text="calling.", confidence=0.9),
    ]
    seg = TranscriptSegment(start_s=1.0, end_s=3.1, text="Good morning and you for calling.", speaker="agent", words=words)
    metrics, _na, evidence = transcript_metrics([seg], CARD.phrases, 60.0, [], "en", MATCHING)
    assert metrics["greeting_found"] == 1
    (start, end, note), = evidence["greeting"]
    # The best match wins: the exact "good morning" (1.0-1.8 s) over the misheard "thank you for calling".
    assert (start, end) == (1.0, 1.8) and note == "greeting: 'good morning'"


def test_phrase_lists_follow_the_call_language() -> None:
    assert "xin chào" in phrases_for(CARD.phrases, "greeting", "vi")
    assert "xin chào" not in phrases_for(CARD.phrases, "greeting", "en")
    both = phrases_for(CARD.phrases, "greeting", None)
    assert "xin chào" in both and "hello" in both
    english_greeting = [TranscriptSegment(start_s=1, end_s=3, text="Hello how can I help", speaker="agent")]
    assert transcript_metrics(english_greeting, CARD.phrases, 60.0, [], "vi", MATCHING)[0]["greeting_found"] == 0
    assert transcript_metrics(english_greeting, CARD.phrases, 60.0, [], None, MATCHING)[0]["greeting_found"] == 1


def test_the_words_that_greeted_do_not_also_close_a_short_call() -> None:
    segs = [TranscriptSegment(start_s=1, end_s=3, text="Good morning thank you for calling", speaker="agent")]
    metrics, _na, evidence = transcript_metrics(segs, CARD.phrases, 20.0, [], "en", MATCHING)
    assert metrics["greeting_found"] == 1 and metrics["closing_found"] == 0 and evidence["closing"] == []
    segs.append(TranscriptSegment(start_s=15, end_s=17, text="thanks for calling goodbye", speaker="agent"))
    assert transcript_metrics(segs, CARD.phrases, 20.0, [], "en", MATCHING)[0]["closing_found"] == 1


def test_customer_words_never_count_for_the_agent() -> None:
    segs = [TranscriptSegment(start_s=1, end_s=3, text="That is not my problem", speaker="customer")]
    assert transcript_metrics(segs, CARD.phrases, 60.0, [], "en", MATCHING)[0]["prohibited_count"] == 0


def test_mono_words_go_to_the_party_whose_speech_they_overlap() -> None:
    words = [Word(start_s=t, end_s=t + 0.4, text=w) for t, w in ((1.0, "hello"), (1.5, "thanks"), (3.0, "hi"), (3.5, "there"))]
    line = TranscriptSegment(start_s=1.0, end_s=3.9, text="hello thanks hi there", words=words)
    split = assign_speakers([line], agent=[(0.9, 2.0)], customer=[(2.9, 4.0)])
    assert [(s.speaker, s.text, s.start_s, s.end_s) for s in split] == [
        ("agent", "hello thanks", 1.0, 1.9),
        ("customer", "hi there", 3.0, 3.9),
    ]
    # A word in neither party's speech stays with its neighbour; a text-only segment goes to the larger overlap.
    stray = TranscriptSegment(start_s=2.0, end_s=2.9, text="um", words=[Word(start_s=2.3, end_s=2.5, text="um")])
    assert assign_speakers([stray], [(0.0, 1.0)], [(5.0, 6.0)])[0].speaker == "unknown"
    text_only = TranscriptSegment(start_s=3.0, end_s=4.0, text="hi there")
    assert assign_speakers([text_only], [(0.9, 2.0)], [(2.9, 4.0)])[0].speaker == "customer"
