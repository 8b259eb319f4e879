"""Scorecard: validation, renormalisation over applicable criteria, critical caps, model_version rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from scoring_service.features import FEATURE_VERSION
from scoring_service.scorecard import DEFAULT_SCORECARD, Scorecard, evaluate, load_scorecard


def _card(criteria: list[dict], version: str = "2.1.0") -> Scorecard:
    return Scorecard.model_validate(
        {"version": version, "name": "t", "min_duration_s": 1, "min_speech_s": 1, "criteria": criteria, "phrases": {}}
    )


def test_default_scorecard_loads_and_model_version_fits_the_db() -> None:
    card = load_scorecard()
    assert card.model_version == f"sc{card.version}+fx{FEATURE_VERSION}" == "sc1.1.0+fx1.1.0"
    assert len(card.model_version) <= 32
    assert any(c.critical for c in card.criteria)
    for kind in ("greeting", "closing", "empathy", "hold_request", "hold_thanks", "prohibited"):
        assert card.phrases[kind]["vi"] and card.phrases[kind]["en"]


def test_not_applicable_criteria_are_dropped_and_weights_renormalised() -> None:
    card = _card(
        [
            {"id": "a", "description": "a", "metric": "m_a", "rule": "max", "threshold": 5, "weight": 30},
            {"id": "b", "description": "b", "metric": "m_b", "rule": "range", "threshold": [1, 2], "weight": 10},
            {"id": "c", "description": "c", "metric": "m_c", "rule": "present", "weight": 60},
        ]
    )
    score, rows = evaluate(card, {"m_a": 4.0, "m_b": 3.0, "m_c": None}, {"m_c": "no transcript"}, {})
    by_id = {r.criterion: r for r in rows}
    assert by_id["c"].applicable is False and by_id["c"].reason == "no transcript" and by_id["c"].max_points == 0
    assert by_id["a"].max_points == 75.0 and by_id["a"].points == 75.0 and by_id["a"].passed
    assert by_id["b"].max_points == 25.0 and by_id["b"].points == 0.0 and by_id["b"].passed is False
    assert score == 75.0


def test_failed_critical_criterion_caps_the_score() -> None:
    card = _card(
        [
            {"id": "ok", "description": "x", "metric": "good", "rule": "min", "threshold": 1, "weight": 90},
            {
                "id": "bad",
                "description": "x",
                "metric": "swear",
                "rule": "max",
                "threshold": 0,
                "weight": 10,
                "critical": True,
                "cap": 40,
            },
        ]
    )
    assert evaluate(card, {"good": 3, "swear": 0}, {}, {})[0] == 100.0
    assert evaluate(card, {"good": 3, "swear": 1}, {}, {})[0] == 40.0
    assert evaluate(card, {"good": 0, "swear": 1}, {}, {})[0] == 0.0


@pytest.mark.parametrize(
    "criterion",
    [
        {"id": "x", "description": "x", "metric": "m", "rule": "range", "threshold": 3, "weight": 1},
        {"id": "x", "description": "x", "metric": "m", "rule": "max", "weight": 1},
        {"id": "x", "description": "x", "metric": "m", "rule": "max", "threshold": 1, "weight": 0},
        {"id": "x", "description": "x", "metric": "m", "rule": "max", "threshold": 1, "weight": 1, "critical": True},
        {"id": "Bad Id", "description": "x", "metric": "m", "rule": "max", "threshold": 1, "weight": 1},
    ],
)
def test_invalid_criteria_are_rejected(criterion: dict) -> None:
    with pytest.raises(ValidationError):
        _card([criterion])


def test_overlong_model_version_is_rejected(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_SCORECARD.read_text())
    data["version"] = "1234567890.1234567890.1"
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError, match="exceeds 32"):
        load_scorecard(path)


def test_service_refuses_to_start_with_a_broken_scorecard(tmp_path: Path) -> None:
    from scoring_service.main import create_app
    from scoring_service.settings import ScoringSettings

    data = yaml.safe_load(DEFAULT_SCORECARD.read_text())
    data["criteria"][0]["rule"] = "roughly"
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValidationError):
        create_app(ScoringSettings(scorecard=path))


def test_docs_list_every_phrase_of_the_default_scorecard() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "scoring.md").read_text(encoding="utf-8")
    card = load_scorecard()
    for kind, lists in card.phrases.items():
        row = next((line for line in docs.splitlines() if line.startswith(f"| `{kind}` |")), None)
        assert row is not None, f"docs/scoring.md has no phrase row for {kind}"
        for language, phrases in lists.items():
            for phrase in phrases:
                assert phrase in row, f"docs/scoring.md: {kind}/{language} phrase {phrase!r} missing"
