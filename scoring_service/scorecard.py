"""The declarative scorecard: load and validate the YAML, evaluate metrics against it, explain every point.

Scoring rule: each applicable criterion earns its full (renormalised) weight when it passes, nothing when it fails; the score is
the sum, capped by any failed critical criterion. Binary points keep the breakdown auditable: a QA reviewer sees exactly which
threshold a call missed and where (evidence).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, model_validator

from scoring_service.features import FEATURE_VERSION
from scoring_service.schemas import CriterionResult, Evidence

log = logging.getLogger(__name__)

DEFAULT_SCORECARD = Path(__file__).resolve().parent / "scorecards" / "default.yaml"
MODEL_VERSION_MAX = 32  # scoring_result.model_version is VARCHAR(32)


class Criterion(BaseModel):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")
    description: str
    metric: str
    rule: Literal["max", "min", "range", "present"]
    threshold: float | list[float] | None = None
    weight: float = Field(gt=0)
    critical: bool = False
    cap: float | None = Field(default=None, ge=0, le=100)
    evidence: str | None = None

    @model_validator(mode="after")
    def _check_threshold(self) -> Criterion:
        if self.rule == "range" and not (
            isinstance(self.threshold, list) and len(self.threshold) == 2 and self.threshold[0] <= self.threshold[1]
        ):
            raise ValueError(f"{self.id}: rule 'range' needs threshold [low, high]")
        if self.rule in ("max", "min") and not isinstance(self.threshold, int | float):
            raise ValueError(f"{self.id}: rule {self.rule!r} needs a numeric threshold")
        if self.critical and self.cap is None:
            raise ValueError(f"{self.id}: a critical criterion needs a cap")
        return self


class PhraseMatching(BaseModel):
    """How close recognised words must be to a phrase (see scoring_service/transcript.py)."""

    fuzzy_threshold: float = Field(default=0.8, gt=0, le=1)
    prohibited_threshold: float = Field(default=0.9, gt=0, le=1)
    min_fuzzy_chars: int = Field(default=10, ge=0)


class Scorecard(BaseModel):
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    name: str
    min_duration_s: float = Field(ge=0)
    min_speech_s: float = Field(ge=0)
    criteria: list[Criterion] = Field(min_length=1)
    phrases: dict[str, dict[str, list[str]]]
    matching: PhraseMatching = Field(default_factory=PhraseMatching)

    @model_validator(mode="after")
    def _unique_ids(self) -> Scorecard:
        ids = [c.id for c in self.criteria]
        if len(ids) != len(set(ids)):
            raise ValueError("criterion ids must be unique")
        if len(self.model_version) > MODEL_VERSION_MAX:
            raise ValueError(f"model_version {self.model_version!r} exceeds {MODEL_VERSION_MAX} characters")
        return self

    @property
    def model_version(self) -> str:
        return f"sc{self.version}+fx{FEATURE_VERSION}"


def load_scorecard(path: Path | str = DEFAULT_SCORECARD) -> Scorecard:
    """Parse and validate; a bad scorecard fails service start-up, loudly."""
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    card = Scorecard.model_validate(data)
    log.info("scorecard %s loaded from %s (model_version %s)", card.name, path, card.model_version)
    return card


def passes(criterion: Criterion, value: float) -> bool:
    if criterion.rule == "max":
        return value <= float(criterion.threshold)  # type: ignore[arg-type]
    if criterion.rule == "min":
        return value >= float(criterion.threshold)  # type: ignore[arg-type]
    if criterion.rule == "range":
        low, high = criterion.threshold  # type: ignore[misc]
        return low <= value <= high
    return value >= 1


def evaluate(
    card: Scorecard,
    metrics: dict[str, Any],
    not_applicable: dict[str, str],
    evidence: dict[str, list[tuple[float, float, str]]],
) -> tuple[float, list[CriterionResult]]:
    """(score 0–100, breakdown). Criteria whose metric is N/A are listed with applicable=false and the reason, weight 0."""
    applicable = [c for c in card.criteria if metrics.get(c.metric) is not None]
    total_weight = sum(c.weight for c in applicable)
    results, score, cap = [], 0.0, 100.0
    for c in card.criteria:
        value = metrics.get(c.metric)
        notes = [Evidence(start_s=s, end_s=e, note=n) for s, e, n in evidence.get(c.evidence or "", [])][:20]
        if value is None:
            reason = not_applicable.get(c.metric, f"metric {c.metric} unavailable")
            results.append(
                CriterionResult(
                    criterion=c.id,
                    description=c.description,
                    weight=c.weight,
                    points=0.0,
                    max_points=0.0,
                    applicable=False,
                    passed=None,
                    reason=reason,
                    value=None,
                    threshold=c.threshold,
                    rule=c.rule,
                    critical=c.critical,
                    evidence=[],
                )
            )
            continue
        max_points = 100.0 * c.weight / total_weight
        ok = passes(c, float(value))
        points = max_points if ok else 0.0
        score += points
        if c.critical and not ok and c.cap is not None:
            cap = min(cap, c.cap)
        results.append(
            CriterionResult(
                criterion=c.id,
                description=c.description,
                weight=c.weight,
                points=round(points, 2),
                max_points=round(max_points, 2),
                applicable=True,
                passed=ok,
                reason=None,
                value=value,
                threshold=c.threshold,
                rule=c.rule,
                critical=c.critical,
                evidence=notes,
            )
        )
    return round(min(score, cap), 2), results
