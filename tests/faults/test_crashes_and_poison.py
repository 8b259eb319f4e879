"""Processes die: the pipeline's job killed with SIGKILL three times at random moments (its supervisor restarts it), and a
second pipeline started on the same consumer group (fenced). Every call of the window is still scored exactly once, none is
dead-lettered, and the group is committed past every record."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.faults.flow import LEAD_S, Flow, flowing, now
from tests.pipeline import e2e

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def flow(stack_env: dict[str, str]) -> Iterator[Flow]:
    with flowing(stack_env) as running:
        yield running


def test_pipeline_killed_3_times_at_random_moments(flow: Flow) -> None:
    window_start = now()
    time.sleep(LEAD_S)
    before = flow.restarts()
    for kill in range(3):
        time.sleep(random.uniform(3, 20))
        child = flow.child_pid()
        assert child is not None, "the supervisor logged no child"
        os.killpg(child, signal.SIGKILL)  # the job's whole process group: its SDK workers and Prism with it
        e2e.wait_until(lambda killed=child: flow.child_pid() not in (None, killed), 120,
                       f"the supervisor to start child {kill + 2}", [flow.pipeline])
    verdict = flow.close_window("pipeline kill -9 x3", window_start, time.monotonic(), 420)
    verdict.assert_healed()
    assert flow.restarts() - before == 3, "each kill is one supervisor restart"
    assert flow.pipeline.alive(), "the supervisor itself keeps running"


def test_a_second_pipeline_on_the_same_group_is_refused(flow: Flow) -> None:
    window_start = now()
    time.sleep(LEAD_S)
    second = flow.start_pipeline("second-pipeline")
    try:
        code = second.popen.wait(180)
    except subprocess.TimeoutExpired:
        second.kill()
        raise AssertionError(f"the second pipeline kept running on a held group:\n{second.tail(20)}") from None
    assert code == 3, f"exit code {code}:\n{second.tail(20)}"
    assert f"consumer group '{flow.group}'" in second.tail(40)
    verdict = flow.close_window("second pipeline on the group", window_start, None, 300)
    verdict.assert_healed()
    assert sum(verdict.messages_per_call.values()) == len(verdict.calls), "only one pipeline processed the calls"


def test_poison_messages_are_dead_lettered_and_nothing_else_is_affected(flow: Flow) -> None:
    import uuid

    from kafka.errors import MessageSizeTooLargeError

    from core.kafka import producer

    window_start = now()
    restarts_before = flow.restarts()
    time.sleep(LEAD_S)
    tag = uuid.uuid4().hex[:8]
    invalid = {"call_id": f"poison-{tag}", "started_at": "yesterday", "ended_at": 5}
    oversized = {"call_id": f"big-{tag}", "note": "x" * 900_000}  # under Kafka's 1 MB limit, far over a call's metadata
    send = producer(flow.bootstrap, client_id="fault-poison")
    try:
        sent = [send.send("calls.raw", key=invalid["call_id"].encode(), value=json.dumps(invalid).encode()),
                send.send("calls.raw", key=b"undecodable", value=b"\xff\xfe\x00 not utf-8 \xc3\x28"),
                send.send("calls.raw", key=oversized["call_id"].encode(), value=json.dumps(oversized).encode())]
        positions = {(meta.partition, meta.offset) for meta in (future.get(timeout=30) for future in sent)}
        with pytest.raises(MessageSizeTooLargeError):
            # 5 MB never reaches the topic: the producer and the broker refuse it (max.message.bytes), so no consumer can be
            # poisoned by it.
            send.send("calls.raw", key=b"huge", value=b"x" * (5 * 1024 * 1024)).get(timeout=30)
    finally:
        send.close()
    verdict = flow.close_window("poison messages", window_start, None, 300)
    verdict.assert_healed()

    def poisoned() -> list[dict]:
        letters = e2e.read_since(flow.bootstrap, "calls.raw.dlq", flow.outputs_start["calls.raw.dlq"])
        return [letter for letter in letters if (letter["source_partition"], letter["source_offset"]) in positions]

    letters = e2e.wait_until(lambda: len(poisoned()) == 3 and poisoned(), 120, "three poison dead letters")
    assert sorted(letter["error_type"] for letter in letters) == ["OversizedMessage", "SchemaError", "UndecodableMessage"]
    assert all(len(json.dumps(letter)) < 200_000 for letter in letters), "a dead letter keeps a bounded payload"
    assert flow.restarts() == restarts_before, "poison never restarts the job"


def test_poller_killed_between_its_kafka_commit_and_its_checkpoint(flow: Flow) -> None:
    import psycopg2

    window_start = now()
    time.sleep(LEAD_S)
    poller = flow.apps["poller"]
    # Block the dedup INSERT (reads pass): the next window that publishes commits on Kafka, then waits in its database
    # transaction; that is where the poller dies, its calls on the topic but not checkpointed.
    with psycopg2.connect(flow.database_url) as lock, lock.cursor() as cursor:
        cursor.execute("LOCK TABLE ingested_recording IN EXCLUSIVE MODE")

        def insert_waiting() -> bool:
            return e2e.query(flow.database_url, "SELECT count(*) FROM pg_locks WHERE NOT granted "
                                                "AND relation = 'ingested_recording'::regclass")[0][0] > 0

        e2e.wait_until(insert_waiting, 120, "a window committed on Kafka with its checkpoint waiting", [poller])
        poller.kill()
        lock.rollback()
    poller.start()
    verdict = flow.close_window("poller kill -9 inside publish/checkpoint", window_start, time.monotonic(), 300)
    verdict.assert_healed()
    assert "reconcile: " in poller.tail(400), "the restarted poller reconciled the topic with its checkpoint"
