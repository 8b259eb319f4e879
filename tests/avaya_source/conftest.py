"""Fixtures: the mock recorder as a real subprocess (`ccas avaya-mock`), and isolated Kafka topics / PostgreSQL databases."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.kafka import client_security
from tests.avaya_source.harness import InProcessMock, MockProcess, PollerProcess, free_port, mock_env


@pytest.fixture
def start_mock(tmp_path: Path) -> Iterator:
    """start_mock(*args) → a started MockProcess; every one is stopped at teardown."""
    started: list[MockProcess] = []

    def start(*args: str) -> MockProcess:
        mock = MockProcess(list(args), free_port(), tmp_path / f"mock-{len(started)}.log", mock_env())
        started.append(mock)
        return mock.start()

    yield start
    for mock in started:
        mock.stop()


@pytest.fixture
def serve_mock(tmp_path: Path) -> Iterator:
    """serve_mock(*args) → the mock recorder started with those arguments on a thread of this process; stopped at teardown."""
    started: list[InProcessMock] = []

    def start(*args: str) -> InProcessMock:
        mock = InProcessMock(list(args), free_port(), tmp_path / "unused.log", {})
        started.append(mock)
        return mock.start()

    yield start
    for mock in started:
        mock.stop()


# -- stack isolation (integration tests) ------------------------------------------------------------------------------------


@pytest.fixture
def topic(stack_env: dict[str, str]) -> Iterator[str]:
    """A fresh 12-partition lz4 topic, so reruns and other tests on calls.raw never interfere."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"test.calls.raw.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], **client_security(None), client_id="ccas-test")
    admin.create_topics([NewTopic(name, 12, 1, topic_configs={"compression.type": "lz4"})])
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([name])
        admin.close()


@pytest.fixture
def database(stack_env: dict[str, str]) -> Iterator[str]:
    """A fresh database migrated with the project's Alembic head; its DSN (with the stack's TLS parameters)."""
    from tests.pipeline import e2e

    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as dsn:
        yield dsn


@pytest.fixture
def start_poller(tmp_path: Path, stack_env: dict[str, str], database: str, topic: str) -> Iterator:
    """start_poller(mock, *args) → a PollerProcess (not started) on this test's database and topic; killed at teardown."""
    made: list[PollerProcess] = []

    def make(mock: MockProcess, *args: str) -> PollerProcess:
        poller = PollerProcess(mock.url, database, stack_env["CCAS_KAFKA_BOOTSTRAP"], topic, list(args),
                               tmp_path / f"poller-{len(made)}.log")
        made.append(poller)
        return poller

    yield make
    for poller in made:
        if poller.alive():
            poller.kill9()
