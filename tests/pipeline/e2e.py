"""End-to-end harness: the real mock recorder, poller, scoring service and pipeline processes on the real local stack.

Each pipeline run gets its own database (migrated by Alembic) and its own consumer group positioned where the test's input
starts, so runs are independent of each other and of anything else on calls.raw.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import requests
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from ccas import db_admin, settings
from ccas.apps import App, ccas_command, free_port, pipeline_command, wait_http

LOG_DIR = settings.stack_dir() / "test-e2e"
OUTPUT_TOPICS = ("calls.enriched", "audio.ready", "scoring.results", "calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq")


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, apps: list[App] = (), interval_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for app in apps:
            if not app.alive():
                raise AssertionError(f"{app.name} exited while waiting for {what}:\n{app.tail(60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


@contextmanager
def scratch_database(base_url: str) -> Iterator[str]:
    name = f"ccas_e2e_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(base_url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))
    try:
        db_admin.upgrade(url)
        yield url
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    connection.close()
    return rows


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def commit_group(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        consumer.commit({TopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close()


def read_since(bootstrap: str, topic: str, since: dict[int, int], with_positions: bool = False) -> list[Any]:
    """Every committed value of `topic` from the given per-partition offsets to the current end
    (as (partition, offset, value) with with_positions)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed",
                             consumer_timeout_ms=3000)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp.partition, 0))
        values = []
        for record in consumer:
            value = json.loads(record.value)
            values.append((record.partition, record.offset, value) if with_positions else value)
            if all(consumer.position(tp) >= ends[tp] for tp in partitions):
                break
        return values
    finally:
        consumer.close()


@dataclass
class Services:
    """The mock recorder and scoring service shared by the runs of a test module."""

    recorder_url: str
    scoring_url: str
    apps: list[App] = field(default_factory=list)

    def configure_recorder(self, values: dict[str, Any]) -> dict[str, Any]:
        env = settings.local_stack_env()
        answer = requests.post(f"{self.recorder_url}/_mock/config", json=values, timeout=10,
                               auth=(env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"]))
        answer.raise_for_status()
        return answer.json()

    def recorder_calls(self) -> list[dict]:
        env = settings.local_stack_env()
        answer = requests.get(f"{self.recorder_url}/_mock/calls", timeout=10,
                              auth=(env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"]))
        answer.raise_for_status()
        return answer.json()

    def stop(self) -> None:
        for app in self.apps:
            app.stop()


def start_services(seed: int, count: int, extra_mock_args: list[str] = (), calls_per_minute: float = 30) -> Services:
    mock_port, scoring_port = free_port(), free_port()
    start = (datetime.now(UTC) - timedelta(minutes=40)).isoformat()
    mock = App(f"avaya-mock-{seed}", ccas_command(
        "avaya-mock", "--port", str(mock_port), "--seed", str(seed), "--start", start,
        "--calls-per-minute", str(calls_per_minute),
        "--count", str(count), "--duration-median", "9", "--duration-min", "4", "--duration-max", "20",
        "--availability-delay", "0", "--multi-inum-ratio", "0.15", *extra_mock_args), LOG_DIR / f"mock-{seed}.log").start()
    scoring = App("scoring-service", ccas_command("scoring-service", "--port", str(scoring_port)),
                  LOG_DIR / f"scoring-{seed}.log").start()
    services = Services(f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{scoring_port}", [mock, scoring])
    try:
        wait_http(f"{services.recorder_url}/_mock/health", 60, mock)
        wait_http(f"{services.scoring_url}/healthz", 120, scoring)
    except BaseException:
        services.stop()
        raise
    return services


def poll_once(services: Services, database_url: str, window_start: datetime, window_end: datetime) -> str:
    app = App("poller", ccas_command("poller", "--once", "--from", window_start.isoformat(), "--to", window_end.isoformat(),
                                     "--metrics-port", "0", "--transactional-id", f"e2e-poller-{uuid.uuid4().hex[:8]}"),
              LOG_DIR / "poller.log", env={"CCAS_AVAYA_URL": services.recorder_url, "CCAS_DATABASE_URL": database_url})
    app.start()
    code = app.popen.wait(180)
    assert code == 0, f"poller --once failed ({code}):\n{app.tail()}"
    return app.tail(5)


def start_pipeline(services: Services, database_url: str, group: str, kafka_io: str, log_name: str,
                   extra: list[str] = ()) -> App:
    return App(f"pipeline-{kafka_io}", pipeline_command(
        "--runner=DirectRunner", f"--kafka_io={kafka_io}", f"--consumer_group={group}", f"--database_url={database_url}",
        f"--avaya_url={services.recorder_url}", f"--scoring_url={services.scoring_url}", f"--metrics_port={free_port()}",
        "--download_backoff_s=1", "--scoring_backoff_s=0.5", *extra), LOG_DIR / log_name).start()


def log_path(name: str) -> Path:
    return LOG_DIR / name
