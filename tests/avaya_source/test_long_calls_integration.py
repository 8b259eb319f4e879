"""Calls longer than the look-back, recorders that vary field case, the maximum call age: the real mock, Kafka and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from avaya_source.client import AvayaClient, Credentials
from avaya_source.metrics import PollerMetrics
from avaya_source.poller import Poller, PollerConfig
from avaya_source.publisher import TransactionalPublisher
from avaya_source.store import IngestStore
from avaya_source.windows import Window, WindowPolicy
from tests.avaya_source.harness import (
    MOCK_PASSWORD,
    MOCK_USER,
    assert_exactly_once,
    consume_all,
    expected_inums,
    wait_for_inums,
)

pytestmark = pytest.mark.integration


def _iso(seconds_from_now: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def _rows(database: str, query: str) -> list[tuple]:
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchall()


def test_calls_four_to_six_look_backs_long_publish_exactly_once_even_killed_between_kafka_and_db(
    start_mock, start_poller, database
) -> None:
    # 24 calls of 40-60 s against a 10 s look-back: none of them is still inside a window's reach when it ends.
    mock = start_mock(
        "--seed", "21", "--start", _iso(-30), "--calls-per-minute", "30", "--count", "24", "--multi-inum-ratio", "0",
        "--duration-min", "40", "--duration-max", "60", "--duration-median", "50", "--availability-delay", "2",
        "--list-in-progress", "true",
    )
    schedule = mock.calls(until=_iso(3600))
    assert len(schedule) == 24 and min(call["duration"] for call in schedule) >= 40
    poller = start_poller(
        mock, "--start", "-60", "--lookback", "10", "--settle", "2", "--interval", "1", "--max-window", "15",
        "--max-call-age", "600",
    ).start()

    def published() -> set[str]:
        return {m.key.decode() for m in consume_all(poller.bootstrap, poller.topic, idle_s=0.3)}

    def wait_until(predicate, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 120
        while not predicate():
            assert poller.alive(), poller.log_text()[-3000:]
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    wait_until(lambda: len(published()) >= 2, "the first long calls published")
    # Block the dedup INSERT (reads still pass): the next window that publishes a call commits on Kafka and then waits in
    # its DB transaction. That is where the poller dies; the call is on the topic but still tracked as in progress.
    with psycopg2.connect(database) as lock_conn, lock_conn.cursor() as cur:
        cur.execute("LOCK TABLE ingested_recording IN EXCLUSIVE MODE")

        def insert_waiting() -> bool:
            return _rows(database, "SELECT count(*) FROM pg_locks WHERE NOT granted "
                                   "AND relation = 'ingested_recording'::regclass")[0][0] > 0

        wait_until(insert_waiting, "a window committed on Kafka and its dedup INSERT waiting")
        poller.kill9()
        lock_conn.rollback()
    on_topic = published()
    ingested = {row[0] for row in _rows(database, "SELECT call_id FROM ingested_recording")}
    tracked = {row[0] for row in _rows(database, "SELECT call_id FROM in_progress_recording")}
    assert on_topic - ingested and (on_topic - ingested) <= tracked  # published, still tracked: the dangerous state

    poller.start()
    last = max(datetime.fromisoformat(call["available_at"]) for call in schedule)
    time.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()))
    wanted = expected_inums(mock)
    assert wanted == {call["inum"] for call in schedule}
    wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=120, poller=poller)
    time.sleep(3)  # more polls, more searches of the same start seconds: nothing may be published again
    metrics = poller.wait_metrics()
    assert poller.terminate() == 0
    assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
    assert "reconcile: " in poller.log_text()
    assert {row[0] for row in _rows(database, "SELECT call_id FROM ingested_recording")} == wanted
    assert _rows(database, "SELECT count(*) FROM in_progress_recording") == [(0,)]
    assert metrics["records_tracked"] == 0 and metrics["records_in_progress_expired_total"] == 0


def test_mixed_case_padded_field_names_and_values_publish_every_record(start_mock, start_poller) -> None:
    mock = start_mock(
        "--seed", "22", "--start", _iso(-1500), "--calls-per-minute", "4", "--count", "40", "--multi-inum-ratio", "0.3",
        "--duration-max", "120", "--availability-delay", "1", "--field-case", "mixed",
    )
    calls = mock.calls()
    wanted = expected_inums(mock)
    assert len(wanted) == len(calls) >= 40
    now = datetime.now(UTC)
    params = AvayaClient(mock.url, Credentials(MOCK_USER, MOCK_PASSWORD)).search_params(now - timedelta(hours=1), now,
                                                                                       "AvayaSegment")
    wire = mock.session.get(f"{mock.url}/searchapi", params=params, timeout=30).content
    assert wire.count(b'name="startedat"') < len(calls) / 2 and b'name=" ' in wire  # the variation is on the wire

    poller = start_poller(mock, "--start", "-1600", "--lookback", "200", "--max-window", "600", "--settle", "1",
                          "--interval", "0.5").start()
    wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=90, poller=poller)
    time.sleep(1.5)
    metrics = poller.wait_metrics()
    assert poller.terminate() == 0
    values = assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
    assert not any(k.startswith("records_rejected_total{") and v for k, v in metrics.items())
    contacts: dict[str, list[dict]] = defaultdict(list)
    for call in calls:
        contacts[call["contact_id"]].append(call)
    assert any(len(parts) > 1 for parts in contacts.values())
    by_id = {value["call_id"]: value for value in values}
    for contact_id, parts in contacts.items():
        inums = [part["inum"] for part in sorted(parts, key=lambda p: p["part"])]
        for part in parts:
            value = by_id[part["inum"]]
            assert (value["contact_id"], value["inums"], value["switch_call_id"]) == (contact_id, inums,
                                                                                     part["switch_call_id"])
            assert value["raw_agent"] == value["raw_agent"].strip() and value["raw_agent"]


def test_a_recording_still_in_progress_past_the_maximum_age_is_counted_logged_and_dropped(
    start_mock, database, topic, stack_env, caplog
) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    mock = start_mock(
        "--seed", "23", "--start", "-120", "--count", "1", "--multi-inum-ratio", "0", "--duration-min", "3000",
        "--duration-max", "3600", "--duration-median", "3300", "--list-in-progress", "true",
    )
    (call,) = mock.calls(until=_iso(3600))
    policy = WindowPolicy(timedelta(seconds=20), timedelta(seconds=1), timedelta(seconds=600))
    config = PollerConfig(policy, datetime.now(UTC) - timedelta(seconds=200), interval_s=0.5, max_call_age=timedelta(hours=1))
    poller = Poller(AvayaClient(mock.url, Credentials(MOCK_USER, MOCK_PASSWORD), retries=0), IngestStore(database),
                    TransactionalPublisher(bootstrap, topic, f"test-{topic}"), config, PollerMetrics())
    try:
        first = poller.run_once()
        assert first is not None and first.in_progress == 1 and first.published == 0
        assert [row[0] for row in _rows(database, "SELECT call_id FROM in_progress_recording")] == [call["inum"]]
        assert poller.metrics.value("records_tracked") == 1

        poller.config = replace(config, max_call_age=timedelta(seconds=60))  # the call is two minutes old
        now = datetime.now(UTC).replace(microsecond=0)
        with caplog.at_level(logging.WARNING, logger="avaya_source.poller"):
            poller.run_once(Window(now - timedelta(seconds=30), now - timedelta(seconds=1)))
            poller.run_once(Window(now - timedelta(seconds=20), now))
    finally:
        poller.publisher.close()
        poller.store.close()
    assert poller.metrics.value("records_in_progress_expired_total") == 1
    assert poller.metrics.value("records_tracked") == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and call["inum"] in r.getMessage()]
    assert len(lines) == 1 and f"inum={call['inum']}" in lines[0] and "maximum call age of 60 s" in lines[0]
    assert _rows(database, "SELECT count(*) FROM in_progress_recording") == [(0,)]
    assert consume_all(bootstrap, topic, idle_s=1.0) == []  # dropped, never published
