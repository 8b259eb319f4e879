"""Acceptance: on 30 generated calls, measured metrics are within ±0.3 s or ±3 % of the truth, and every criterion decision
matches the decision the truth implies. Prints the error table (always, via capsys.disabled)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

from audio import dsp
from scoring_service.features import CLIP_LEVEL, two_party_metrics
from scoring_service.scorecard import Criterion, passes
from scoring_service.scorer import ScoreFields, Scorer
from scoring_service.sentiment import sentiment_metrics
from scoring_service.settings import ScoringSettings
from tests.scoring_service.conftest import TEST_TOKEN
from tests.scoring_service.corpus import DURATIONS_S, Case, case

TIMED = ("dead_air_total_s", "hold_total_s", "speech_total_s", "agent_talk_s", "customer_talk_s", "overtalk_total_s")


def tolerance(truth: float) -> float:
    return max(0.3, 0.03 * abs(truth))


def _intervals(c: Case, speaker: str) -> list[tuple[float, float]]:
    return [(s["start_s"], s["end_s"]) for s in c.plan.truth["segments"] if s["kind"] == "speech" and s["speaker"] == speaker]


def truth_values(c: Case) -> dict[str, Any]:
    """The value of every criterion metric as the ground truth defines it."""
    t = c.plan.truth
    values: dict[str, Any] = {k: t[k] for k in ("dead_air_total_s", "dead_air_longest_s", "hold_total_s", "speech_total_s")}
    agent, customer = _intervals(c, "agent"), _intervals(c, "customer")
    pcm = dsp.to_float(c.pcm)
    if c.plan.stereo:
        values.update(two_party_metrics(agent, customer)[0])
        level_track, level_ivs = pcm[:, 0], agent
        # Every generated voice speaks at 145–175 wpm, a normal tempo: the tempo criterion should pass.
        values["agent_speech_rate"] = "normal"
    else:
        level_track, level_ivs = pcm[:, 0], agent + customer
    mask = np.zeros(len(level_track), dtype=bool)
    for start, end in level_ivs:
        mask[int(start * c.sample_rate) : int(end * c.sample_rate)] = True
    values["agent_loudness_dbfs"] = dsp.rms_db(level_track[mask])
    values["agent_clipping_ratio"] = float(np.mean(np.abs(c.pcm[:, 0].astype(np.int32)) >= CLIP_LEVEL))
    phrases = t["phrases"]
    values.update(
        greeting_found=int(phrases["greeting"]),
        closing_found=int(phrases["closing"]),
        empathy_count=int(phrases["empathy"]),
        prohibited_count=int(phrases["prohibited"]),
        hold_etiquette_ok=None if phrases["hold_etiquette"] is None else int(phrases["hold_etiquette"]),
    )
    # The generator has no notion of mood: the truth of the sentiment metrics is the lexicon's reading of the words spoken, so
    # this checks that the scorer carries them from the transcript to the criterion (sentiment itself: test_sentiment.py).
    values.update(sentiment_metrics(c.transcript(), c.plan.language)[0])
    return values


def expected_decision(criterion: Criterion, truth: Any) -> set[bool]:
    """Decisions consistent with the truth; both when the truth lies within measurement tolerance of a threshold."""
    if truth == "normal":
        return {True}
    metric = criterion.metric
    if metric.endswith("_s"):
        tol = tolerance(float(truth))
    elif metric == "talk_listen_ratio":
        tol = 0.05
    elif metric.endswith("_dbfs"):
        tol = 1.0
    else:  # counts, flags and the clipping ratio are exact
        tol = 0.0
    return {passes(criterion, float(truth) + d) for d in (-tol, 0.0, tol)}


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(ScoringSettings(asr_engine="none", token=TEST_TOKEN))  # module scope: before the autouse token


@pytest.mark.slow
def test_thirty_calls_match_ground_truth(scorer: Scorer, capsys: pytest.CaptureFixture[str]) -> None:
    rows, failures, decisions, borderline = [], [], 0, 0
    for index in range(len(DURATIONS_S)):
        c = case(index)
        result = scorer.score_file(io.BytesIO(c.wav), ScoreFields(call_id=f"acc{index}", transcript=c.transcript()))
        assert result.scorable, f"{c.label}: {result.reason}"
        m, truth = result.metrics, truth_values(c)
        errors = {}
        for key in TIMED:
            if not c.plan.stereo and key in ("agent_talk_s", "customer_talk_s", "overtalk_total_s"):
                assert m[key] is None, f"{c.label}: {key} must be N/A on mono"
                continue
            truth_value = c.plan.truth[key]
            errors[key] = m[key] - truth_value
            if abs(errors[key]) > tolerance(truth_value):
                failures.append(f"{c.label} {key}: measured {m[key]} truth {truth_value}")
        for item in result.breakdown:
            criterion = next(cr for cr in scorer.card.criteria if cr.id == item.criterion)
            want = truth.get(criterion.metric)
            if want is None:
                if item.applicable:
                    failures.append(f"{c.label} {item.criterion}: applicable, truth says N/A")
                continue
            if not item.applicable:
                failures.append(f"{c.label} {item.criterion}: N/A ({item.reason}), truth has {want}")
                continue
            allowed = expected_decision(criterion, want)
            decisions += 1
            borderline += len(allowed) > 1
            if item.passed not in allowed:
                failures.append(
                    f"{c.label} {item.criterion}: passed={item.passed}, truth {want} → {allowed} (value {item.value})"
                )
        rows.append((c, errors))
    with capsys.disabled():
        print("\n" + _table(rows))
        print(f"criterion decisions checked: {decisions} ({borderline} within tolerance of a threshold, either outcome accepted)")
    assert not failures, "\n".join(failures)
    assert decisions > 30 * 8


def _table(rows: list[tuple[Case, dict[str, float]]]) -> str:
    head = f"{'call':<30}{'dur s':>7}" + "".join(f"{k.replace('_s', ''):>17}" for k in TIMED)
    lines = [head, "-" * len(head)]
    worst = dict.fromkeys(TIMED, 0.0)
    for c, errors in rows:
        cells = ""
        for key in TIMED:
            if key in errors:
                cells += f"{errors[key]:>+17.3f}"
                worst[key] = max(worst[key], abs(errors[key]))
            else:
                cells += f"{'n/a':>17}"
        lines.append(f"{c.label:<30}{c.plan.duration_s:>7.0f}{cells}")
    lines.append("-" * len(head))
    lines.append(f"{'max |error| (s)':<37}" + "".join(f"{worst[k]:>17.3f}" for k in TIMED))
    return "measured − truth, seconds (tolerance ±max(0.3 s, 3 % of truth))\n" + "\n".join(lines)
