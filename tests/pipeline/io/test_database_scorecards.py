"""agent_scorecard in the real PostgreSQL: one row per window, replaced by each later pane and never by an earlier one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.io.database import Database
from tests.pipeline import e2e


@pytest.fixture
def database_url(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        yield url


def pane(index: int, calls: int, timing: str = "EARLY", key: str = "A1") -> dict[str, Any]:
    return {
        "dimension": "agent", "dimension_key": key, "granularity": "day", "window_start": "2026-12-01T00:00:00+07:00",
        "window_end": "2026-12-02T00:00:00+07:00", "time_zone": "Asia/Ho_Chi_Minh", "pane_index": index, "pane_timing": timing,
        "calls": calls, "scored_calls": calls, "score_mean": 80.0 + index, "score_min": 70.0, "score_max": 90.0,
        "score_p50": 80.0, "score_p90": 88.0, "criteria": {"greeting": {"passed": calls, "applicable": calls, "pass_rate": 1.0}},
        "dead_air_total_s": 1.0, "hold_total_s": 0.0, "talk_listen_ratio_mean": None, "customer_sentiment_mean": None,
        "model_versions": ["sc-1"],
    }


def test_later_panes_replace_the_row_and_earlier_ones_never_do(database_url: str) -> None:
    db = Database(database_url)
    try:
        db.upsert_scorecards([pane(0, 3)])
        db.upsert_scorecards([pane(2, 7, "ON_TIME"), pane(1, 5)])  # one batch, out of order: the highest pane wins
        db.upsert_scorecards([pane(1, 5)])  # a retried, older pane arriving afterwards
        db.upsert_scorecards([pane(3, 8, "LATE"), pane(0, 1, key="B2")])
    finally:
        db.close()
    rows = e2e.query(database_url, "SELECT dimension_key, pane_index, pane_timing, calls, criteria->'greeting'->>'passed', "
                                   "score_mean FROM agent_scorecard ORDER BY dimension_key")
    assert rows == [("A1", 3, "LATE", 8, "8", 83.0), ("B2", 0, "EARLY", 1, "1", 80.0)]
