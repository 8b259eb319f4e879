"""Sentiment of English (VADER) and Vietnamese (project lexicon over underthesea) transcripts, per turn and per call."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from callgen.script import LINES
from scoring_service import sentiment
from scoring_service.schemas import TranscriptSegment
from scoring_service.sentiment import (
    SENTIMENT_METRICS,
    load_vi_lexicon,
    score_text,
    sentiment_metrics,
    turn_sentiment,
)

REPO = Path(__file__).resolve().parents[2]
VI_COMPLAINTS = ["Tôi đã gọi ba lần rồi mà chưa ai giải quyết", "Sao tháng này tiền cước cao thế",
                 "Tôi khởi động lại rồi mà vẫn không được", "Alo tôi bị mất mạng từ sáng đến giờ"]
EN_COMPLAINTS = ["I have already called three times about this", "Why is my bill so high this month",
                 "I restarted it and it still does not work", "Hello my internet has been down since this morning"]


def seg(start: float, text: str, speaker: str = "customer") -> TranscriptSegment:
    return TranscriptSegment(start_s=start, end_s=start + 2.0, text=text, speaker=speaker)


# --- single utterances ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["The service was great, thank you so much", "I am very happy with the technician"])
def test_english_positive(text: str) -> None:
    assert score_text(text, "en") > 0.3


@pytest.mark.parametrize("text", ["This is terrible service", "I am really angry and disappointed", "That is not my problem"])
def test_english_negative(text: str) -> None:
    assert score_text(text, "en") < -0.2


@pytest.mark.parametrize("text", ["My account number is four five six", "I would like to change my plan please",
                                  "I will open a support ticket right now"])
def test_english_neutral(text: str) -> None:
    # The last two are VADER false positives ("like", "please", "support") that the override list neutralises.
    assert abs(score_text(text, "en")) < 0.1


@pytest.mark.parametrize("text", ["Dịch vụ rất tốt cảm ơn em", "Tôi rất hài lòng", "Em hỗ trợ nhiệt tình quá",
                                  "Tuyệt vời cảm ơn em rất nhiều", "Được rồi cảm ơn em"])
def test_vietnamese_positive(text: str) -> None:
    assert score_text(text, "vi") > 0.3


@pytest.mark.parametrize("text", ["Dịch vụ tệ quá", "Tôi rất bực mình", "Mạng chậm lắm em ạ", "Tôi thất vọng về dịch vụ bên em",
                                  "Các anh làm ăn chẳng ra gì", "Chẳng ai giúp được gì cả"])
def test_vietnamese_negative(text: str) -> None:
    assert score_text(text, "vi") < -0.2


@pytest.mark.parametrize(("plain", "negated"), [("hài lòng", "không hài lòng"), ("Dịch vụ tốt", "Dịch vụ chẳng tốt"),
                                                ("Cái này ổn", "Cái này chưa ổn"), ("tệ", "không tệ")])
def test_vietnamese_negation_flips_the_sign(plain: str, negated: str) -> None:
    before, after = score_text(plain, "vi"), score_text(negated, "vi")
    assert before * after < 0, (before, after)
    assert abs(after) < abs(before)  # VADER's -0.74: negating dampens as it flips


def test_vietnamese_intensifiers_and_dampeners() -> None:
    good = score_text("tốt", "vi")
    assert score_text("rất tốt", "vi") > good > 0
    assert score_text("tốt lắm", "vi") > good  # the booster after the word
    assert score_text("cực kỳ tốt", "vi") > score_text("rất tốt", "vi")
    slow = score_text("chậm", "vi")
    assert score_text("chậm quá", "vi") < slow < 0
    assert slow < score_text("hơi chậm", "vi") < 0  # "hơi" (a bit) softens


def test_vietnamese_words_inside_a_neutral_compound_do_not_fire() -> None:
    assert score_text("vui", "vi") > 0.3
    assert score_text("Anh chị vui lòng chờ máy", "vi") == 0.0  # "vui lòng" = please
    assert score_text("Em sẽ xử lý càng sớm càng tốt", "vi") == 0.0
    for courtesy in ("Dạ vâng ạ", "Vâng tôi hiểu rồi"):
        assert score_text(courtesy, "vi") == 0.0


@pytest.mark.parametrize("text", ["Tôi chủ yếu dùng mạng buổi tối", "Tôi xem tin tức trên mạng"])
def test_word_segmentation_keeps_a_syllable_inside_its_word(text: str) -> None:
    # "yếu" (weak) and "tức" (angry) are negative words, but here only syllables of "chủ yếu" (mainly) and "tin tức" (news),
    # compounds the lexicon does not list: underthesea's segmentation is what keeps them neutral.
    assert score_text("yếu", "vi") < 0 and score_text("tức", "vi") < 0
    assert score_text(text, "vi") == 0.0


def test_contrast_weighs_what_follows_but() -> None:
    assert score_text("Nhân viên dễ thương nhưng mạng chậm", "vi") < 0 < score_text("Mạng chậm nhưng nhân viên dễ thương", "vi")


# --- the lines the synthetic calls speak --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "language"), [(t, "vi") for t in VI_COMPLAINTS] + [(t, "en") for t in EN_COMPLAINTS])
def test_generator_complaints_are_negative(text: str, language: str) -> None:
    assert text in LINES[language]["customer"] + LINES[language]["opening"]  # still what callgen speaks
    assert score_text(text, language) < 0


@pytest.mark.parametrize("language", ["en", "vi"])
def test_generator_courtesy_and_closing_lines_are_positive(language: str) -> None:
    lines = LINES[language]["closing"] + LINES[language]["after_hold"] + LINES[language]["greeting"]
    lines += [LINES[language]["bye"][0]]  # "Thank you bye" / "Cảm ơn em chào em"; the other is a bare "bye"
    assert {"Thank you bye", "Cảm ơn em chào em"} & set(lines)
    assert [line for line in lines if score_text(line, language) <= 0] == []


@pytest.mark.parametrize("language", ["en", "vi"])
def test_generator_account_lines_are_near_neutral(language: str) -> None:
    lines = LINES[language]["agent"] + LINES[language]["hold"] + LINES[language]["filler"] + LINES[language]["customer"][:3]
    scores = {line: score_text(line, language) for line in lines if line not in VI_COMPLAINTS + EN_COMPLAINTS}
    assert {line: s for line, s in scores.items() if abs(s) >= 0.3} == {}


@pytest.mark.parametrize("language", ["en", "vi"])
def test_generator_prohibited_lines_are_negative(language: str) -> None:
    assert all(score_text(line, language) < 0 for line in LINES[language]["prohibited"])


# --- the lexicons ---------------------------------------------------------------------------------------------------------

def test_every_vietnamese_entry_scores_with_its_own_sign() -> None:
    # Catches an entry shadowed by a longer neutral one, or a one-syllable word the segmenter always glues to another.
    entries = load_vi_lexicon()
    wrong = {k: score_text(k, "vi") for k, e in entries.items()
             if e.kind == "sent" and not score_text(k, "vi") * e.value > 0}
    assert wrong == {}


def test_every_english_override_phrase_takes_effect() -> None:
    data = sentiment._load_yaml(sentiment.EN_OVERRIDES)
    for phrase, valence in data["phrases"].items():
        score = score_text(f"they said {phrase} today", "en")
        assert (score > 0) - (score < 0) == (valence > 0) - (valence < 0), (phrase, score)


@pytest.mark.parametrize(("body", "message"), [
    ("positive:\n  tốt: 1.9\n  tốt: 2.0\n", "duplicate"),
    ("positive:\n  tốt: 1.9\nnegative:\n  tốt: -1.0\n", "both"),
    ("positive:\n  tốt: -1.9\nnegative: {}\n", "valence"),
    ("positive:\n  yes: 1.0\n", "not a string"),  # YAML 1.1 reads a bare yes as true
])
def test_a_broken_lexicon_is_refused(tmp_path: Path, body: str, message: str) -> None:
    rest = "neutral: []\nnegators: []\ncontrast: []\nboosters_before: {}\nboosters_after: {}\n"
    path = tmp_path / "lexicon.yaml"
    path.write_text(body + ("negative: {}\n" if "negative" not in body else "") + rest, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_vi_lexicon(path)


# --- language choice ------------------------------------------------------------------------------------------------------

def test_language_none_decides_per_segment() -> None:
    assert score_text("Dịch vụ tệ quá", None) == score_text("Dịch vụ tệ quá", "vi") < 0
    assert score_text("Terrible service", None) == score_text("Terrible service", "en") < 0
    # Scored as English, the Vietnamese line would be neutral: VADER knows none of its words.
    assert score_text("Dịch vụ tệ quá", "en") == 0.0
    assert score_text("Tôi rất hài lòng", "vi-VN") == score_text("Tôi rất hài lòng", "vi") > 0


def test_mixed_language_call() -> None:
    segments = [seg(0, "Hello my internet has been down since this morning"), seg(5, "Mạng chậm quá em ơi"),
                seg(10, "Ok cảm ơn em nhiều"), seg(15, "Thank you so much, great help")]
    turns = turn_sentiment(segments, None)
    assert [t["sentiment"] < 0 for t in turns] == [True, True, False, False]
    assert all(t["sentiment"] > 0 for t in turns[2:])
    metrics, _, _ = sentiment_metrics(segments, None)
    assert metrics["customer_sentiment_delta"] > 0.5


def test_empty_text_is_neutral_and_not_a_turn() -> None:
    assert score_text("", "vi") == score_text(" ... ", "en") == 0.0
    metrics, _, _ = sentiment_metrics([seg(0, "Tệ quá"), seg(3, "  "), seg(6, "")], "vi")
    assert metrics["customer_sentiment_mean"] == round(score_text("Tệ quá", "vi"), 3)


# --- call metrics ---------------------------------------------------------------------------------------------------------

ANGRY_TO_THANKFUL = [
    seg(0, "Alo tôi bị mất mạng từ sáng đến giờ"),
    seg(4, "Xin chào em là Lan rất vui được hỗ trợ anh chị hôm nay", "agent"),
    seg(8, "Tôi đã gọi ba lần rồi mà chưa ai giải quyết"),
    seg(12, "Dạ em rất hiểu sự bất tiện của anh chị", "agent"),
    seg(16, "Vâng tôi hiểu rồi"),
    seg(20, "Được rồi cảm ơn em nhiều"),
    seg(24, "Cảm ơn em chào em"),
    seg(28, "Cảm ơn anh chị đã gọi chúc anh chị một ngày tốt lành", "agent"),
]


def test_customer_who_ends_thankful_has_positive_delta() -> None:
    metrics, not_applicable, evidence = sentiment_metrics(ANGRY_TO_THANKFUL, "vi")
    assert not_applicable == {}
    assert set(metrics) == set(SENTIMENT_METRICS)
    assert metrics["customer_sentiment_start"] < 0 < metrics["customer_sentiment_end"]
    assert metrics["customer_sentiment_delta"] == pytest.approx(
        metrics["customer_sentiment_end"] - metrics["customer_sentiment_start"], abs=0.0015)
    assert metrics["customer_sentiment_delta"] > 0.5
    assert metrics["agent_sentiment_min"] < 0 < metrics["agent_sentiment_mean"]  # the empathy line names the inconvenience
    notes = evidence["customer_sentiment"]
    assert len(notes) == 2 and notes[0][2].startswith("customer -") and notes[1][2].startswith("customer +")
    assert "mất mạng" in notes[0][2] and notes[0][:2] == (0.0, 2.0)
    assert evidence["agent_sentiment"][0][:2] == (12.0, 14.0)


def test_customer_who_turns_angry_has_negative_delta() -> None:
    texts = ["Hi thanks, the technician was great", "Okay", "Why is my bill so high this month", "This is terrible, I am angry"]
    metrics, _, _ = sentiment_metrics([seg(i * 5.0, t) for i, t in enumerate(texts)], "en")
    assert metrics["customer_sentiment_delta"] < -0.5
    assert metrics["customer_sentiment_start"] > 0 > metrics["customer_sentiment_end"]


def test_start_and_end_are_the_first_and_last_third_of_customer_turns() -> None:
    # Five turns: k = ceil(5 / 3) = 2, so the middle turn is in neither window; segments arrive out of order on purpose.
    texts = ["Tệ quá", "Tôi rất bực mình", "Tuyệt vời", "Được rồi", "Cảm ơn em"]
    segments = [seg(i * 5.0, t) for i, t in enumerate(texts)][::-1]
    metrics, _, _ = sentiment_metrics(segments, "vi")
    scores = [round(score_text(t, "vi"), 3) for t in texts]
    assert metrics["customer_sentiment_start"] == round((scores[0] + scores[1]) / 2, 3)
    assert metrics["customer_sentiment_end"] == round((scores[3] + scores[4]) / 2, 3)
    assert metrics["customer_sentiment_mean"] == round(sum(scores) / 5, 3)


def test_two_customer_turns_compare_first_with_last_and_one_turn_has_no_delta() -> None:
    metrics, not_applicable, _ = sentiment_metrics([seg(0, "Tệ quá"), seg(5, "Cảm ơn em")], "vi")
    assert metrics["customer_sentiment_start"] == round(score_text("Tệ quá", "vi"), 3)
    assert metrics["customer_sentiment_end"] == round(score_text("Cảm ơn em", "vi"), 3)
    metrics, not_applicable, _ = sentiment_metrics([seg(0, "Tệ quá"), seg(5, "Dạ em xin lỗi", "agent")], "vi")
    assert metrics["customer_sentiment_mean"] < 0
    for name in ("customer_sentiment_start", "customer_sentiment_end", "customer_sentiment_delta"):
        assert metrics[name] is None and "one customer turn" in not_applicable[name]


def test_unknown_speakers_count_for_neither_party() -> None:
    segments = [seg(0, "Tệ quá", "unknown"), seg(5, "Cảm ơn em", "unknown")]
    metrics, not_applicable, evidence = sentiment_metrics(segments, "vi")
    assert metrics == dict.fromkeys(SENTIMENT_METRICS)
    assert set(not_applicable) == set(SENTIMENT_METRICS)
    assert all("unknown" in reason for reason in not_applicable.values())
    assert evidence == {"customer_sentiment": [], "agent_sentiment": []}
    assert [t["sentiment"] < 0 for t in turn_sentiment(segments, "vi")] == [True, False]  # still scored per turn


def test_agent_only_transcript_has_no_customer_metrics() -> None:
    metrics, not_applicable, _ = sentiment_metrics([seg(0, "Thank you for calling", "agent")], "en")
    assert metrics["agent_sentiment_mean"] == metrics["agent_sentiment_min"] > 0
    assert metrics["customer_sentiment_mean"] is None
    assert not_applicable["customer_sentiment_mean"] == "no customer turns in the transcript"


@pytest.mark.parametrize("segments", [None, []])
def test_no_transcript(segments: list[TranscriptSegment] | None) -> None:
    metrics, not_applicable, evidence = sentiment_metrics(segments, "en")
    assert metrics == dict.fromkeys(SENTIMENT_METRICS)
    assert set(not_applicable) == set(SENTIMENT_METRICS)
    if segments is None:
        assert all(r.startswith("no transcript") for r in not_applicable.values()) and evidence == {}
    assert turn_sentiment(segments, "en") == []


# --- loading and threads --------------------------------------------------------------------------------------------------

def test_underthesea_loads_only_for_vietnamese_text() -> None:
    code = ("import sys; from scoring_service.sentiment import score_text; score_text('Thank you bye', 'en');"
            "print('underthesea' in sys.modules); score_text('Cảm ơn em', None); print('underthesea' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "True"], result.stderr[-2000:]


def test_parallel_first_use_gives_the_sequential_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [(t, lang) for lang in ("en", "vi") for t in LINES[lang]["customer"] + LINES[lang]["closing"]] * 4
    expected = [score_text(t, lang) for t, lang in lines]
    monkeypatch.setattr(sentiment, "_vader", None)  # both analysers are built again, by racing threads
    monkeypatch.setattr(sentiment, "_vi", None)
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda item: score_text(*item), lines))
    assert got == expected
