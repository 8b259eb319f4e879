"""Prometheus of the local stack while the system runs: every scrape target up, and the consumer lag (`queue_depth`, from
the lag exporter) rising while the pipeline is stopped and falling after it restarts."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from ccas import settings
from ccas.apps import App, ccas_command, free_port, wait_http
from ccas.kafka_admin import admin_client
from ccas.stack import process, tls
from ccas.stack.prometheus import LagExporter, Prometheus
from core.kafka import producer
from tests.pipeline import e2e

pytestmark = pytest.mark.integration

JOBS = {"prometheus", "ccas-lag-exporter", "ccas-poller", "ccas-pipeline", "ccas-scoring-service"}


def _query(expr: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{Prometheus().url()}/api/v1/query", params={"query": expr}, timeout=10)
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def _targets() -> dict[str, str]:
    answer = requests.get(f"{Prometheus().url()}/api/v1/targets", timeout=10).json()
    return {target["labels"]["job"]: target["health"] for target in answer["data"]["activeTargets"]}


@pytest.fixture(scope="module")
def system(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Mock recorder, scoring service, poller and pipeline on the stack's fixed metrics ports, as `ccas demo` runs them."""
    for service in (Prometheus(), LagExporter()):
        assert service.pid() is not None, f"{service.name} is not running: `ccas stack up` starts it"
    p = settings.ports()
    busy = [port for port in (p.scoring_service, p.poller_metrics, p.pipeline_metrics) if not process.port_bindable(port)]
    assert not busy, f"ports {busy} are in use (is `ccas demo` running?); this test needs them for the scrape targets"
    seed = random.randrange(10_000, 99_999)
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    group = f"ccas-pipeline-live-{uuid.uuid4().hex[:8]}"  # the pipeline principal's groups; the lag exporter reports ccas-*
    mock_port = free_port()
    logs = e2e.LOG_DIR
    start = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    apps: list[App] = []
    try:
        mock = App("avaya-mock", ccas_command("avaya-mock", "--port", str(mock_port), "--seed", str(seed), "--start", start,
                                              "--count", "4", "--duration-median", "6", "--duration-min", "4",
                                              "--duration-max", "10", "--availability-delay", "0"),
                   logs / f"live-mock-{seed}.log").start()
        scoring = App("scoring-service", ccas_command("scoring-service", "--port", str(p.scoring_service)),
                      logs / f"live-scoring-{seed}.log", env=tls.scoring_service_env()).start()  # HTTPS, as in the demo
        apps += [mock, scoring]
        wait_http(f"http://127.0.0.1:{mock_port}/_mock/health", 60, mock)
        wait_http(f"https://127.0.0.1:{p.scoring_service}/healthz", 120, scoring, str(tls.ca_file()))
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            raw_start = e2e.end_offsets(bootstrap, "calls.raw")
            e2e.commit_group(bootstrap, group, "calls.raw", raw_start)
            poller = App("poller", ccas_command("poller", "--interval", "5", "--settle", "2", "--start", "-2400",
                                                "--metrics-port", str(p.poller_metrics),
                                                "--transactional-id", f"live-poller-{seed}"),
                         logs / f"live-poller-{seed}.log",
                         env={"CCAS_AVAYA_URL": f"http://127.0.0.1:{mock_port}", "CCAS_DATABASE_URL": url}).start()
            apps.append(poller)
            services = e2e.Services(f"http://127.0.0.1:{mock_port}", f"https://127.0.0.1:{p.scoring_service}")

            def start_pipeline(name: str) -> App:
                return e2e.start_pipeline(services, url, group, "python", f"live-{name}-{seed}.log",
                                          extra=[f"--metrics_port={p.pipeline_metrics}"])

            pipeline = start_pipeline("pipeline")
            apps.append(pipeline)  # stopped below whatever the tests did: a failed test must not leave it running
            yield {"group": group, "bootstrap": bootstrap, "url": url, "apps": apps, "pipeline": pipeline,
                   "start_pipeline": start_pipeline, "raw_start": raw_start}
    finally:
        for app in reversed(apps):
            app.stop()
        # A group left behind would be reported by the exporter forever, its lag growing with calls.raw.
        with contextlib.suppress(Exception):
            admin = admin_client(bootstrap)
            admin.delete_groups([group])
            admin.close()


def test_every_scrape_target_is_up_while_the_system_runs(system: dict[str, Any]) -> None:
    def all_up() -> dict[str, str] | None:
        targets = _targets()
        return targets if set(targets) == JOBS and set(targets.values()) == {"up"} else None

    e2e.wait_until(all_up, 150, f"every scrape target up (now {_targets()})", [*system["apps"], system["pipeline"]], 2)
    up = {sample["metric"]["job"]: sample["value"][1] for sample in _query("up")}
    assert up == dict.fromkeys(JOBS, "1")
    # The seed's metrics are scraped from the components that own them.
    names = {sample["metric"]["__name__"] + "@" + sample["metric"]["job"] for sample in _query(
        '{__name__=~"ingest_lag_seconds|download_latency_ms_count|scoring_latency_ms_count|queue_depth|dlq_messages'
        '|ccas_scoring_request_seconds_count"}')}
    assert {"ingest_lag_seconds@ccas-poller", "queue_depth@ccas-lag-exporter", "dlq_messages@ccas-lag-exporter",
            "download_latency_ms_count@ccas-pipeline", "scoring_latency_ms_count@ccas-pipeline",
            "ccas_scoring_request_seconds_count@ccas-scoring-service"} <= names


def test_queue_depth_rises_while_the_pipeline_is_stopped_and_falls_after_restart(system: dict[str, Any]) -> None:
    group, bootstrap = system["group"], system["bootstrap"]
    lag = f'sum(queue_depth{{job="ccas-lag-exporter", group="{group}", topic="calls.raw"}})'

    def depth() -> float | None:
        result = _query(lag)
        return float(result[0]["value"][1]) if result else None

    e2e.wait_until(lambda: depth() == 0, 120, f"{group} caught up before the stop", [system["pipeline"]], 2)
    assert system["pipeline"].stop() is not None
    # The poller's calls (its dedup table); calls.raw may also carry other writers' messages, which this group reads too.
    ours = {row[0] for row in e2e.query(system["url"], "SELECT call_id FROM ingested_recording")}
    assert ours, "the poller published calls before the stop"
    # The poller's values again (as a restarted poller without its checkpoint would publish them), while no one consumes.
    values = [v for v in e2e.read_since(bootstrap, "calls.raw", system["raw_start"]) if v.get("call_id") in ours]
    send = producer(bootstrap)
    for value in values:
        again = {**value, "ingest_uuid": str(uuid.uuid4())}
        send.send("calls.raw", key=value["call_id"].encode(), value=json.dumps(again).encode())
    send.flush()
    send.close()
    e2e.wait_until(lambda: (depth() or 0) >= len(values), 60, f"queue_depth of {group} to rise to {len(values)}", interval_s=2)
    restarted = system["start_pipeline"]("restart")
    system["apps"].append(restarted)
    e2e.wait_until(lambda: depth() == 0, 150, f"queue_depth of {group} to fall to 0 after the restart", [restarted], 2)
