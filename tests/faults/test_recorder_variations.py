"""The recorder as it is in the field: calls several times longer than the poller's look-back (the poller lists them while in
progress and tracks them until they end) and search answers whose field names vary in letter case and padding. Every call of
the window is still scored exactly once, none is dead-lettered, and the group is committed past every record."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from avaya_source.client import AvayaClient, Credentials
from ccas import settings
from tests.faults.flow import Flow, flowing

pytestmark = pytest.mark.faults

LOOKBACK_S = 10
SHORTEST_CALL_S = 3 * LOOKBACK_S


@pytest.fixture(scope="module")
def flow(stack_env: dict[str, str]) -> Iterator[Flow]:
    recorder = ["--duration-min", str(SHORTEST_CALL_S), "--duration-median", "40", "--duration-max", "60",
                "--list-in-progress", "true", "--field-case", "mixed"]
    with flowing(stack_env, mock_args=recorder, lookback_s=LOOKBACK_S) as running:
        yield running


def _durations(flow: Flow, calls: list[str]) -> dict[str, float]:
    wanted = set(calls)
    return {call["inum"]: call["duration"] for call in flow.services.recorder_calls() if call["inum"] in wanted}


def test_calls_3x_longer_than_the_lookback(flow: Flow) -> None:
    # Every call of this flow is long: the window is the flow's whole life.
    verdict = flow.close_window("calls 3x longer than the look-back", flow.started_at, None, 300)
    verdict.assert_healed()
    durations = _durations(flow, verdict.calls)
    assert min(durations.values()) >= SHORTEST_CALL_S, f"a call shorter than 3x the look-back proved nothing: {durations}"
    poller_log = flow.apps["poller"].log_file.read_text(errors="replace")
    tracked = [int(count) for count in re.findall(r"in progress, (\d+) tracked", poller_log)]
    assert max(tracked, default=0) > 0, "the poller never tracked a call in progress: the look-back alone found them"


def test_mixed_case_padded_field_names(flow: Flow) -> None:
    env = settings.local_stack_env()
    auth = (env["CCAS_AVAYA_USER"], env["CCAS_AVAYA_PASSWORD"])
    client = AvayaClient(flow.services.recorder_url, Credentials(*auth))
    end = datetime.now(UTC)
    wire = requests.get(f"{flow.services.recorder_url}/searchapi", timeout=30, auth=auth,
                        params=client.search_params(end - timedelta(minutes=10), end, "AvayaSegment")).text
    names = re.findall(r'<field name="([^"]*)"', wire)
    assert names and any(name != name.strip().lower() for name in names), f"no varied field name on the wire: {names[:8]}"
    # Every answer of this recorder varies its field names: the window is the flow's whole life.
    verdict = flow.close_window("mixed-case / padded field names", flow.started_at, None, 300, tail_s=0)
    verdict.assert_healed()
