"""`--runner=PortableRunner` flags: the local job service and SDK environment when not given, xlang experiments for Java."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest

from ccas.stack.jobserver import WorkerPool, job_endpoint, worker_pool_endpoint
from pipeline import main, xlang


@pytest.fixture
def pool_running(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], None]:
    def set_running(running: bool) -> None:
        monkeypatch.setattr(WorkerPool, "pid", lambda self: 4242 if running else None)
    return set_running


def _flags(argv: list[str], kafka_io: str = "python") -> list[str]:
    return main._runner_flags(argv, SimpleNamespace(kafka_io=kafka_io))


def test_defaults_to_the_local_job_server_and_worker_pool_when_it_runs(pool_running: Callable[[bool], None]) -> None:
    pool_running(True)
    assert _flags(["--runner=PortableRunner"]) == [f"--job_endpoint={job_endpoint()}", "--environment_type=EXTERNAL",
                                                   f"--environment_config={worker_pool_endpoint()}"]


def test_defaults_to_loopback_without_a_worker_pool(pool_running: Callable[[bool], None]) -> None:
    pool_running(False)
    assert _flags(["--runner=PortableRunner", "--job_endpoint=jobs.example:8099"]) == ["--environment_type=LOOPBACK"]


def test_given_environment_is_kept_and_java_reader_gets_the_xlang_experiments(pool_running: Callable[[bool], None]) -> None:
    pool_running(True)
    flags = _flags(["--runner=PortableRunner", "--job_endpoint=localhost:1", "--environment_type=LOOPBACK"], kafka_io="java")
    assert flags == xlang.prism_xlang_options()
    assert "--runner=PrismRunner" not in flags, "a PortableRunner job is never re-routed to an embedded Prism"
