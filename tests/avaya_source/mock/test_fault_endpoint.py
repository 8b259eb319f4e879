"""`POST /_mock/faults`: whole-API outages of the mock recorder switched at run time, as a fault suite drives them."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests

from avaya_source.client import AvayaClient, AvayaUnavailable, Credentials
from tests.avaya_source.harness import MOCK_PASSWORD, MOCK_USER


def test_search_and_replay_outages_switch_at_run_time_and_lift(serve_mock) -> None:  # noqa: ANN001
    mock = serve_mock("--seed", "31", "--start", "-900", "--calls-per-minute", "6", "--count", "12", "--duration-max", "60")
    client = AvayaClient(mock.url, Credentials(MOCK_USER, MOCK_PASSWORD), retries=0, read_timeout=0.5)
    now = datetime.now(UTC)
    healthy = client.search(now - timedelta(hours=1), now)
    inum = healthy.recordings[0].call_id

    def faults(**values: object) -> requests.Response:
        return mock.session.post(f"{mock.url}/_mock/faults", json=values, timeout=10)

    assert requests.post(f"{mock.url}/_mock/faults", json={"search": "503"}, timeout=10).status_code == 401
    state = faults(search="503", replay="timeout", timeout_s=5)
    assert state.status_code == 200 and state.json() == {"search": "503", "replay": "timeout", "timeout_s": 5}
    with pytest.raises(AvayaUnavailable) as refused:
        client.search(now - timedelta(hours=1), now)
    assert refused.value.status == 503
    with pytest.raises(AvayaUnavailable, match="Timeout"):
        client.replay(inum)  # held longer than the client's read timeout
    stats = mock.stats()
    assert stats["outage_search_503"] == 1 and stats["outage_replay_timeout"] == 1

    for bad in ({"search": "slow"}, {"replay": 503}, {"timeout_s": -1}, {"timeout_s": "5"}, {"latency": 1}):
        answer = faults(**bad)
        assert answer.status_code == 400, bad
    assert mock.session.post(f"{mock.url}/_mock/faults", data=b"[1]", timeout=10).status_code == 400

    faults(search="ok", replay="503")
    assert client.search(now - timedelta(hours=1), now).recordings == healthy.recordings
    with pytest.raises(AvayaUnavailable) as refused:
        client.replay(inum)
    assert refused.value.status == 503
    faults(replay="ok")
    with client.replay(inum) as stream:
        assert b"".join(stream)[:4] == b"RIFF"
    assert mock.session.get(f"{mock.url}/mock/faults", timeout=10).json() == {"search": "ok", "replay": "ok", "timeout_s": 5}


def test_a_held_search_is_answered_as_soon_as_the_outage_is_lifted(serve_mock) -> None:  # noqa: ANN001
    mock = serve_mock("--seed", "32", "--start", "-900", "--calls-per-minute", "6", "--count", "5", "--duration-max", "60")
    mock.session.post(f"{mock.url}/_mock/faults", json={"search": "timeout", "timeout_s": 600}, timeout=10).raise_for_status()
    client = AvayaClient(mock.url, Credentials(MOCK_USER, MOCK_PASSWORD), retries=0, read_timeout=60)
    now = datetime.now(UTC)
    answers: list[int] = []
    held = threading.Thread(target=lambda: answers.append(client.search(now - timedelta(hours=1), now).result_count))
    held.start()
    while mock.stats().get("outage_search_timeout", 0) < 1:
        held.join(0.05)
    assert answers == []  # held, not answered
    mock.session.post(f"{mock.url}/_mock/faults", json={"search": "ok"}, timeout=10).raise_for_status()
    held.join(30)
    assert answers == [5]
