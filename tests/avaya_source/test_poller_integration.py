"""Acceptance of issue 4: real HTTP to the mock (subprocess), the real `ccas poller` (subprocess), real Kafka and PostgreSQL."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from tests.avaya_source.harness import assert_exactly_once, consume_all, expected_inums, wait_for_inums

pytestmark = pytest.mark.integration


def _iso(seconds_from_now: float) -> str:
    """An absolute start for the mock, so a restarted mock replays exactly the same schedule."""
    return (datetime.now(UTC) + timedelta(seconds=seconds_from_now)).isoformat()


def test_200_calls_exactly_once_with_multi_inum_calls_duplicates_and_cap_splits(start_mock, start_poller, database) -> None:
    mock = start_mock(
        "--seed", "11", "--start", _iso(-2400), "--calls-per-minute", "8", "--count", "170", "--multi-inum-ratio", "0.3",
        "--duplicate-ratio", "0.25", "--duration-max", "300", "--max-results", "40", "--availability-delay", "2",
    )
    calls = mock.calls()
    wanted = expected_inums(mock)
    assert len(wanted) == len(calls) >= 200
    contacts: dict[str, list[dict]] = defaultdict(list)
    for call in calls:
        contacts[call["contact_id"]].append(call)
    assert sum(1 for parts in contacts.values() if len(parts) > 1) >= 20

    poller = start_poller(
        mock, "--start", "-2700", "--lookback", "400", "--max-window", "300", "--settle", "2", "--interval", "1",
        "--search-cap", "40",
    ).start()
    messages = wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=180, poller=poller)
    time.sleep(3)  # a few more overlapping polls must not publish anything again
    metrics = poller.wait_metrics()
    assert poller.terminate() == 0
    values = assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
    assert len(messages) <= len(values)

    assert metrics["window_splits_total"] > 0  # answers of 40 = the cap were split and re-queried
    assert metrics["records_duplicate_total"] > 0  # duplicated results and overlapping windows were seen and dropped
    assert metrics["records_published_total"] == len(wanted)
    by_id = {value["call_id"]: value for value in values}
    for parts in contacts.values():
        inums = [part["inum"] for part in sorted(parts, key=lambda p: p["part"])]
        for part in parts:
            value = by_id[part["inum"]]
            assert value["inums"] == inums
            assert value["contact_id"] == part["contact_id"]
            assert value["switch_call_id"] == part["switch_call_id"]

    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingested_recording")
        assert cur.fetchone()[0] == len(wanted)
        cur.execute("SELECT last_polled_to FROM ingestion_checkpoint WHERE id = 1")
        checkpoint = cur.fetchone()[0]
    assert checkpoint > datetime.now(UTC) - timedelta(minutes=2)
    # Every partition got the poller's watermark markers (a round at most every --watermark-interval, 60 s, of window ends),
    # the newest stamped with a window end within that interval of the checkpoint.
    newest: dict[int, int] = {}
    for marker in consume_all(poller.bootstrap, poller.topic, markers=True):
        if marker.key == b"~watermark":
            assert json.loads(marker.value)["watermark"] == datetime.fromtimestamp(marker.timestamp / 1000, UTC).isoformat()
            newest[marker.partition] = max(newest.get(marker.partition, 0), marker.timestamp)
    assert len(newest) == 12 and len(set(newest.values())) == 1
    newest_ms, checkpoint_ms = next(iter(newest.values())), int(checkpoint.timestamp() * 1000)
    assert checkpoint_ms - 60_000 < newest_ms <= checkpoint_ms

    # A backfill of an old window with --once publishes nothing new and does not move the checkpoint backwards.
    done = poller.once("--from", _iso(-2500), "--to", _iso(-1800))
    assert done.returncode == 0, done.stderr
    assert re.search(r": 0 published, [1-9]\d* duplicate", done.stdout)
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT last_polled_to FROM ingestion_checkpoint WHERE id = 1")
        assert cur.fetchone()[0] == checkpoint
    assert len(consume_all(poller.bootstrap, poller.topic)) == len(wanted)


def test_kill_9_mid_run_and_restart_still_exactly_once_without_gap(start_mock, start_poller, database) -> None:
    # ~1,060 contacts over the last 8 minutes and the next ~50 s: killed while catching up in 15 s chunks, and while live.
    mock = start_mock(
        "--seed", "12", "--start", _iso(-480), "--calls-per-minute", "120", "--count", "1060", "--duration-median", "6",
        "--duration-min", "1", "--duration-max", "15", "--availability-delay", "1", "--multi-inum-ratio", "0.2",
    )
    poller = start_poller(
        mock, "--start", "-500", "--lookback", "20", "--max-window", "15", "--settle", "2", "--interval", "0.5",
    )

    def published() -> int:
        return len(consume_all(poller.bootstrap, poller.topic, idle_s=0.3))

    def wait_until(predicate, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + 90
        while not predicate():
            assert poller.alive(), poller.log_text()[-3000:]
            assert time.monotonic() < deadline, what
            time.sleep(0.2)

    poller.start()
    wait_until(lambda: published() >= 100, "100 calls published")
    poller.kill9()  # wherever it is
    poller.start()
    restarted_at = published()
    wait_until(lambda: published() > restarted_at, "the restarted poller publishes (its start-up reconcile is done)")

    # Then the dangerous instant, made certain: we hold a lock that blocks the dedup INSERT (reads still pass), so the next
    # window commits on Kafka and then waits inside its DB transaction — that is where the poller is killed.
    with psycopg2.connect(database) as lock_conn, lock_conn.cursor() as cur:
        cur.execute("LOCK TABLE ingested_recording IN EXCLUSIVE MODE")

        def insert_waiting() -> bool:
            with psycopg2.connect(database) as probe, probe.cursor() as look:
                look.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'ingested_recording'::regclass")
                return look.fetchone()[0] > 0

        wait_until(insert_waiting, "a window committed on Kafka and its dedup INSERT waiting")
        poller.kill9()
        lock_conn.rollback()
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingested_recording")
        assert cur.fetchone()[0] < published()  # the topic is ahead of the dedup table
    poller.start()
    wait_until(lambda: published() >= 700, "700 calls published")
    poller.kill9()
    poller.start()

    schedule = mock.calls(until=_iso(3600))  # the whole finite schedule, including calls not started yet
    last_arrival = max(datetime.fromisoformat(c["available_at"]) for c in schedule)
    time.sleep(max(0.0, (last_arrival - datetime.now(UTC)).total_seconds()))
    wanted = expected_inums(mock)
    assert wanted == {c["inum"] for c in schedule} and len(wanted) > 1000
    wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=180, poller=poller)
    time.sleep(2)
    assert poller.terminate() == 0
    assert re.search(r"reconcile: [1-9]\d* call\(s\) on \S+ missing from the dedup table", poller.log_text())
    assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)


def test_mock_down_for_many_intervals_then_caught_up_in_bounded_chunks(start_mock, start_poller) -> None:
    start = _iso(-20)
    args = (
        "--seed", "13", "--start", start, "--calls-per-minute", "120", "--count", "90", "--duration-median", "4",
        "--duration-min", "1", "--duration-max", "8", "--availability-delay", "1",
    )
    mock = start_mock(*args)
    schedule = mock.calls(until=_iso(3600))
    poller = start_poller(
        mock, "--start", "-40", "--lookback", "12", "--max-window", "5", "--settle", "1", "--interval", "0.5", "--retries", "0",
    ).start()
    wait_for_inums(poller.bootstrap, poller.topic, {schedule[0]["inum"]}, timeout=60, poller=poller)
    mock.stop()
    time.sleep(10)  # 20 poll intervals without a recorder, while calls keep arriving
    assert poller.alive()
    mock.start()
    assert mock.calls(until=_iso(3600)) == schedule  # the same seed and start: the same calls
    last = max(datetime.fromisoformat(c["available_at"]) for c in schedule)
    time.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()))
    wanted = expected_inums(mock)
    assert len(wanted) == len(schedule)
    wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=120, poller=poller)
    time.sleep(2)
    metrics = poller.wait_metrics()
    assert poller.terminate() == 0
    assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
    assert metrics['poll_errors_total{reason="unavailable"}'] >= 3
    windows = re.findall(r"window \[(\S+) \.\. (\S+)\]: ", poller.log_text())
    assert len(windows) > 10
    for lo, hi in windows:
        assert datetime.fromisoformat(hi) - datetime.fromisoformat(lo) <= timedelta(seconds=12 + 5)


def test_hostile_and_broken_xml_is_logged_counted_and_never_published(start_mock, start_poller) -> None:
    mock = start_mock(
        "--seed", "14", "--start", _iso(-1200), "--calls-per-minute", "6", "--count", "80", "--corrupt-ratio", "0.1",
        "--availability-delay", "1", "--duration-max", "120",
    )
    mock.configure(hostile="xxe", hostile_count=2)
    poller = start_poller(
        mock, "--start", "-1300", "--lookback", "200", "--max-window", "600", "--settle", "1", "--interval", "0.3",
    ).start()
    for mode in ("xxe", "billion_laughs", "truncated", "wrong_encoding", "junk", "malformed"):
        mock.configure(hostile=mode, hostile_count=2)
        deadline = time.monotonic() + 60
        while mock.stats().get(f"fault_hostile_{mode}", 0) < 2 and time.monotonic() < deadline:
            assert poller.alive(), poller.log_text()[-3000:]
            time.sleep(0.2)
        assert mock.stats().get(f"fault_hostile_{mode}", 0) >= 2
    mock.configure(hostile=None, truncate_ratio=1.0)  # a body cut short of its Content-Length on the wire
    deadline = time.monotonic() + 30
    while mock.stats().get("fault_truncate", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    mock.configure(truncate_ratio=0.0)
    assert mock.stats().get("fault_truncate", 0) >= 2

    wanted = expected_inums(mock)
    corrupt = expected_inums(mock, include_corrupt=True) - wanted
    assert corrupt, "the seed must produce some corrupt records"
    wait_for_inums(poller.bootstrap, poller.topic, wanted, timeout=90, poller=poller)
    time.sleep(1.5)
    metrics = poller.wait_metrics()
    assert poller.alive()
    assert poller.terminate() == 0
    values = assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
    assert not corrupt & {v["call_id"] for v in values}

    errors = {k: v for k, v in metrics.items() if k.startswith("poll_errors_total")}
    assert errors['poll_errors_total{reason="dtd_forbidden"}'] >= 4, errors  # xxe + billion laughs
    assert errors['poll_errors_total{reason="malformed_xml"}'] >= 4, errors  # truncated document + malformed + junk
    assert errors['poll_errors_total{reason="bad_encoding"}'] >= 2, errors
    assert errors['poll_errors_total{reason="truncated"}'] >= 1, errors
    rejected = sum(v for k, v in metrics.items() if k.startswith("records_rejected_total"))
    assert rejected >= len(corrupt)
    log = poller.log_text()
    assert "dtd_forbidden" in log and "rejected result" in log and "bad_encoding" in log


def test_sigterm_finishes_the_window_in_progress_then_exits_cleanly(start_mock, start_poller) -> None:
    # Every search takes 1.5 s, so SIGTERM lands inside a window; that window must still be published and checkpointed.
    mock = start_mock("--seed", "17", "--start", _iso(-900), "--calls-per-minute", "4", "--count", "20", "--duration-max", "60",
                      "--latency-ms", "1500")
    wanted = expected_inums(mock)
    poller = start_poller(mock, "--start", "-1000", "--lookback", "100", "--max-window", "3600", "--settle", "1",
                          "--interval", "30").start()
    deadline = time.monotonic() + 60
    while mock.stats().get("search_AvayaSegment", 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert poller.terminate() == 0
    log = poller.log_text()
    assert f"{len(wanted)} published" in log and "poller stopped" in log
    assert_exactly_once(consume_all(poller.bootstrap, poller.topic), wanted)
