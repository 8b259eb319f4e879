"""An agent's trend, pass rates and worst calls, and the team overview, over the newest result of each call.

Days and weeks are those of the console's time zone. "The team" is the agent's `agent.team` when it is filled, otherwise
every agent (the pipeline does not fill teams yet), and the page says which one it compares with.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from console.db import Database

GRANULARITIES = {"day": "day", "week": "week"}
WORST_SHOWN = 10

_SCORED = """FROM call c JOIN LATERAL (
    SELECT r.score, r.criteria_failed, r.criteria_passed FROM scoring_result r WHERE r.call_id = c.call_id
    ORDER BY r.created_at DESC LIMIT 1) l ON TRUE
    LEFT JOIN agent a ON a.agent_id = c.agent_id
    WHERE l.score IS NOT NULL AND c.started_at >= %(since)s"""


def _since(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(ZoneInfo("UTC"))) - timedelta(days=days)


def agent_page(database: Database, agent_id: str, zone: ZoneInfo, days: int, granularity: str) -> dict[str, Any] | None:
    agent = database.row("SELECT agent_id, full_name, team FROM agent WHERE agent_id = %s", (agent_id,))
    if agent is None:
        return None
    unit = GRANULARITIES.get(granularity, "day")
    params = {"agent": agent_id, "since": _since(days), "zone": str(zone), "team": agent["team"]}
    trend = database.rows(f"""
        SELECT date_trunc('{unit}', c.started_at AT TIME ZONE %(zone)s)::date AS period, round(avg(l.score), 2) AS mean,
               count(*) AS n
        {_SCORED} AND c.agent_id = %(agent)s GROUP BY 1 ORDER BY 1""", params)
    team_condition = "a.team = %(team)s" if agent["team"] else "TRUE"
    # Pass rates from the generated criteria columns (alembic 202612031610): small arrays instead of whole responses.
    rates = database.rows(f"""
        WITH scored AS (SELECT c.agent_id, l.criteria_passed, l.criteria_failed {_SCORED} AND {team_condition}),
        outcome AS (
            SELECT s.agent_id, x.criterion, x.passed FROM scored s
            CROSS JOIN LATERAL (SELECT value AS criterion, 1 AS passed FROM jsonb_array_elements_text(s.criteria_passed)
                                UNION ALL
                                SELECT value, 0 FROM jsonb_array_elements_text(s.criteria_failed)) x)
        SELECT criterion, avg(passed) FILTER (WHERE agent_id = %(agent)s) AS agent_rate,
               count(*) FILTER (WHERE agent_id = %(agent)s) AS agent_n, avg(passed) AS team_rate, count(*) AS team_n
        FROM outcome GROUP BY criterion ORDER BY criterion""", params)
    worst = database.rows(f"""
        SELECT c.call_id, c.started_at, c.duration_seconds, l.score {_SCORED} AND c.agent_id = %(agent)s
        ORDER BY l.score, c.started_at DESC LIMIT {WORST_SHOWN}""", params)
    summary = database.row(f"SELECT round(avg(l.score), 2) AS mean, count(*) AS n {_SCORED} AND c.agent_id = %(agent)s",
                           params)
    team = database.row(f"SELECT round(avg(l.score), 2) AS mean, count(*) AS n {_SCORED} AND {team_condition}", params)
    if trend:  # each point's place on the time axis (0..1): days between points stay visible, they are not spread evenly
        span = max(1, (trend[-1]["period"] - trend[0]["period"]).days)
        for point in trend:
            point["x"] = (point["period"] - trend[0]["period"]).days / span if len(trend) > 1 else 0.5
    return {"agent": agent, "trend": trend, "rates": [row for row in rates if row["agent_n"]], "worst": worst,
            "summary": summary, "team": team, "unit": unit}


def team_overview(database: Database, days: int, min_calls: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ranked agents with at least `min_calls` scored calls, best mean first; the others, not ranked)."""
    rows = database.rows(f"""
        SELECT c.agent_id, max(a.full_name) AS full_name, max(a.team) AS team, round(avg(l.score), 2) AS mean,
               count(*) AS n, round(min(l.score), 2) AS worst
        {_SCORED} GROUP BY c.agent_id ORDER BY mean DESC, n DESC, c.agent_id""", {"since": _since(days)})
    ranked = [row for row in rows if row["n"] >= min_calls]
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    return ranked, [row for row in rows if row["n"] < min_calls]
