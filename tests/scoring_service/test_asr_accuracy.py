"""ASR on generated calls: word error rate per language and engine, and the transcript criteria's decisions vs the truth.

Calls: English and Vietnamese, mono µ-law and stereo µ-law, 8 kHz, the generator's several voices per role. The generator knows
what it said, so each criterion (greeting, closing, empathy, prohibited phrase, hold etiquette) has a true answer; the scorer's
decision from the recognised words is counted as a true/false positive/negative and precision/recall are printed per language.

The Vietnamese speech is espeak-ng's, which is robotic (tones flattened): every engine hears it far worse than real Vietnamese
speech, so the Vietnamese floors below are low and measure that the path works end to end, not what a real call would give.
Floors were set from the first measurement (docs/scoring.md has the table), with a margin for other machines' float rounding.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pytest

from audio.wav import read_wav, wav_bytes
from callgen import CallPlan, plan_call, render_call
from callgen.asr_truth import reference_words, word_error_rate, words_of
from ccas.settings import whisper_model_dir
from scoring_service.asr import (
    FasterWhisperTranscriber,
    Transcriber,
    make_transcriber,
    parse_language_engines,
    speech_tracks,
)
from scoring_service.features import Features, extract
from scoring_service.scorecard import load_scorecard
from scoring_service.settings import ScoringSettings
from scoring_service.transcript import transcript_metrics

pytestmark = pytest.mark.slow

MODEL_DIR = whisper_model_dir()
DURATION_S = 55
# Seeds picked by listing plans' truth so that each language has calls with and without greeting, closing, empathy, a
# prohibited phrase and a hold; the test asserts that mix, so a generator change that loses it fails here, not silently.
SEEDS = {
    "en": [6030, 6046, 6065, 6005, 6019, 6034, 6000, 6001],
    "vi": [6030, 6046, 6065, 6005, 6019, 6034, 6000, 6001],
}
# The engine the service's defaults use per language (asr-engine faster-whisper, asr-language-engines vi=viet-asr): the floors
# hold it; the other engines are measured and printed for comparison. First measurement (8 calls per language, 55 s each):
# en Whisper WER 24 %, all five criteria recall 100 %, empathy precision 75 %, others 100 %; vi viet-asr WER 74 % (Whisper
# 96 %), closing recall 80 %, empathy 100 %, greeting 50 % at precision 67 %, hold etiquette and prohibited 0 %.
CHOSEN = {"en": "faster-whisper", **parse_language_engines(ScoringSettings.model_fields["asr_language_engines"].default)}
WER_CEILING = {"en": 0.35, "vi": 0.85}
RECALL_FLOOR = {
    "en": {"greeting": 0.8, "closing": 0.8, "empathy": 0.8, "prohibited": 0.6},
    "vi": {"closing": 0.6, "empathy": 0.5},
}
PRECISION_FLOOR = {"en": {"greeting": 0.8, "closing": 0.8, "empathy": 0.6, "prohibited": 1.0}, "vi": {"prohibited": 1.0}}
CRITERIA = {
    "greeting": "greeting_found",
    "closing": "closing_found",
    "empathy": "empathy_count",
    "prohibited": "prohibited_count",
    "hold_etiquette": "hold_etiquette_ok",
}


@dataclass(frozen=True)
class Heard:
    engine: str
    language: str
    layout: str
    plan: CallPlan
    wer_pairs: tuple[tuple[list[str], list[str]], ...]
    metrics: dict[str, Any]
    detected: str | None


@lru_cache(maxsize=1)
def _engines() -> dict[str, Transcriber]:
    assert (MODEL_DIR / "model.bin").is_file(), f"no Whisper model in {MODEL_DIR}: run `bash scripts/models.sh` (make setup does)"
    whisper = make_transcriber("faster-whisper", MODEL_DIR, beam_size=1)
    viet = make_transcriber("viet-asr")
    assert whisper is not None and viet is not None
    return {"faster-whisper": whisper, "viet-asr": viet}


def _features(plan: CallPlan) -> Features:
    pcm, rate, _ = read_wav(wav_bytes(render_call(plan), 8000, "ulaw"))
    return extract(pcm, rate, "agent_left" if plan.stereo else "mono")


@lru_cache(maxsize=1)
def corpus() -> tuple[Heard, ...]:
    card = load_scorecard()
    out = []
    for language, seeds in SEEDS.items():
        for i, seed in enumerate(seeds):
            plan = plan_call(seed, duration_s=DURATION_S, language=language, stereo=i % 2 == 1)
            features = _features(plan)
            engines = ["faster-whisper"] + (["viet-asr"] if language == "vi" else [])
            for name in engines:
                engine = _engines()[name]
                detected = None
                if isinstance(engine, FasterWhisperTranscriber):
                    detected = engine.detect_language(speech_tracks(features.signals, features.speech))[0]
                heard = engine.transcribe(features.signals, features.speech, language)
                speakers = ("agent", "customer") if plan.stereo else (None,)
                pairs = tuple(
                    (
                        reference_words(plan, who),
                        [w for s in heard.segments if who is None or s.speaker == who for w in words_of(s.text)],
                    )
                    for who in speakers
                )
                metrics, _na, _evidence = transcript_metrics(
                    heard.segments, card.phrases, features.duration_s, features.intervals.get("hold", []), language, card.matching
                )
                layout = "stereo" if plan.stereo else "mono"
                out.append(Heard(name, language, layout, plan, pairs, metrics, detected))
    return tuple(out)


def _decisions(runs: list[Heard]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0})
    for run in runs:
        for criterion, metric in CRITERIA.items():
            truth, value = run.plan.truth["phrases"][criterion], run.metrics.get(metric)
            if truth is None or value is None:
                continue  # no hold in the truth or none detected: hold etiquette has no decision
            said, found = bool(truth), bool(value)
            counts[criterion][("t" if said == found else "f") + ("p" if found else "n")] += 1
    return counts


def _rate(num: int, den: int) -> float | None:
    return num / den if den else None


def test_corpus_holds_both_answers_of_every_criterion() -> None:
    for language, seeds in SEEDS.items():
        truths = [plan_call(s, duration_s=DURATION_S, language=language).truth["phrases"] for s in seeds]
        for criterion in ("greeting", "closing", "empathy", "prohibited"):
            values = {bool(t[criterion]) for t in truths}
            assert values == {True, False}, f"{language}: the corpus needs calls with and without {criterion}"
        assert any(t["hold_etiquette"] is not None for t in truths), f"{language}: the corpus needs a call with a hold"


def test_word_error_rate_per_language_and_engine() -> None:
    table = defaultdict(list)
    for run in corpus():
        table[(run.engine, run.language)] += list(run.wer_pairs)
        table[(run.engine, run.language, run.layout)] += list(run.wer_pairs)
    print("\nWER per engine and language (corpus WER over the calls' words):")
    for key, pairs in sorted(table.items()):
        print(f"  {' / '.join(key):34s} {word_error_rate(pairs):6.1%}  ({sum(len(r) for r, _ in pairs)} words)")
    for language, ceiling in WER_CEILING.items():
        wer = word_error_rate(table[(CHOSEN[language], language)])
        assert wer <= ceiling, f"{language} ({CHOSEN[language]}): WER {wer:.0%} above its ceiling {ceiling:.0%}"
    whisper = [r for r in corpus() if r.engine == "faster-whisper"]
    detected = sum(r.detected == r.language for r in whisper)
    print(f"  language detection (Whisper, vi/en): {detected}/{len(whisper)} correct")
    assert sum(r.detected == r.language for r in whisper if r.language == "en") == len(SEEDS["en"])


def test_transcript_criteria_precision_and_recall() -> None:
    print("\ncriterion decisions vs truth (greedy decoding; language from metadata; floors on the chosen engine):")
    for engine, language in sorted({(r.engine, r.language) for r in corpus()}):
        runs = [r for r in corpus() if r.engine == engine and r.language == language]
        for criterion, c in sorted(_decisions(runs).items()):
            precision, recall = _rate(c["tp"], c["tp"] + c["fp"]), _rate(c["tp"], c["tp"] + c["fn"])
            print(f"  {engine:14s} {language} {criterion:15s} precision {_fmt(precision)} recall {_fmt(recall)}  {dict(c)}")
            if engine != CHOSEN[language]:
                continue  # compared, not relied on: the floors hold the engine the defaults use for the language
            floor = PRECISION_FLOOR[language].get(criterion)
            if floor is not None and precision is not None:
                assert precision >= floor, f"{language} {criterion}: precision {precision:.2f} < {floor}"
            floor = RECALL_FLOOR[language].get(criterion)
            if floor is not None:
                assert recall is not None and recall >= floor, f"{language} {criterion}: recall {recall} < {floor}"


def _fmt(x: float | None) -> str:
    return " n/a" if x is None else f"{x:4.0%}"
