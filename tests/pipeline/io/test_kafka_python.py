"""`ReadFromKafkaPython` on Prism against the local stack's Kafka: exact records (offset gaps from transactions, no aborted
records), event time = CreateTime, live tail, start at the group's committed offsets, and a clean cancel."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.coders import VarIntCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata

from ccas.stack import tools
from core.kafka import client_security
from pipeline.io.kafka_python import ReadFromKafkaPython
from pipeline.io.records import KafkaRecord

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)
logging.getLogger("kafka").setLevel(logging.WARNING)  # connection chatter would bury the pipeline's own log lines

PARTITIONS = 4
ARRIVAL_TIMEOUT_S = 180.0
LIVE_TIMEOUT_S = 60.0
CANCEL_TIMEOUT_S = 60.0

Produced = tuple[int, int, bytes, bytes, int]  # partition, offset, key, value, timestamp (ms)


@pytest.fixture
def topic(stack_env: dict[str, str]) -> Iterator[str]:
    name = f"ccas-test-kpy-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], **client_security(None),
                             client_id="ccas-test-kpy")
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


class _Producer:
    """Keyed lz4 sends with explicit CreateTime; returns what the broker acknowledged."""

    def __init__(self, bootstrap: str, topic: str, transactional_id: str | None = None) -> None:
        extra: dict[str, Any] = {"transactional_id": transactional_id} if transactional_id else {}
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, **client_security(None),
                                      compression_type="lz4", acks="all", **extra)
        self.topic = topic
        if transactional_id:
            self.producer.init_transactions()

    def send(self, messages: list[tuple[bytes, bytes, int]]) -> list[Produced]:
        futures = [(key, value, ts, self.producer.send(self.topic, key=key, value=value, timestamp_ms=ts))
                   for key, value, ts in messages]
        self.producer.flush()
        return [(f.get(30).partition, f.get(30).offset, key, value, ts) for key, value, ts, f in futures]

    def close(self) -> None:
        self.producer.close()


def messages(first: int, count: int, base_ms: int) -> list[tuple[bytes, bytes, int]]:
    # key = index mod 100: 110 messages carry 100 distinct keys (the poller's look-back re-sends calls).
    return [(f"call-{i % 100:03d}".encode(), json.dumps({"i": i}).encode(), base_ms + (i % 1000) * 1_000)
            for i in range(first, first + count)]


class _WriteFile(beam.DoFn):
    """KafkaRecord → one JSON file per element (atomic rename), with the element's Beam timestamp and the write time."""

    def __init__(self, folder: str) -> None:
        self._folder = folder

    def process(self, record: KafkaRecord, timestamp: Any = beam.DoFn.TimestampParam) -> None:  # noqa: B008
        body = {"type": type(record).__name__, "partition": record.partition, "offset": record.offset,
                "key": record.key.decode(), "value": record.value.decode(), "timestamp_ms": record.timestamp_ms,
                "element_ts_micros": timestamp.micros, "written_at": time.time(), "topic": record.topic}
        name = f"{record.partition}-{record.offset}"
        temporary = Path(self._folder, f".{name}.tmp")
        temporary.write_text(json.dumps(body))
        os.replace(temporary, Path(self._folder, f"{name}.json"))


class _FireAfterNewest(beam.DoFn):
    """(partition, CreateTime ms) → a file per partition when the watermark passes its newest record + 1 s.

    The reader's watermark only trails the newest CreateTime while records flow, so this fires only if an idle reader
    moves the watermark with wall time — what lets the pipeline's event-time timers (dedup TTL) fire on a quiet topic.
    """

    NEWEST = ReadModifyWriteStateSpec("newest", VarIntCoder())
    FIRE = TimerSpec("fire", TimeDomain.WATERMARK)

    def __init__(self, folder: str) -> None:
        self._folder = folder

    def process(self, element: tuple[str, int], newest: Any = beam.DoFn.StateParam(NEWEST),  # noqa: B008
                fire: Any = beam.DoFn.TimerParam(FIRE)) -> None:  # noqa: B008
        timestamp_ms = max(element[1], newest.read() or 0)
        newest.write(timestamp_ms)
        fire.set(Timestamp(micros=(timestamp_ms + 1_000) * 1000))

    @on_timer(FIRE)
    def on_fire(self, key: Any = beam.DoFn.KeyParam, newest: Any = beam.DoFn.StateParam(NEWEST)) -> None:  # noqa: B008
        Path(self._folder, f"{key}.json").write_text(json.dumps({"partition": int(key), "newest_ms": newest.read()}))


def sink_contents(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in folder.glob("*.json")]


def as_produced(rows: list[dict[str, Any]]) -> set[Produced]:
    return {(r["partition"], r["offset"], r["key"].encode(), r["value"].encode(), r["timestamp_ms"]) for r in rows}


def has_offset_gaps(records: set[Produced]) -> bool:
    for partition in {p for p, *_ in records}:
        offsets = sorted(o for p, o, *_ in records if p == partition)
        if any(b - a > 1 for a, b in zip(offsets, offsets[1:], strict=False)):
            return True
    return False


def wait_for(result: PipelineResult, folder: Path, count: int, timeout_s: float, what: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    rows = sink_contents(folder)
    while len(rows) < count and time.monotonic() < deadline:
        assert not PipelineState.is_terminal(result.state), f"{what}: the job ended ({result.state}) with {len(rows)} records"
        time.sleep(0.1)
        rows = sink_contents(folder)
    assert len(rows) >= count, f"{what}: {len(rows)} of {count} records reached the sink within {timeout_s:.0f} s"
    return rows


def start(runner: str, bootstrap: str, topic: str, group_id: str, folder: Path, timers: Path | None = None) -> PipelineResult:
    options = PipelineOptions([f"--runner={runner}", f"--prism_location={tools.go_binary('prism')}", "--streaming"])
    pipeline = beam.Pipeline(options=options)
    records = pipeline | "ReadFromKafkaPython" >> ReadFromKafkaPython(bootstrap, [topic], group_id, client_security(None))
    _ = records | "WriteFile" >> beam.ParDo(_WriteFile(str(folder)))
    if timers is not None:
        _ = (records
             | "KeyByPartition" >> beam.Map(lambda record: (str(record.partition), record.timestamp_ms))
             | "FireAfterNewest" >> beam.ParDo(_FireAfterNewest(str(timers))))
    result = pipeline.run()
    # DirectRunner silently falls back to its own runner when Prism refuses a job; that runner cannot run this source.
    assert type(result).__module__ == "apache_beam.runners.portability.portable_runner", type(result)
    return result


@pytest.fixture
def running() -> Iterator[Callable[[PipelineResult], PipelineResult]]:
    """Registers started jobs; any job a test leaves running is cancelled, so nothing outlives the test."""
    jobs: list[PipelineResult] = []

    def register(result: PipelineResult) -> PipelineResult:
        jobs.append(result)
        return result

    yield register
    for job in jobs:
        if not PipelineState.is_terminal(job.state):
            job.cancel()
            wait_terminal(job)


def wait_terminal(result: PipelineResult) -> str:
    deadline = time.monotonic() + CANCEL_TIMEOUT_S
    while not PipelineState.is_terminal(result.state) and time.monotonic() < deadline:
        time.sleep(0.2)
    return result.state


def test_reads_every_committed_record_then_tails_live(stack_env: dict[str, str], topic: str, tmp_path: Path,
                                                      running: Callable[[PipelineResult], PipelineResult]) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    base_ms = int(time.time() * 1000) - 600_000
    transactional = _Producer(bootstrap, topic, transactional_id=f"ccas-test-kpy-{uuid.uuid4().hex[:8]}")
    plain = _Producer(bootstrap, topic)
    try:
        # Transactions leave commit/abort markers in the log, so offsets have gaps, and aborted records must not be read.
        transactional.producer.begin_transaction()
        expected = set(transactional.send(messages(0, 60, base_ms)))
        transactional.producer.commit_transaction()
        transactional.producer.begin_transaction()
        aborted = set(transactional.send(messages(1000, 5, base_ms)))
        transactional.producer.abort_transaction()
        expected |= set(plain.send(messages(60, 50, base_ms)))
        assert len(expected) == 110 and len({key for _, _, key, _, _ in expected}) == 100

        timers = tmp_path / "timers"
        timers.mkdir()
        started = time.monotonic()
        result = running(start("PrismRunner", bootstrap, topic, "ccas-test-kpy", tmp_path, timers))
        first = wait_for(result, tmp_path, 1, ARRIVAL_TIMEOUT_S, "first record")
        log.info("first record in the sink %.1f s after run()", time.monotonic() - started)
        rows = wait_for(result, tmp_path, len(expected), ARRIVAL_TIMEOUT_S, "backlog")
        log.info("all %d backlog records in the sink %.1f s after run()", len(rows), time.monotonic() - started)
        assert first and as_produced(rows) == expected
        assert not as_produced(rows) & aborted
        assert all(r["type"] == "KafkaRecord" and r["topic"] == topic for r in rows)
        assert all(r["element_ts_micros"] == r["timestamp_ms"] * 1000 for r in rows), "element timestamp != CreateTime"
        assert has_offset_gaps(expected), "the log had no offset gaps to read across"
        # Event-time timers past the newest record fire once the idle reader advances the watermark with wall time.
        newest = {p: max(ts for q, _, _, _, ts in expected if q == p) for p in {p for p, *_ in expected}}
        fired = wait_for(result, timers, len(newest), ARRIVAL_TIMEOUT_S, "event-time timers after the backlog")
        assert {r["partition"]: r["newest_ms"] for r in fired} == newest

        # Live tail: the job is idle-polling; new records must arrive while it runs.
        sent_at = time.time()
        live = set(plain.send(messages(2000, 10, int(sent_at * 1000) - 60_000)))
        rows = wait_for(result, tmp_path, len(expected) + len(live), LIVE_TIMEOUT_S, "live records")
        assert as_produced(rows) == expected | live
        latencies = sorted(r["written_at"] - sent_at for r in rows if (r["partition"], r["offset"]) in
                           {(p, o) for p, o, *_ in live})
        log.info("live produce→sink latency: min %.2f s, max %.2f s", latencies[0], latencies[-1])
    finally:
        transactional.close()
        plain.close()

    result.cancel()
    assert wait_terminal(result) == PipelineState.CANCELLED


def test_starts_at_the_groups_committed_offsets(stack_env: dict[str, str], topic: str, tmp_path: Path,
                                               running: Callable[[PipelineResult], PipelineResult]) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    group_id = f"ccas-test-kpy-{uuid.uuid4().hex[:8]}"
    producer = _Producer(bootstrap, topic)
    try:
        produced = producer.send(messages(0, 40, int(time.time() * 1000) - 600_000))
    finally:
        producer.close()
    # Commit mid-way on three partitions; the fourth has no committed offset and must be read from its earliest offset.
    committed: dict[int, int] = {}
    for partition in range(PARTITIONS - 1):
        offsets = sorted(o for p, o, *_ in produced if p == partition)
        assert len(offsets) >= 2, "the test needs at least two records per partition"
        committed[partition] = offsets[len(offsets) // 2]
    group = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None), group_id=group_id, enable_auto_commit=False)
    try:
        group.commit({TopicPartition(topic, p): OffsetAndMetadata(o, None, -1) for p, o in committed.items()})
        expected = {r for r in produced if r[1] >= committed.get(r[0], 0)}
        assert 0 < len(expected) < len(produced)

        result = running(start("DirectRunner", bootstrap, topic, group_id, tmp_path))
        wait_for(result, tmp_path, len(expected), ARRIVAL_TIMEOUT_S, "records from the committed offsets")
        time.sleep(2.0)  # records before the committed offsets, if read, would arrive with the others: give them a moment
        assert as_produced(sink_contents(tmp_path)) == expected
        result.cancel()
        assert wait_terminal(result) == PipelineState.CANCELLED
        # The reader never commits: the group still holds exactly what the test committed.
        for partition in range(PARTITIONS):
            assert group.committed(TopicPartition(topic, partition)) == committed.get(partition)
    finally:
        group.close()
