"""The Operations page's data: dead letters (grouped by stage and error type, with each one's requeue and call state), their
requeue through the same code as `ccas dlq requeue` (ccas.ops.requeue), and pipeline health from Prometheus and PostgreSQL.

Every source degrades to a one-line reason on the page when it cannot answer; the page itself still renders.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import requests

from ccas.ops import dlq, dlq_state
from ccas.ops.requeue import Outcome, Requeuer
from console.db import Database

PROMETHEUS_TIMEOUT_S = 3
P95_QUERIES = {
    "download": "histogram_quantile(0.95, sum by (le) (increase(download_latency_ms_bucket[1h])))",
    "scoring": "histogram_quantile(0.95, sum by (le) (increase(scoring_latency_ms_bucket[1h])))",
    "call end → scored": "1000 * histogram_quantile(0.95, sum by (le) (increase(call_end_to_scored_seconds_bucket[1h])))",
}
LAG_QUERY = 'sum by (group, topic) (queue_depth{job="ccas-lag-exporter"})'
CALLS_LAST_HOUR = "SELECT status, count(*) AS n FROM call WHERE updated_at > now() - interval '1 hour' GROUP BY status ORDER BY 1"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return (lines[0] if lines else type(error).__name__)[:200]


class RecentRecords:
    """The dead letters read from Kafka, kept `ttl_s`: reading the DLQ topics costs a consumer's start-up (~0.2 s) while
    records arrive rarely. Their requeue and call state always come fresh from PostgreSQL."""

    def __init__(self, ttl_s: float = 5.0) -> None:
        self.ttl_s = ttl_s
        self._read_at = float("-inf")
        self._records: list[dlq.DeadLetterRecord] = []
        self._lock = threading.Lock()

    def get(self, bootstrap: str) -> list[dlq.DeadLetterRecord]:
        with self._lock:
            if time.monotonic() - self._read_at > self.ttl_s:
                self._records = dlq.list_dead_letters(bootstrap, dlq.Filter())
                self._read_at = time.monotonic()
            return list(self._records)


def dead_letters(bootstrap: str, database_url: str, recent: RecentRecords) -> dict[str, Any]:
    """{rows, groups: [(stage, error_type, count)], warning}; `warning` says what could not be read."""
    try:
        records = recent.get(bootstrap)
    except Exception as error:  # noqa: BLE001 - a broker that is down is shown on the page, not a 500
        return {"rows": [], "groups": [], "warning": f"Kafka could not be read: {_first_line(error)}"}
    listing = dlq_state.annotate(records, database_url)
    rows = sorted(listing.rows(), key=lambda row: row["failed_at"], reverse=True)
    groups = Counter((row["stage"], row["error_type"]) for row in rows)
    return {"rows": rows, "groups": sorted(((stage, error, n) for (stage, error), n in groups.items()), key=lambda g: -g[2]),
            "warning": listing.warning(hide_resolved=False)}


def requeue_call(bootstrap: str, database_url: str, call_id: str, requested_by: str) -> list[Outcome]:
    """`ccas dlq requeue --call-id CALL_ID`, as the signed-in admin."""
    return Requeuer(bootstrap, database_url, requested_by=requested_by).requeue(dlq.Filter(call_ids=frozenset({call_id})))


def _prometheus(url: str, expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=PROMETHEUS_TIMEOUT_S)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def health(prometheus_url: str, database: Database) -> dict[str, Any]:
    """Components up, consumer lag, p95 latencies (Prometheus) and the last hour's calls by status (PostgreSQL)."""
    result: dict[str, Any] = {"components": [], "lag": [], "p95": [], "calls": [], "problems": []}
    try:
        result["calls"] = database.rows(CALLS_LAST_HOUR)
    except Exception as error:  # noqa: BLE001 - shown on the page
        result["problems"].append(f"PostgreSQL: {_first_line(error)}")
    if not prometheus_url:
        result["problems"].append("Prometheus: not configured (CCAS_PROMETHEUS_URL)")
        return result
    try:
        result["components"] = sorted(({"job": row["metric"].get("job", "?"), "instance": row["metric"].get("instance", ""),
                                         "up": row["value"][1] == "1"} for row in _prometheus(prometheus_url, "up")),
                                       key=lambda row: (row["job"], row["instance"]))
        result["lag"] = sorted(({"group": row["metric"].get("group", ""), "topic": row["metric"].get("topic", ""),
                                 "lag": int(float(row["value"][1]))} for row in _prometheus(prometheus_url, LAG_QUERY)),
                               key=lambda row: (row["group"], row["topic"]))
        for label, expr in P95_QUERIES.items():
            rows = _prometheus(prometheus_url, expr)
            value = float(rows[0]["value"][1]) if rows else float("nan")
            result["p95"].append({"label": label, "ms": None if value != value else round(value)})
    except Exception as error:  # noqa: BLE001 - shown on the page
        result["problems"].append(f"Prometheus: {_first_line(error)}")
    return result
