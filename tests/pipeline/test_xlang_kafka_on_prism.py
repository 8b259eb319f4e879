"""Beam's Java ReadFromKafka on Prism through the stack's expansion service: every record arrives with its metadata, and
cancelling the streaming job leaves no Java worker (process or staged-jar folder) behind."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.io.kafka import ReadFromKafka
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineState
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from ccas.stack import process
from ccas.stack.expansion import Expansion, worker_pids, worker_processes
from core.kafka import KafkaSecurity, client_security
from pipeline import xlang

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

MESSAGES = 30
PARTITIONS = 4
ARRIVAL_TIMEOUT_S = 180.0
CLEANUP_TIMEOUT_S = 60.0
# Create times an hour back: far enough from "now" that processing-time stamps cannot pass for them, and well inside the broker's
# 7-day retention, which is judged by these timestamps (older ones can be deleted by a retention check in the middle of the test).
CREATE_TIME_AGE_MS = 3_600_000

Record = tuple[str, str, int, int, int]  # key, value, partition, offset, timestamp (ms)


@pytest.fixture
def topic(stack_env: dict[str, str]) -> Iterator[str]:
    name = f"ccas-test-xlang-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=stack_env["CCAS_KAFKA_BOOTSTRAP"], **client_security(None),
                             client_id="ccas-test-xlang")
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
    try:
        yield name
    finally:
        admin.delete_topics([name])
        admin.close()


def produce(bootstrap: str, topic: str) -> set[Record]:
    """30 keyed lz4 messages, each stamped with its own create time; returns what the broker acknowledged."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, **client_security(None), compression_type="lz4", acks="all")
    futures = []
    base_ms = int(time.time()) * 1_000 - CREATE_TIME_AGE_MS
    for index in range(MESSAGES):
        key, value = f"call-{index:03d}", json.dumps({"call": index})
        timestamp_ms = base_ms + index * 1_000
        future = producer.send(topic, key=key.encode(), value=value.encode(), timestamp_ms=timestamp_ms)
        futures.append((key, value, timestamp_ms, future))
    producer.flush()
    producer.close()
    sent = set()
    for key, value, timestamp_ms, future in futures:
        metadata = future.get(timeout=10)
        sent.add((key, value, metadata.partition, metadata.offset, timestamp_ms))
    return sent


class RecordToFile(beam.DoFn):
    """Kafka record Row → one JSON line appended to a file (the test's sink; O_APPEND keeps concurrent lines whole)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, row: Any, timestamp: Any = beam.DoFn.TimestampParam) -> None:
        line = json.dumps({
            "key": row.key.decode(), "value": row.value.decode(), "partition": row.partition, "offset": row.offset,
            "timestamp": row.timestamp, "element_timestamp_ms": timestamp.micros // 1000,
        })
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)


def read_sink(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def parent_pid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def own_workers(workers_dir: Path) -> tuple[set[int], set[Path]]:
    """Processes and folders of the Java workers started by this test process's Prism.

    Only ours: another run in this clone (another engineer, another pytest) may have workers in the same folder. Ours descend
    from the Prism that Beam started as our child; the CCAS_JAVA_WORKER_DIR environment marks a worker's processes.
    """
    tagged = worker_processes(workers_dir)
    ours: set[int] = set()
    for pid in tagged:
        ancestor = parent_pid(pid)
        while ancestor not in (None, 0, 1):
            if parent_pid(ancestor) == os.getpid() and "prism" in process.cmdline(ancestor):
                ours.add(pid)
                break
            ancestor = parent_pid(ancestor)
    folders = {workers_dir / folder for folder, (wrapper, _) in worker_pids(workers_dir).items() if wrapper in ours}
    return ours, folders


def leftovers(workers: set[int], folders: set[Path]) -> tuple[dict[int, str], list[Path]]:
    """Which of a run's worker processes still live, and which of its worker folders still exist."""
    return ({pid: process.cmdline(pid)[:160] for pid in workers if process.pid_alive(pid)},
            [folder for folder in folders if folder.exists()])


def wait_for_records(result: PipelineResult, sink: Path, started: float) -> list[dict[str, Any]]:
    deadline = time.monotonic() + ARRIVAL_TIMEOUT_S
    first_seen: float | None = None
    rows = read_sink(sink)
    while time.monotonic() < deadline:
        rows = read_sink(sink)
        if rows and first_seen is None:
            first_seen = time.monotonic() - started
            log.info("first record reached the sink %.1f s after submission (includes the Java harness start-up)", first_seen)
        if len(rows) >= MESSAGES:
            log.info("all %d records reached the sink %.1f s after submission", MESSAGES, time.monotonic() - started)
            return rows
        state = result.state
        if PipelineState.is_terminal(state):
            pytest.fail(f"the streaming job ended on its own in state {state} with {len(rows)}/{MESSAGES} records in the sink")
        time.sleep(1.0)
    workers, _ = own_workers(Expansion().workers_dir)
    pytest.fail(f"only {len(rows)}/{MESSAGES} records reached the sink within {ARRIVAL_TIMEOUT_S:.0f} s "
                f"(job state {result.state}; Java worker processes of this run: "
                f"{ {pid: process.cmdline(pid)[:80] for pid in workers} or 'none'}); "
                f"expansion service log: {Expansion().log_file}; Prism's and the harness's lines are in the captured log")


def test_read_from_kafka_with_metadata_on_prism_then_cancel(stack_env: dict[str, str], topic: str, tmp_path: Path) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    workers_dir = Expansion().workers_dir
    sent = produce(bootstrap, topic)
    assert len(sent) == MESSAGES and {record[2] for record in sent} == set(range(PARTITIONS)), "producer did not spread keys"

    sink = tmp_path / "records.jsonl"
    options = PipelineOptions(["--runner=PrismRunner", f"--prism_location={stack_env['CCAS_PRISM_LOCATION']}",
                               *xlang.prism_xlang_options(), "--streaming"])
    pipeline = beam.Pipeline(options=options)
    _ = (
        pipeline
        | "ReadFromKafka" >> ReadFromKafka(
            consumer_config={
                "bootstrap.servers": bootstrap,
                "group.id": f"ccas-test-xlang-{uuid.uuid4().hex[:10]}",
                # Without it the consumer commits for the group and a rerun of the group reads nothing (recipe pitfall a).
                "enable.auto.commit": "false",
                "auto.offset.reset": "earliest",
                **KafkaSecurity.from_environment().java_config(),  # TLS + SCRAM, a PEM trust store: the stack's broker
            },
            topics=[topic],
            with_metadata=True,
            timestamp_policy=ReadFromKafka.create_time_policy,
            expansion_service=stack_env["CCAS_EXPANSION_SERVICE"],
        )
        | "RecordToFile" >> beam.ParDo(RecordToFile(str(sink)))
    )
    started = time.monotonic()
    result = pipeline.run()
    workers: set[int] = set()
    folders: set[Path] = set()
    harness: dict[int, float | None] = {}
    try:
        rows = wait_for_records(result, sink, started)
        workers, folders = own_workers(workers_dir)
        harness = {pid: process.rss_mb(pid) for pid in workers if Path(process.cmdline(pid).split(" ")[0]).name == "java"}
        assert harness, f"no java process of this run carries CCAS_JAVA_WORKER_DIR={workers_dir}: was java_worker.sh used?"
        assert folders, f"no Java worker of this run recorded its pids under {workers_dir}"
        # The boot program writes these into its working directory; outside the worker's folder nothing would delete them.
        assert all((folder / "pipeline_options.json").exists() for folder in folders), "the boot program ran outside its folder"
    finally:
        result.cancel()
    expansion_pid = Expansion().pid()
    log.info("RSS: expansion service %s MB; Java worker processes %s",
             f"{process.rss_mb(expansion_pid):.0f}" if expansion_pid else "?",
             {pid: f"{rss:.0f} MB" for pid, rss in harness.items() if rss is not None})

    received = {(row["key"], row["value"], row["partition"], row["offset"], row["timestamp"]) for row in rows}
    assert received == sent
    assert len(rows) == MESSAGES, "a record reached the sink twice"
    assert all(row["element_timestamp_ms"] == row["timestamp"] for row in rows), "event time is not the producer's timestamp"

    # Cancelling stops Prism's workers; their wrappers' watchers stop java and delete the staged jars (recipe pitfall d).
    deadline = time.monotonic() + CLEANUP_TIMEOUT_S
    while time.monotonic() < deadline and any(leftovers(workers, folders)):
        time.sleep(0.5)
    running, kept = leftovers(workers, folders)
    assert not running, f"Java worker processes still running {CLEANUP_TIMEOUT_S:.0f} s after cancel: {running}"
    assert not kept, f"Java worker folders (staged jars) left {CLEANUP_TIMEOUT_S:.0f} s after cancel: {kept}"
