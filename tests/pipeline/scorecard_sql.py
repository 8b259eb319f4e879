"""The scorecards recomputed in SQL from call + scoring_result, and compared with what the pipeline wrote to agent_scorecard.

The definitions are those of pipeline/transforms/scorecard_values.py, written independently in SQL: percentile_cont for the
percentiles, the breakdown's applicable criteria for pass rates, the response's metrics for dead air, hold and talk ratio.
"""

from __future__ import annotations

import math
from typing import Any

import psycopg2

_TOTALS = """
SELECT c.{column} AS key, date_trunc(%(unit)s, c.ended_at AT TIME ZONE %(tz)s) AS local_start,
       count(*), count(r.score), avg(r.score), min(r.score), max(r.score),
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.score), percentile_cont(0.9) WITHIN GROUP (ORDER BY r.score),
       coalesce(sum((r.details->'metrics'->>'dead_air_total_s')::float), 0),
       coalesce(sum((r.details->'metrics'->>'hold_total_s')::float), 0),
       avg((r.details->'metrics'->>'talk_listen_ratio')::float)
FROM call c JOIN scoring_result r USING (call_id)
WHERE c.{column} IS NOT NULL
GROUP BY 1, 2
"""
_CRITERIA = """
SELECT c.{column}, date_trunc(%(unit)s, c.ended_at AT TIME ZONE %(tz)s), item->>'criterion',
       count(*) FILTER (WHERE (item->>'passed')::boolean), count(*)
FROM call c JOIN scoring_result r USING (call_id), jsonb_array_elements(r.details->'breakdown') AS item
WHERE c.{column} IS NOT NULL AND coalesce((item->>'applicable')::boolean, true) AND item->>'passed' IS NOT NULL
GROUP BY 1, 2, 3
"""
_WRITTEN = """
SELECT dimension_key, window_start AT TIME ZONE %(tz)s, calls, scored_calls, score_mean, score_min, score_max, score_p50,
       score_p90, dead_air_total_s, hold_total_s, talk_listen_ratio_mean, criteria
FROM agent_scorecard WHERE dimension = %(dimension)s AND granularity = %(unit)s
"""
def _query(url: str, sql: str, params: dict[str, str]) -> list[tuple]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


_COLUMNS = {"agent": "agent_id", "skill": "skill"}
_FIELDS = ("calls", "scored_calls", "score_mean", "score_min", "score_max", "score_p50", "score_p90", "dead_air_total_s",
           "hold_total_s", "talk_listen_ratio_mean")


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=2e-3)


def mismatches(database_url: str, time_zone: str) -> list[str]:
    """Every difference between agent_scorecard and the SQL recomputation, per dimension and granularity (empty: equal)."""
    found: list[str] = []
    for dimension, column in _COLUMNS.items():
        for unit in ("hour", "day"):
            params = {"unit": unit, "tz": time_zone, "dimension": dimension}
            expected = {(row[0], row[1]): dict(zip(_FIELDS, row[2:], strict=True))
                        for row in _query(database_url, _TOTALS.format(column=column), params)}
            for key, start, criterion, passed, applicable in _query(database_url, _CRITERIA.format(column=column), params):
                expected[(key, start)].setdefault("criteria", {})[criterion] = (passed, applicable)
            written = {(row[0], row[1]): (dict(zip(_FIELDS, row[2:12], strict=True)), row[12])
                       for row in _query(database_url, _WRITTEN, params)}
            for window in sorted(set(expected) | set(written), key=str):
                label = f"{dimension} {window[0]} {unit} {window[1]}"
                if window not in written or window not in expected:
                    found.append(f"{label}: {'not written' if window not in written else 'written, but no such calls'}")
                    continue
                values, criteria = written[window]
                want = expected[window]
                found += [f"{label}: {field} {values[field]} != {want[field]}" for field in _FIELDS
                          if not _close(values[field], want[field])]
                got_criteria = {name: (c["passed"], c["applicable"]) for name, c in criteria.items()}
                if got_criteria != want.get("criteria", {}):
                    found.append(f"{label}: criteria {got_criteria} != {want.get('criteria', {})}")
    return found
