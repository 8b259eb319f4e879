"""`ccas status`: the one screen a platform engineer reads first.

Services up/down (the local stack by pid and probe, the system's components by Prometheus's `up`), calls polled / enriched /
downloaded / scored in the last hour (PostgreSQL), dead letters per DLQ topic and consumer lag per topic (lag exporter, via
Prometheus), p95 latencies, and where to look next. Every section degrades to a one-line reason when its source is down.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

import psycopg2
import requests
from pydantic import SecretStr

from ccas.ops.settings import StatusSettings
from core.config import add_flags, load_for_command, secret

COUNTS_SQL = {
    "polled": "SELECT count(*) FROM ingested_recording WHERE published_at > now() - interval '1 hour'",
    "enriched": "SELECT count(*) FROM call WHERE created_at > now() - interval '1 hour'",
    "downloaded": "SELECT count(*) FROM audio_asset WHERE status = 'READY' AND created_at > now() - interval '1 hour'",
    "scored": "SELECT count(*) FROM scoring_result WHERE created_at > now() - interval '1 hour'",
    "errors now": "SELECT count(*) FROM call WHERE status = 'ERROR'",
}
P95 = {
    "download": "histogram_quantile(0.95, sum by (le) (increase(download_latency_ms_bucket[1h])))",
    "scoring (pipeline)": "histogram_quantile(0.95, sum by (le) (increase(scoring_latency_ms_bucket[1h])))",
    "scoring service": "1000 * histogram_quantile(0.95, sum by (le) "
                       "(increase(ccas_scoring_request_seconds_bucket{route=~\"/v1/score.*\"}[1h])))",
}


class Prom:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def targets(self) -> list[dict[str, Any]]:
        return requests.get(f"{self.url}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]


def _section(title: str, body: Callable[[], list[str]]) -> list[str]:
    try:
        return [title, *body()]
    except Exception as error:  # noqa: BLE001 - one broken source must not hide the rest of the screen
        return [title, f"  unavailable: {str(error).splitlines()[0][:150]}"]


def _stack_lines() -> list[str]:
    from ccas.stack.cli import services

    lines = []
    for service in services():
        row = service.status()
        mark = "UP  " if row.state == "running" and row.health.startswith("ok") else "DOWN"
        lines.append(f"  {mark} {row.name:<13} {row.health[:90]}")
    return lines


def _component_lines(prom: Prom) -> list[str]:
    lines = []
    for target in sorted(prom.targets(), key=lambda t: t["labels"]["job"]):
        mark = "UP  " if target["health"] == "up" else "DOWN"
        note = "" if target["health"] == "up" else f"  ({target['lastError'][:70]})"
        lines.append(f"  {mark} {target['labels']['job']:<22} {target['scrapeUrl']}  [{target['labels'].get('expected', '')}]"
                     f"{note}")
    return lines


def _count_lines(database_url: SecretStr | None) -> list[str]:
    if database_url is None:
        raise ValueError("CCAS_DATABASE_URL is not set (or run `ccas --local status`)")
    connection = psycopg2.connect(secret(database_url), connect_timeout=5)
    try:
        with connection.cursor() as cursor:
            values = {}
            for label, sql in COUNTS_SQL.items():
                cursor.execute(sql)
                values[label] = cursor.fetchone()[0]
    finally:
        connection.close()
    return ["  " + "   ".join(f"{label} {value}" for label, value in values.items())]


def _dlq_lines(prom: Prom) -> list[str]:
    rows = prom.query("dlq_messages")
    if not rows:
        return ["  no data (is the lag exporter up?)"]
    return ["  " + "   ".join(f"{r['metric']['topic']} ({r['metric']['stage']}) {int(float(r['value'][1]))}"
                              for r in sorted(rows, key=lambda r: r["metric"]["topic"]))]


def _lag_lines(prom: Prom) -> list[str]:
    rows = prom.query('sum by (group, topic) (queue_depth{job="ccas-lag-exporter"})')
    if not rows:
        return ["  no consumer group reported"]
    return [f"  {r['metric']['group']:<28} {r['metric']['topic']:<18} {int(float(r['value'][1]))}"
            for r in sorted(rows, key=lambda r: (r["metric"]["group"], r["metric"]["topic"]))]


def _latency_lines(prom: Prom) -> list[str]:
    parts = []
    for label, expr in P95.items():
        rows = prom.query(expr)
        value = float(rows[0]["value"][1]) if rows else float("nan")
        parts.append(f"{label} {value:.0f} ms" if value == value else f"{label} -")
    return ["  " + "   ".join(parts)]


def render(settings: StatusSettings) -> str:
    prom = Prom(settings.prometheus_url)
    lines = ["CCAS status", ""]
    lines += _section("Local stack", _stack_lines)
    lines += _section("Components (Prometheus scrape targets)", lambda: _component_lines(prom))
    lines += _section("Calls in the last hour", lambda: _count_lines(settings.database_url))
    lines += _section("Dead letters held per DLQ topic", lambda: _dlq_lines(prom))
    lines += _section("Consumer lag (messages) per group and topic", lambda: _lag_lines(prom))
    lines += _section("p95 latency, last hour", lambda: _latency_lines(prom))
    lines += ["Where to look",
              f"  Prometheus     {settings.prometheus_url} (alerts: /alerts, targets: /targets)",
              f"  Prism UI       {settings.prism_ui_url} (`ccas jobserver up`)",
              f"  Flink UI       http://127.0.0.1:{settings.flink_rest_port} (`ccas flink up`, or docker-compose.flink.yml)",
              f"  Ops API        http://127.0.0.1:{settings.ops_api_port}/docs (`ccas ops-api`, bearer token of CCAS_OPS_TOKENS)",
              "  Dead letters   ccas dlq list --hide-resolved (the ones whose call is not SCORED yet)"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas status", description="services, throughput, DLQs, lag, latencies, URLs")
    add_flags(parser, StatusSettings)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = load_for_command(StatusSettings, args, "ccas status")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    print(render(settings))
    return 0
