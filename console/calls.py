"""The calls list (server-side filters and paging) and one call's detail, as SQL over call, scoring_result, audio_asset,
transcript and agent. A call's current result is its newest scoring_result (a re-score adds a row per model_version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from console.db import Database

PAGE_SIZE = 50
STATUSES = ("PENDING_DOWNLOAD", "DOWNLOADED", "SCORED", "ERROR")
COSTLY_SHOWN = 2

# The newest result of each call, joined laterally: one probe per call on ix_scoring_result_call_created. `details` is left
# out on purpose: the list reads only the small generated columns (alembic 202612031610), never the whole response.
_LATEST = """LEFT JOIN LATERAL (
    SELECT r.id, r.score, r.scorable, r.model_version, r.criteria_failed, r.language, r.created_at
    FROM scoring_result r WHERE r.call_id = c.call_id ORDER BY r.created_at DESC LIMIT 1) l ON TRUE"""


@dataclass
class CallFilter:
    date_from: date | None = None
    date_to: date | None = None
    agent: str | None = None
    skill: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    criterion: str | None = None
    status: str | None = None
    language: str | None = None
    page: int = 1

    def where(self, zone: ZoneInfo) -> tuple[str, dict[str, Any]]:
        clauses, params = ["TRUE"], {}
        if self.date_from:
            clauses.append("c.started_at >= %(start)s")
            params["start"] = datetime.combine(self.date_from, time.min, zone)
        if self.date_to:  # inclusive: up to the end of that day in the console's zone
            clauses.append("c.started_at < %(end)s")
            params["end"] = datetime.combine(self.date_to + timedelta(days=1), time.min, zone)
        if self.agent:
            clauses.append("c.agent_id = %(agent)s")
            params["agent"] = self.agent
        if self.skill:
            clauses.append("(c.skill = %(skill)s OR a.team = %(skill)s)")
            params["skill"] = self.skill
        if self.score_min is not None:
            clauses.append("l.score >= %(score_min)s")
            params["score_min"] = self.score_min
        if self.score_max is not None:
            clauses.append("l.score <= %(score_max)s")
            params["score_max"] = self.score_max
        if self.criterion:
            clauses.append("l.criteria_failed ? %(criterion)s")
            params["criterion"] = self.criterion
        if self.status:
            clauses.append("c.status = %(status)s")
            params["status"] = self.status
        if self.language:
            clauses.append("l.language = %(language)s")
            params["language"] = self.language
        return " AND ".join(clauses), params

    def needs_result(self) -> bool:
        """Whether the filter reads the call's result (else counting needs no join with scoring_result)."""
        return any(value is not None for value in (self.score_min, self.score_max, self.criterion, self.language))

    def query_string(self, **changes: Any) -> str:
        from urllib.parse import urlencode

        values = {**asdict(self), **changes}
        return urlencode({key: value for key, value in values.items() if value not in (None, "")})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))


def list_calls(database: Database, where: CallFilter, zone: ZoneInfo) -> tuple[list[dict[str, Any]], int]:
    """(rows of the requested page, number of matching calls)."""
    condition, params = where.where(zone)
    agent_join = "LEFT JOIN agent a ON a.agent_id = c.agent_id"
    count_joins = f"{agent_join} {_LATEST}" if where.needs_result() else agent_join
    total = database.row(f"SELECT count(*) AS n FROM call c {count_joins} WHERE {condition}", params)["n"]
    params = {**params, "limit": PAGE_SIZE, "offset": (max(1, where.page) - 1) * PAGE_SIZE}
    # The page is chosen first; only its rows have their breakdown unpacked for the costliest criteria.
    rows = database.rows(f"""
        SELECT p.*, (SELECT array_agg(b->>'criterion' ORDER BY (b->>'max_points')::float - (b->>'points')::float DESC)
                     FROM scoring_result r, jsonb_array_elements(r.details->'breakdown') b
                     WHERE r.id = p.result_id AND (b->>'passed') = 'false') AS costly
        FROM (SELECT c.call_id, c.started_at, c.duration_seconds, c.agent_id, a.full_name AS agent_name, c.skill, c.status,
                     l.id AS result_id, l.score, l.scorable, l.model_version
              FROM call c {agent_join} {_LATEST} WHERE {condition}
              ORDER BY c.started_at DESC, c.call_id LIMIT %(limit)s OFFSET %(offset)s) p
        ORDER BY p.started_at DESC, p.call_id""", params)
    for row in rows:
        row["costly"] = (row.pop("costly") or [])[:COSTLY_SHOWN]
        row.pop("result_id", None)
    return rows, int(total)


def filter_choices(database: Database) -> dict[str, list[Any]]:
    """What the filter form offers: agents, skills and teams, criteria of recent results, languages."""
    agents = database.rows("SELECT agent_id, full_name FROM agent ORDER BY agent_id")
    skills = [row["skill"] for row in database.rows(
        "SELECT skill FROM (SELECT DISTINCT skill FROM call WHERE skill IS NOT NULL"
        " UNION SELECT DISTINCT team FROM agent WHERE team IS NOT NULL) s ORDER BY skill")]
    recent = "(SELECT criteria_failed, criteria_passed, language FROM scoring_result ORDER BY created_at DESC LIMIT 200) r"
    criteria = [row["c"] for row in database.rows(
        f"SELECT DISTINCT c FROM {recent}, jsonb_array_elements_text(r.criteria_failed || r.criteria_passed) c ORDER BY 1")]
    languages = [row["language"] for row in database.rows(
        f"SELECT DISTINCT language FROM {recent} WHERE language IS NOT NULL ORDER BY 1")]
    return {"agents": agents, "skills": skills, "criteria": criteria, "languages": languages, "statuses": list(STATUSES)}


def call_detail(database: Database, call_id: str) -> dict[str, Any] | None:
    call = database.row("""
        SELECT c.call_id, c.started_at, c.ended_at, c.duration_seconds, c.agent_id, a.full_name AS agent_name, a.team,
               c.skill, c.service, c.status, c.error_reason,
               s.s3_key, s.s3_version_id, s.channels, s.sample_rate, s.codec, s.duration_seconds AS audio_duration,
               s.status AS audio_status
        FROM call c LEFT JOIN agent a ON a.agent_id = c.agent_id LEFT JOIN audio_asset s ON s.call_id = c.call_id
        WHERE c.call_id = %s""", (call_id,))
    if call is None:
        return None
    call["results"] = database.rows(
        "SELECT score, scorable, reason, model_version, details, created_at, latency_ms FROM scoring_result"
        " WHERE call_id = %s ORDER BY created_at DESC", (call_id,))
    call["transcript"] = database.row(
        "SELECT asr_model, language, s3_key, word_count, confidence FROM transcript WHERE call_id = %s"
        " ORDER BY updated_at DESC LIMIT 1", (call_id,))
    return call


def evidence_markers(breakdown: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every evidence range of a breakdown in time order, one marker per distinct range: two criteria often cite the same
    stretch (dead air and the longest dead air), and stacked markers would hide one another."""
    by_range: dict[tuple[float, float], dict[str, Any]] = {}
    for row in breakdown:
        for item in row.get("evidence") or []:
            span = (float(item.get("start_s") or 0), float(item.get("end_s") or 0))
            marker = by_range.setdefault(span, {"criteria": [], "notes": [], "passed": True, "start_s": span[0],
                                                "end_s": span[1]})
            marker["criteria"].append(str(row.get("criterion")))
            if item.get("note") and item["note"] not in marker["notes"]:
                marker["notes"].append(item["note"])
            marker["passed"] = marker["passed"] and row.get("passed") is not False
    markers = sorted(by_range.values(), key=lambda marker: (marker["start_s"], marker["end_s"]))
    for marker in markers:
        marker["criterion"] = ", ".join(marker["criteria"])
        marker["note"] = "; ".join(marker["notes"])
    return markers


def versions_side_by_side(results: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """(model versions newest first, one row per criterion with each version's points or None)."""
    versions = [result["model_version"] for result in results]
    criteria: dict[str, dict[str, Any]] = {}
    for result in results:
        for row in (result.get("details") or {}).get("breakdown") or []:
            entry = criteria.setdefault(row["criterion"], {"criterion": row["criterion"], "points": {}})
            entry["points"][result["model_version"]] = (row.get("points"), row.get("max_points"), row.get("passed"))
    return versions, list(criteria.values())
