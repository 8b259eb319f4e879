"""What one agent's (or skill's) window of scored calls adds up to: the facts taken from each call and the combine over them.

Kept apart from the windowing (pipeline/transforms/scorecard.py) so the arithmetic is plain Python a test can recompute, and
so that a SQL recomputation over `scoring_result` (tests, docs/analytics.md) can be checked against the same definitions:
- `calls` every call that got a result (scorable or not); `scored_calls` those with a score;
- score mean/min/max and the 50th/90th percentiles by linear interpolation (PostgreSQL's `percentile_cont`);
- per criterion: how many calls it applied to and how many of those passed (`pass_rate` = passed / applicable);
- dead-air and hold totals (s), and the means of talk/listen ratio and customer sentiment over the calls that have one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pipeline.model import ScoredCall, parse_iso

PERCENTILES = (50, 90)


@dataclass(frozen=True)
class CallFacts:
    """The part of a scored call a scorecard needs; timestamped with the call's end (event time)."""

    call_id: str
    agent_id: str | None
    skill: str | None
    ended_at: str
    score: float | None
    model_version: str
    criteria: tuple[tuple[str, bool], ...]  # (criterion, passed) for each criterion that applied to the call
    dead_air_s: float
    hold_s: float
    talk_listen_ratio: float | None
    customer_sentiment: float | None

    @property
    def event_time_s(self) -> float:
        return parse_iso(self.ended_at).timestamp()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else None


def call_facts(scored: ScoredCall) -> CallFacts:
    metrics = scored.response.get("metrics") or {}
    criteria = tuple(
        (str(item["criterion"]), bool(item["passed"]))
        for item in scored.breakdown
        if item.get("applicable", True) and item.get("passed") is not None
    )
    call = scored.audio.call
    return CallFacts(
        call_id=scored.call_id, agent_id=call.agent_id, skill=call.skill, ended_at=call.ended_at,
        score=scored.score if scored.scorable else None, model_version=scored.model_version, criteria=criteria,
        dead_air_s=_number(metrics.get("dead_air_total_s")) or 0.0, hold_s=_number(metrics.get("hold_total_s")) or 0.0,
        talk_listen_ratio=_number(metrics.get("talk_listen_ratio")),
        customer_sentiment=_number(metrics.get("customer_sentiment_mean")),
    )


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont(q / 100)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def window_values(calls: Iterable[CallFacts]) -> dict[str, Any]:
    """The scorecard of a window's calls; a call that came through twice (a requeue, a replay after a restart) counts once,
    with its latest result."""
    latest: dict[str, CallFacts] = {}
    for facts in calls:
        latest[facts.call_id] = facts
    return scorecard_values(list(latest.values()))


def scorecard_values(calls: list[CallFacts]) -> dict[str, Any]:
    scores = sorted(float(f.score) for f in calls if f.score is not None)
    values: dict[str, Any] = {
        "calls": len(calls),
        "scored_calls": len(scores),
        "score_mean": round(sum(scores) / len(scores), 4) if scores else None,
        "score_min": scores[0] if scores else None,
        "score_max": scores[-1] if scores else None,
    }
    for q in PERCENTILES:
        values[f"score_p{q}"] = round(percentile(scores, q), 4) if scores else None
    criteria: dict[str, list[int]] = {}
    for facts in calls:
        for criterion, passed in facts.criteria:
            counts = criteria.setdefault(criterion, [0, 0])
            counts[0] += int(passed)
            counts[1] += 1
    values["criteria"] = {
        criterion: {"passed": passed, "applicable": applicable, "pass_rate": round(passed / applicable, 4)}
        for criterion, (passed, applicable) in sorted(criteria.items())
    }
    values["dead_air_total_s"] = round(sum(f.dead_air_s for f in calls), 3)
    values["hold_total_s"] = round(sum(f.hold_s for f in calls), 3)
    ratios = [f.talk_listen_ratio for f in calls if f.talk_listen_ratio is not None]
    sentiments = [f.customer_sentiment for f in calls if f.customer_sentiment is not None]
    values["talk_listen_ratio_mean"] = _mean(ratios)
    values["customer_sentiment_mean"] = _mean(sentiments)
    values["model_versions"] = sorted({f.model_version for f in calls})
    return values
