"""`ccas stack up/down` on a second, throw-away stack (own folder, own ports): stop leaves no process, data survives a restart,
and a taken port is named with its service before anything starts."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from kafka import KafkaConsumer, TopicPartition

from ccas import settings
from ccas.stack import process
from ccas.stack.cli import SERVICE_TYPES
from core.kafka import KafkaSecurity, producer
from core.s3 import s3_client

pytestmark = pytest.mark.integration

PORT_BASE = 19400


def _ccas(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ccas.cli", *args], env=env, capture_output=True, text=True,
                          cwd=settings.REPO_ROOT, timeout=300, check=False)


def _processes_under(folder: Path) -> list[int]:
    """Every live process whose command line names the folder (scanned from /proc, not from our own pid files)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and str(folder) in process.cmdline(int(entry.name)) \
                and process.pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


@pytest.fixture
def second_stack() -> Iterator[tuple[dict[str, str], Path]]:
    folder = settings.REPO_ROOT / ".stack" / f"test-lifecycle-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "CCAS_STACK_DIR": str(folder), "CCAS_PORT_BASE": str(PORT_BASE)}
    for key in [key for key in env if key.startswith("CCAS_") and key not in ("CCAS_STACK_DIR", "CCAS_PORT_BASE", "CCAS_CACHE")]:
        del env[key]
    yield env, folder
    _ccas(env, "stack", "down")
    shutil.rmtree(folder, ignore_errors=True)


def _stack_settings(env: dict[str, str]) -> dict[str, str]:
    saved = {key: os.environ.get(key) for key in ("CCAS_STACK_DIR", "CCAS_PORT_BASE")}
    os.environ.update({key: env[key] for key in saved})
    try:
        return settings.local_stack_env()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_down_stops_every_process_and_up_restores_the_data(second_stack) -> None:
    env, folder = second_stack
    started = _ccas(env, "stack", "up")
    assert started.returncode == 0, started.stderr + started.stdout
    names = [service_type.name for service_type in SERVICE_TYPES]
    assert {"postgres", "kafka", "s3"} <= set(names)
    for name in names:
        assert f"\n{name}" in started.stdout
    status = _ccas(env, "stack", "status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("ok: ") == len(names)
    assert str(PORT_BASE + 10) in status.stdout  # the kafka broker port of this stack
    stack = _stack_settings(env)

    # Data in each service.
    connection = psycopg2.connect(stack["CCAS_DATABASE_URL"])
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE TABLE survives (note text)")
        cursor.execute("INSERT INTO survives VALUES ('kept')")
    connection.close()
    # One broker: the stack's own replication settings, as `ccas env` gives them.
    admin_env = {**env, **{key: value for key, value in stack.items() if key.startswith("CCAS_KAFKA_")}}
    assert _ccas(admin_env, "kafka", "bootstrap").returncode == 0
    security = KafkaSecurity(stack["CCAS_KAFKA_SECURITY_PROTOCOL"], "SCRAM-SHA-512", stack["CCAS_KAFKA_USERNAME"],
                             stack["CCAS_KAFKA_PASSWORD"], stack["CCAS_KAFKA_CA_FILE"])  # this stack's own CA and admin
    send = producer(stack["CCAS_KAFKA_BOOTSTRAP"], security=security)
    sent = send.send("calls.raw", key=b"k1", value=json.dumps({"kept": True}).encode()).get(timeout=30)
    send.close()
    s3 = s3_client(stack["CCAS_S3_ENDPOINT"], stack["CCAS_S3_ACCESS_KEY"], stack["CCAS_S3_SECRET_KEY"],
                   ca_file=stack["CCAS_S3_CA_FILE"])
    s3.create_bucket(Bucket="lifecycle")
    s3.put_object(Bucket="lifecycle", Key="kept.txt", Body=b"kept")

    assert _processes_under(folder), "the stack should have processes running under its folder"
    stopped = _ccas(env, "stack", "down")
    assert stopped.returncode == 0, stopped.stderr
    assert _processes_under(folder) == []
    assert _ccas(env, "stack", "status").returncode != 0

    again = _ccas(env, "stack", "up")
    assert again.returncode == 0, again.stderr + again.stdout
    connection = psycopg2.connect(stack["CCAS_DATABASE_URL"])
    with connection, connection.cursor() as cursor:
        cursor.execute("SELECT note FROM survives")
        assert cursor.fetchall() == [("kept",)]
    connection.close()
    consumer = KafkaConsumer(bootstrap_servers=stack["CCAS_KAFKA_BOOTSTRAP"], **security.python_config(),
                             consumer_timeout_ms=20000)
    partition = TopicPartition("calls.raw", sent.partition)
    consumer.assign([partition])
    consumer.seek(partition, sent.offset)
    record = next(iter(consumer))
    consumer.close()
    assert (record.key, json.loads(record.value)) == (b"k1", {"kept": True})
    s3 = s3_client(stack["CCAS_S3_ENDPOINT"], stack["CCAS_S3_ACCESS_KEY"], stack["CCAS_S3_SECRET_KEY"],
                   ca_file=stack["CCAS_S3_CA_FILE"])
    assert s3.get_object(Bucket="lifecycle", Key="kept.txt")["Body"].read() == b"kept"

    # Idempotent: a second `up` while running starts nothing new.
    pids = sorted(_processes_under(folder))
    assert "already running" in _ccas(env, "stack", "up").stdout
    assert sorted(_processes_under(folder)) == pids


def test_taken_port_is_named_and_nothing_starts(second_stack) -> None:
    env, folder = second_stack
    kafka_port = settings.Ports.from_base(PORT_BASE).kafka
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", kafka_port))
        squatter.listen()
        result = _ccas(env, "stack", "up")
    assert result.returncode == 1
    assert f"port {kafka_port}" in result.stderr and "kafka" in result.stderr
    assert _processes_under(folder) == []
