"""What bench/e2e_load.py measures while a run goes: CPU and RSS per process group, the pipeline's consumer lag, and each
call's stage times read back from the topics the stages publish to."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from kafka import KafkaConsumer, TopicPartition

from core.kafka import client_security
from tests.pipeline.e2e import read_since

STAGE_TOPICS = ("calls.raw", "calls.enriched", "audio.ready", "scoring.results")
DEAD_LETTER_TOPICS = ("calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq")


class ProcessSampler(threading.Thread):
    """Every `interval_s`: CPU-seconds (user + system) and RSS summed per named group of processes.

    A process belongs to the group whose leader is its process group (the apps run in their own sessions, so Prism and the
    Java harnesses belong to the pipeline) or, failing that, its nearest leader ancestor (the stack's services); anything
    else is "other". A process's CPU is remembered after it exits, so a group's CPU never goes down.
    """

    def __init__(self, leaders: dict[str, int], interval_s: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.by_pid = {pid: name for name, pid in leaders.items()}
        self.interval_s = interval_s
        self.samples: list[tuple[float, dict[str, float], dict[str, int]]] = []  # (time, cpu_s, rss_bytes) per group
        self._cpu: dict[int, tuple[str, str, float]] = {}  # pid → (group, process name, CPU-s)
        self._group_of: dict[int, str] = {}
        self._names: dict[int, str] = {}
        self._lock = threading.Lock()  # the bench also samples from its own thread around the isolated run
        self.stopping = threading.Event()

    def _group(self, process: psutil.Process) -> str:
        pid = process.pid
        if pid not in self._group_of:
            name = self.by_pid.get(pid)
            if name is None:
                try:
                    name = self.by_pid.get(os.getpgid(pid))
                    if name is None:
                        name = next((self.by_pid[p.pid] for p in process.parents() if p.pid in self.by_pid), "other")
                except (ProcessLookupError, psutil.Error):
                    name = "other"
            self._group_of[pid] = name
        return self._group_of[pid]

    def sample(self) -> None:
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        rss: dict[str, int] = {}
        for process in psutil.process_iter():
            try:
                group = self._group(process)
                times = process.cpu_times()
                memory = process.memory_info().rss
                name = self._names.get(process.pid) or self._names.setdefault(process.pid, _process_name(process))
            except psutil.Error:
                continue
            self._cpu[process.pid] = (group, name, times.user + times.system)
            rss[group] = rss.get(group, 0) + memory
        cpu: dict[str, float] = {}
        for group, name, seconds in self._cpu.values():
            cpu[group] = cpu.get(group, 0.0) + seconds
            cpu[f"{group}/{name}"] = cpu.get(f"{group}/{name}", 0.0) + seconds  # the parts of a group, by program
        self.samples.append((time.time(), cpu, rss))

    def run(self) -> None:
        while not self.stopping.wait(self.interval_s):
            self.sample()

    def between(self, start: float, end: float) -> dict[str, dict[str, float]]:
        """Per group over [start, end]: CPU-seconds used, mean cores, peak RSS (MB), and RSS (MB) in the first and last
        minute (the drift the memory goal looks at)."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        span = last[0] - first[0]
        out: dict[str, dict[str, float]] = {}
        for group in sorted(set(last[1]) | set(last[2])):
            if "/" in group:
                used = last[1].get(group, 0.0) - first[1].get(group, 0.0)
                out[group] = {"cpu_s": used, "cores": used / span, "rss_peak_mb": 0.0, "rss_first_min_mb": 0.0,
                              "rss_last_min_mb": 0.0}
                continue
            rss = [s[2].get(group, 0) / 2**20 for s in inside]
            head = [s[2].get(group, 0) / 2**20 for s in inside if s[0] <= first[0] + 60]
            tail = [s[2].get(group, 0) / 2**20 for s in inside if s[0] >= last[0] - 60]
            used = last[1].get(group, 0.0) - first[1].get(group, 0.0)
            out[group] = {"cpu_s": used, "cores": used / span, "rss_peak_mb": max(rss),
                          "rss_first_min_mb": sum(head) / len(head), "rss_last_min_mb": sum(tail) / len(tail)}
        return out


def _process_name(process: psutil.Process) -> str:
    """A short name for the program: python's module or script, java's main class family, else the executable."""
    argv = process.cmdline()
    name = process.name()
    if name.startswith("python") and len(argv) > 1:
        script = argv[2] if argv[1] == "-m" and len(argv) > 2 else argv[1]
        return f"python:{Path(script).name}"
    if name == "java":
        return "java:" + next((a.rsplit(".", 1)[-1] for a in argv[1:] if a.startswith(("org.", "com."))), "?")
    return name


class LagSampler(threading.Thread):
    """Every `interval_s`: the group's lag on `topic` (end offsets minus committed offsets, summed over partitions)."""

    def __init__(self, bootstrap: str, group: str, topic: str = "calls.raw", interval_s: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.group, self.topic, self.interval_s = bootstrap, group, topic, interval_s
        self.samples: list[tuple[float, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.group, enable_auto_commit=False,
                                 **client_security(None))
        try:
            partitions = [TopicPartition(self.topic, p) for p in sorted(consumer.partitions_for_topic(self.topic))]
            while not self.stopping.wait(self.interval_s):
                try:
                    ends = consumer.end_offsets(partitions)
                    lag = sum(max(0, ends[tp] - (consumer.committed(tp) or 0)) for tp in partitions)
                except Exception:  # noqa: BLE001 - a missed sample is a gap in the plot, not a failed run
                    continue
                self.samples.append((time.time(), lag))
        finally:
            consumer.close()


def end_offsets(bootstrap: str, topics: tuple[str, ...]) -> dict[str, dict[int, int]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **client_security(None))
    try:
        out = {}
        for topic in topics:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
            out[topic] = {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
        return out
    finally:
        consumer.close()


def records_since(bootstrap: str, topic: str, since: dict[int, int]) -> list[tuple[int, str, dict[str, Any]]]:
    """(timestamp ms, key, value) of every committed record of `topic` after `since`, watermark markers left out."""
    return [(timestamp, key, value if isinstance(value, dict) else {})
            for timestamp, key, value in read_since(bootstrap, topic, since, with_times=True)]


@dataclass
class CallTimes:
    """One call's moments (epoch seconds): it ended, the poller published it, it was enriched, stored, scored."""

    call_id: str
    ended: float
    raw: float | None = None
    enriched: float | None = None
    stored: float | None = None
    scored: float | None = None
    scoring_s: float | None = None  # the scoring service's share (the pipeline's request latency)
    audio_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def span(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else b - a

    @property
    def pipeline_own_s(self) -> float | None:
        """On calls.raw → scoring.results, less the scoring request itself."""
        total = self.span("raw", "scored")
        return None if total is None or self.scoring_s is None else max(0.0, total - self.scoring_s)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def call_times(bootstrap: str, since: dict[str, dict[int, int]]) -> dict[str, CallTimes]:
    """Every call published on calls.raw after `since`, with the first time each later stage's topic saw it."""
    calls: dict[str, CallTimes] = {}
    for _, key, value in records_since(bootstrap, "calls.raw", since["calls.raw"]):
        call_id = value.get("call_id") or key
        if call_id and call_id not in calls and value.get("ended_at"):
            # event_ts of calls.raw is when the poller built the event; the record's own timestamp is the call's end.
            calls[call_id] = CallTimes(call_id, _epoch(value["ended_at"]), raw=_epoch(value["event_ts"]))
    for topic, attribute in (("calls.enriched", "enriched"), ("audio.ready", "stored"), ("scoring.results", "scored")):
        for timestamp_ms, key, value in records_since(bootstrap, topic, since[topic]):
            call = calls.get(value.get("call_id") or key)
            if call is None or getattr(call, attribute) is not None:
                continue
            setattr(call, attribute, timestamp_ms / 1000)
            if topic == "audio.ready":
                call.audio_s = value.get("duration")
            if topic == "scoring.results" and value.get("latency_ms") is not None:
                call.scoring_s = value["latency_ms"] / 1000
    return calls


def dead_letters(bootstrap: str, since: dict[str, dict[int, int]]) -> dict[str, int]:
    return {topic: len(records_since(bootstrap, topic, since[topic])) for topic in DEAD_LETTER_TOPICS}


def percentiles(values: list[float], points: tuple[int, ...] = (50, 95, 99)) -> dict[str, float | None]:
    ordered = sorted(v for v in values if v is not None)
    if not ordered:
        return {f"p{p}": None for p in points}
    return {f"p{p}": ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] for p in points}


def slope_per_min(samples: list[tuple[float, int]], start: float, end: float) -> float | None:
    """Least-squares slope (messages per minute) of the lag samples inside [start, end]."""
    inside = [(t, v) for t, v in samples if start <= t <= end]
    if len(inside) < 3:
        return None
    n = len(inside)
    mean_t = sum(t for t, _ in inside) / n
    mean_v = sum(v for _, v in inside) / n
    var = sum((t - mean_t) ** 2 for t, _ in inside)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in inside) / var if var else None
