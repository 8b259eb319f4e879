"""Test helpers: the mock recorder and the poller as real subprocesses, and checks on what reached the topic."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

import schemas
from ccas.settings import REPO_ROOT
from core.kafka import client_security
from schemas.contracts import is_watermark_marker

PYTHON = sys.executable
MOCK_USER = "ccas"
MOCK_PASSWORD = "test-" + secrets.token_urlsafe(12)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=1).ok:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@dataclass
class MockProcess:
    """A running `ccas avaya-mock`; restartable on the same port with the same arguments (same seed → same calls)."""

    args: list[str]
    port: int
    log_path: Path
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MockProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "ccas.cli", "avaya-mock", "--port", str(self.port), *self.args],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_http(f"{self.url}/_mock/health")
        self.session.auth = (MOCK_USER, MOCK_PASSWORD)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def configure(self, **values: object) -> dict:
        response = self.session.post(f"{self.url}/_mock/config", data=json.dumps(values), timeout=10)
        response.raise_for_status()
        return response.json()

    def calls(self, until: str | None = None) -> list[dict]:
        response = self.session.get(f"{self.url}/_mock/calls", params={"until": until} if until else {}, timeout=30)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict:
        return self.session.get(f"{self.url}/_mock/stats", timeout=10).json()


class InProcessMock(MockProcess):
    """The same mock recorder served on a thread of the test process: the client tests skip a subprocess start each.

    The code under test still talks HTTP to a real server; tests that kill, restart or measure the mock's process use
    MockProcess.
    """

    server: object | None = None

    def start(self) -> InProcessMock:
        from avaya_source.mock.server import build_parser, recorder_from_settings, serve
        from avaya_source.mock.settings import AvayaMockSettings
        from core.config import load

        argv = ["--avaya-user", MOCK_USER, "--avaya-password", MOCK_PASSWORD, *self.args]
        settings = load(AvayaMockSettings, build_parser().parse_args(argv))
        self.server = serve(recorder_from_settings(settings), "127.0.0.1", self.port, MOCK_USER, MOCK_PASSWORD)
        self.session.auth = (MOCK_USER, MOCK_PASSWORD)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def mock_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CCAS_AVAYA_USER": MOCK_USER, "CCAS_AVAYA_PASSWORD": MOCK_PASSWORD, "PYTHONUNBUFFERED": "1"})
    return env


def consume_all(bootstrap: str, topic: str, idle_s: float = 3.0, timeout_s: float = 120.0, markers: bool = False) -> list:
    """Every committed message on `topic` (read_committed, from the beginning), once no new message came for idle_s; the
    poller's watermark markers only when `markers`."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, **client_security(None),
        group_id=None, enable_auto_commit=False, isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        messages: list = []
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            batch = consumer.poll(timeout_ms=500)
            for records in batch.values():
                messages.extend(r for r in records if markers or not is_watermark_marker(r.key))
                last = time.monotonic()
        return messages
    finally:
        consumer.close()


@dataclass
class PollerProcess:
    mock_url: str
    dsn: str
    bootstrap: str
    topic: str
    args: list[str]
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def command(self, *extra: str) -> list[str]:
        head = [PYTHON, "-m", "ccas.cli", "poller", "--topic", self.topic, "--metrics-port", str(self.metrics_port)]
        return [*head, *self.args, *extra]

    def env(self) -> dict[str, str]:
        env = mock_env()
        env.update({"CCAS_AVAYA_URL": self.mock_url, "CCAS_DATABASE_URL": self.dsn, "CCAS_KAFKA_BOOTSTRAP": self.bootstrap})
        return env

    def start(self) -> PollerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.command(), cwd=REPO_ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        return self

    def once(self, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command("--once", *extra), cwd=REPO_ROOT, env=self.env(), capture_output=True, text=True,
                              timeout=120)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(60)
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()  # SIGKILL: no cleanup, no flush, no DB commit
        self.proc.wait(30)
        self.proc = None

    def metrics(self) -> dict[str, float]:
        text = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def wait_metrics(self, timeout: float = 30.0) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.metrics()
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def expected_inums(mock: MockProcess, *, visible_by: float | None = None, include_corrupt: bool = False) -> set[str]:
    """Recordings the mock makes searchable by `visible_by` (epoch seconds; default now)."""
    from datetime import datetime

    moment = time.time() if visible_by is None else visible_by
    return {
        call["inum"]
        for call in mock.calls()
        if datetime.fromisoformat(call["available_at"]).timestamp() <= moment and (include_corrupt or not call["corrupt"])
    }


def wait_for_inums(bootstrap: str, topic: str, wanted: set[str], timeout: float, poller: PollerProcess | None = None) -> list:
    """Consume until every wanted inum is on the topic (or the timeout); returns all messages seen."""
    deadline = time.monotonic() + timeout
    while True:
        messages = consume_all(bootstrap, topic, idle_s=1.0, timeout_s=30)
        if wanted <= {m.key.decode() for m in messages} or time.monotonic() > deadline:
            return messages
        if poller is not None and poller.proc is not None:
            assert poller.alive(), f"poller died:\n{poller.log_text()[-3000:]}"
        time.sleep(1.0)


def assert_exactly_once(messages: list, wanted: set[str]) -> list[dict]:
    """Each wanted inum exactly once, nothing else, every value schema-valid with timestamp = call end; returns the values."""
    keys = Counter(m.key.decode() for m in messages)
    duplicated = {k: n for k, n in keys.items() if n > 1}
    assert not duplicated, f"published more than once: {duplicated}"
    assert set(keys) == wanted, f"missing {sorted(wanted - set(keys))[:10]}, unexpected {sorted(set(keys) - wanted)[:10]}"
    values = []
    for message in messages:
        value = json.loads(message.value)
        schemas.validate("calls.raw", value)
        assert value["call_id"] == message.key.decode()
        from datetime import datetime

        assert message.timestamp == int(datetime.fromisoformat(value["ended_at"].replace("Z", "+00:00")).timestamp() * 1000)
        values.append(value)
    return values
