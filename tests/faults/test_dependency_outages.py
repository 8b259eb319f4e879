"""Each dependency goes away mid-stream and comes back: every call of the window is scored exactly once, none is
dead-lettered, the consumer group moves past them, and the pipeline never dies (0 supervisor restarts expected)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests

from ccas import settings
from ccas.stack.cli import services as stack_services
from tests.faults.flow import LEAD_S, Flow, Verdict, flowing, now

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def flow(stack_env: dict[str, str]) -> Iterator[Flow]:
    with flowing(stack_env) as running:
        yield running


def _through(flow: Flow, name: str, fault: Callable[[], None], settle_timeout_s: float) -> Verdict:
    """Calls flow, `fault()` breaks and heals something, calls flow on; the verdict on every call that ended meanwhile."""
    window_start = now()
    time.sleep(LEAD_S)
    fault()
    return flow.close_window(name, window_start, time.monotonic(), settle_timeout_s)


def _stop_stack_service(name: str, seconds: float) -> Callable[[], None]:
    def fault() -> None:
        [service] = stack_services([name])
        service.down()
        time.sleep(seconds)
        service.up()

    return fault


def _check(flow: Flow, verdict: Verdict) -> None:
    verdict.assert_healed()
    assert flow.pipeline.alive(), f"the pipeline process died:\n{flow.pipeline.tail(40)}"
    assert verdict.restarts == 0, "a transient fault must be held inside the job, not survived by a restart"


def test_postgresql_stopped_60_s(flow: Flow) -> None:
    _check(flow, _through(flow, "postgresql stopped 60 s", _stop_stack_service("postgres", 60), 300))


def test_kafka_broker_stopped_30_s(flow: Flow) -> None:
    _check(flow, _through(flow, "kafka stopped 30 s", _stop_stack_service("kafka", 30), 300))


def test_s3_server_stopped_60_s(flow: Flow) -> None:
    _check(flow, _through(flow, "s3 stopped 60 s", _stop_stack_service("s3", 60), 300))


def test_scoring_service_stopped_120_s(flow: Flow) -> None:
    def fault() -> None:
        flow.scoring.stop()
        time.sleep(120)
        flow.scoring.start()

    _check(flow, _through(flow, "scoring service stopped 120 s", fault, 360))


def test_recorder_503_for_60_s_then_timeouts_for_30_s(flow: Flow) -> None:
    env = settings.local_stack_env()
    auth = (env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"])

    def faults(**values: object) -> None:
        requests.post(f"{flow.services.recorder_url}/_mock/faults", json=values, auth=auth, timeout=10).raise_for_status()

    def fault() -> None:
        faults(search="503", replay="503")
        time.sleep(60)
        faults(search="timeout", replay="timeout", timeout_s=120)
        time.sleep(30)
        faults(search="ok", replay="ok")

    _check(flow, _through(flow, "recorder 503 60 s then timeouts 30 s", fault, 360))
