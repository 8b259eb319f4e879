"""A flowing system for the fault suite: the mock recorder making calls continuously, the scoring service, the poller and the
pipeline under its supervisor (`--restart=on-failure`), all real processes on the real local stack, with their own database
and consumer group.

A fault test marks a window, breaks something inside it, heals it, and then asks `Flow.verdict` about every call that ended in
the window: scored exactly once, no dead letter, the consumer group committed past its record, the pipeline alive.
"""

from __future__ import annotations

import contextlib
import re
import time
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ccas import settings
from ccas.apps import App, ccas_command, free_port, pipeline_command
from tests.faults import report
from tests.pipeline import e2e

DLQ_TOPICS = ("calls.raw.dlq", "audio.ready.dlq", "scoring.results.dlq")
CALLS_PER_MINUTE = 12
LEAD_S = 12  # calls flowing before a fault starts
TAIL_S = 12  # and after it is healed, still inside the window


@dataclass
class Verdict:
    """What happened to the calls of one window."""

    calls: list[str]
    lost: list[str]  # not SCORED
    results_per_call: dict[str, int]  # scoring_result rows (one model version)
    messages_per_call: dict[str, int]  # scoring.results messages
    dead_letters: list[tuple[str, str, str]]  # (topic, call_id, error_type)
    uncommitted: dict[int, tuple[int, int | None]]  # partition -> (last record offset of the window, committed offset)
    restarts: int  # supervisor restarts since the previous verdict of this flow
    recovered_s: float

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.messages_per_call.values() if count > 1)

    def row(self, fault: str) -> dict[str, Any]:
        return {"fault": fault, "calls": len(self.calls), "lost": len(self.lost), "duplicates": self.duplicates,
                "dead_letters": len(self.dead_letters), "recovered_s": round(self.recovered_s, 1), "restarts": self.restarts}

    def assert_healed(self) -> None:
        assert self.calls, "no call ended inside the window: the fault proved nothing"
        assert self.lost == [], f"calls not scored: {self.lost}"
        assert all(count == 1 for count in self.results_per_call.values()), f"scored more than once: {self.results_per_call}"
        assert self.dead_letters == [], f"a transient fault dead-lettered calls: {self.dead_letters}"
        assert self.uncommitted == {}, f"consumer group not committed past the window's records: {self.uncommitted}"
        assert all(count >= 1 for count in self.messages_per_call.values()), "a scored call without its scoring.results message"


@dataclass
class Flow:
    services: e2e.Services
    database_url: str
    bootstrap: str
    group: str
    start_offsets: dict[int, int]
    outputs_start: dict[str, dict[int, int]]
    apps: dict[str, App] = field(default_factory=dict)
    pipeline_args: list[str] = field(default_factory=list)
    restarts_reported: int = 0  # supervisor restarts already counted by an earlier verdict
    started_at: datetime = field(default_factory=lambda: now())

    @property
    def pipeline(self) -> App:
        return self.apps["pipeline"]

    @property
    def scoring(self) -> App:
        return self.services.apps[1]

    def start_pipeline(self, name: str = "pipeline", *extra: str) -> App:
        app = App(name, pipeline_command(
            "--runner=DirectRunner", "--kafka_io=java", f"--consumer_group={self.group}",
            f"--avaya_url={self.services.recorder_url}",
            f"--scoring_url={self.services.scoring_url}", f"--metrics_port={free_port()}", "--download_backoff_s=1",
            "--scoring_backoff_s=0.5", "--restart=on-failure", *self.pipeline_args, *extra),
            e2e.LOG_DIR / f"{name}-{self.group}.log",
            env={**self.services.scoring_env, **settings.component_env("pipeline", self.database_url)}).start()
        self.apps[name] = app
        return app

    def calls_ended_between(self, start: datetime, end: datetime) -> list[str]:
        return sorted(call["inum"] for call in self.services.recorder_calls()
                      if start <= datetime.fromisoformat(call["ended_at"]) < end)

    def statuses(self, calls: list[str]) -> dict[str, str]:
        rows = e2e.query(self.database_url, "SELECT call_id, status FROM call WHERE call_id = ANY(%s)", (calls,))
        return dict(rows)

    def wait_scored(self, calls: list[str], timeout_s: float) -> float:
        """Seconds until every call is SCORED (AssertionError on timeout, or when a process died)."""
        started = time.monotonic()
        e2e.wait_until(lambda: all(status == "SCORED" for status in self.statuses(calls).values())
                       and len(self.statuses(calls)) == len(calls), timeout_s, f"{len(calls)} calls scored",
                       [app for name, app in self.apps.items() if name in ("pipeline", "poller")], interval_s=2)
        return time.monotonic() - started

    def _record_offsets(self, calls: set[str]) -> dict[int, int]:
        last: dict[int, int] = {}
        for partition, offset, value in e2e.read_since(self.bootstrap, "calls.raw", self.start_offsets, with_positions=True):
            if value.get("call_id") in calls:
                last[partition] = max(last.get(partition, -1), offset)
        return last

    def uncommitted(self, calls: list[str]) -> dict[int, tuple[int, int | None]]:
        last = self._record_offsets(set(calls))
        done = e2e.committed(self.bootstrap, self.group, "calls.raw", sorted(last))
        return {p: (offset, done[p]) for p, offset in last.items() if (done[p] or 0) <= offset}

    def _log(self) -> str:
        return self.pipeline.log_file.read_text(errors="replace") if self.pipeline.log_file.exists() else ""

    def restarts(self) -> int:
        """Restarts the supervisor logged (one line each)."""
        return len(re.findall(r"supervisor: restart \d+:", self._log()))

    def child_pid(self) -> int | None:
        """The pid (= process group) of the job's current child process, from the supervisor's log."""
        started = re.findall(r"supervisor: started the pipeline child pid (\d+)", self._log())
        return int(started[-1]) if started else None

    def close_window(self, fault: str, window_start: datetime, healed: float | None, settle_timeout_s: float,
                     tail_s: float = TAIL_S) -> Verdict:
        """After a fault healed at `healed` (monotonic; None: nothing to recover from): calls flow `tail_s` more, then the
        verdict on every call that ended since `window_start`, recorded for bench/faults.py."""
        time.sleep(tail_s)
        calls = self.calls_ended_between(window_start, now())
        self.wait_scored(calls, settle_timeout_s)
        verdict = self.verdict(calls, recovered_s=0.0 if healed is None else time.monotonic() - healed)
        report.record(fault, verdict)
        return verdict

    def verdict(self, calls: list[str], recovered_s: float, commit_timeout_s: float = 180) -> Verdict:
        with contextlib.suppress(AssertionError):  # reported in the verdict
            e2e.wait_until(lambda: not self.uncommitted(calls), commit_timeout_s, "the group committed past the window")
        wanted = set(calls)
        results = dict(e2e.query(self.database_url, "SELECT call_id, count(*) FROM scoring_result WHERE call_id = ANY(%s) "
                                                    "GROUP BY call_id", (calls,)))
        messages = Counter(v["call_id"] for v in e2e.read_since(self.bootstrap, "scoring.results",
                                                                self.outputs_start["scoring.results"])
                           if v.get("call_id") in wanted)
        dead = [(topic, v.get("call_id"), v.get("error_type")) for topic in DLQ_TOPICS
                for v in e2e.read_since(self.bootstrap, topic, self.outputs_start[topic]) if v.get("call_id") in wanted]
        statuses = self.statuses(calls)
        restarts, self.restarts_reported = self.restarts() - self.restarts_reported, self.restarts()
        return Verdict(calls=calls, lost=[c for c in calls if statuses.get(c) != "SCORED"],
                       results_per_call={c: results.get(c, 0) for c in calls}, messages_per_call={c: messages[c] for c in calls},
                       dead_letters=dead, uncommitted=self.uncommitted(calls), restarts=restarts, recovered_s=recovered_s)


@contextmanager
def flowing(stack_env: dict[str, str], *, pipeline_args: list[str] = (), poller: bool = True,
            calls_per_minute: float = CALLS_PER_MINUTE, mock_args: list[str] = (), lookback_s: int = 60) -> Any:
    """The whole system running against a scratch database; yields the Flow once the first call is scored. `mock_args`
    override the recorder's defaults (calls of 5-16 s); `lookback_s` is the poller's look-back."""
    seed = int(uuid.uuid4().int % 90_000) + 10_000
    services = e2e.start_services(seed, 10_000, ["--start", "now", "--duration-min", "5", "--duration-median", "9",
                                                 "--duration-max", "16", "--availability-delay", "1", *mock_args],
                                  calls_per_minute=calls_per_minute)
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    try:
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            group = f"ccas-pipeline-faults-{uuid.uuid4().hex[:8]}"
            start = e2e.end_offsets(bootstrap, "calls.raw")
            e2e.commit_group(bootstrap, group, "calls.raw", start)
            outputs = {topic: e2e.end_offsets(bootstrap, topic) for topic in ("scoring.results", *DLQ_TOPICS)}
            flow = Flow(services, url, bootstrap, group, start, outputs, pipeline_args=list(pipeline_args))
            try:
                flow.start_pipeline()
                if poller:
                    flow.apps["poller"] = App("poller", ccas_command(
                        "poller", "--interval", "2", "--settle", "2", "--lookback", str(lookback_s), "--start", "-30",
                        "--metrics-port", "0", "--transactional-id", f"ccas-poller-{group}"),
                        e2e.LOG_DIR / f"poller-{group}.log",
                        env={"CCAS_AVAYA_URL": services.recorder_url, **settings.component_env("poller", url)}).start()
                e2e.wait_until(lambda: e2e.query(url, "SELECT count(*) FROM scoring_result")[0][0] > 0, 300,
                               "the first scored call", list(flow.apps.values()), interval_s=2)
                yield flow
            finally:
                for app in reversed(list(flow.apps.values())):
                    app.stop()
    finally:
        services.stop()


def now() -> datetime:
    return datetime.now(UTC)
