"""`--restart=on-failure`: run the job as a child process and start it again when it fails or dies.

For single-machine runs (Prism); on a cluster Flink restarts the job itself (docs/operations.md, Restarts and fencing).
The child runs in a session of its own, so everything it starts (Prism, the SDK harnesses) shares its process group. When the
child ends, whatever is left of that group, and of the descendants recorded while it ran (by pid and start time, including
those that left the group), is stopped by process group and pid, never by name: SIGTERM first (the Java harness wrappers
clean up on it), SIGKILL after a grace period.

Restarts follow a capped exponential backoff (first delay doubled per failure in a row, up to the maximum), reset once a
child ran longer than `--restart_reset_s`. Each restart is logged with the child's exit status and counted in
`pipeline_restarts_total` (its own Prometheus endpoint, `--supervisor_metrics_port`). SIGINT/SIGTERM are forwarded to the
child; the supervisor waits for it, cleans up and exits 0 without restarting.

The first child's refusals are final: configuration (exit 2) and "another pipeline holds the group" (exit 3, unless
--standby) make the supervisor exit with the same code, since a restart cannot change them. Later children are started on
standby: a job that has run once waits for the group rather than bouncing off a pipeline that took over meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from pipeline.fencing import EXIT_GROUP_HELD

log = logging.getLogger("ccas.pipeline.supervisor")

EXIT_CONFIG = 2  # pipeline.main: invalid configuration
STOP_GRACE_S = 10.0  # leftovers get SIGTERM, then SIGKILL after this long (the Java harness watcher needs ~7 s)
CHILD_STOP_TIMEOUT_S = 120.0  # after a forwarded signal: how long the child may take to cancel its job
TREE_SCAN_EVERY_S = 2.0


@dataclass(frozen=True)
class ChildExit:
    """How a child ended: Popen's returncode (negative: killed by that signal) and how long it ran."""

    returncode: int
    ran_s: float

    def describe(self) -> str:
        if self.returncode < 0:
            with contextlib.suppress(ValueError):
                return f"killed by signal {signal.Signals(-self.returncode).name}"
            return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"


@dataclass
class Backoff:
    """Capped exponential backoff between restarts, reset by a long enough run."""

    initial_s: float = 1.0
    max_s: float = 60.0
    reset_after_s: float = 300.0
    failures_in_a_row: int = 0

    def next_delay(self, ran_s: float) -> float:
        """The delay before restarting a child that ran ran_s seconds before failing."""
        if ran_s >= self.reset_after_s:
            self.failures_in_a_row = 0
        self.failures_in_a_row += 1
        return min(self.max_s, self.initial_s * 2 ** (self.failures_in_a_row - 1))


@dataclass(frozen=True)
class Decision:
    restart: bool
    exit_code: int = 0
    reason: str = ""


def decide(ended: ChildExit, *, first_child: bool, standby: bool) -> Decision:
    """Restart or exit, and with which code, after a child ended on its own (not stopped by us)."""
    if ended.returncode == 0:
        return Decision(False, 0, "the job ended by itself (exit status 0); not restarted")
    if first_child and ended.returncode == EXIT_CONFIG:
        return Decision(False, EXIT_CONFIG, "the first start failed on its configuration; a restart cannot fix that")
    if first_child and ended.returncode == EXIT_GROUP_HELD and not standby:
        return Decision(False, EXIT_GROUP_HELD, "another pipeline holds the consumer group (see the message above)")
    return Decision(True)


# -- processes -----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcInfo:
    state: str
    ppid: int
    pgid: int
    started: int  # clock ticks after boot: tells a pid from a later process that got the same pid


def process_table() -> dict[int, ProcInfo]:
    """Every process of this machine from /proc (empty where there is no /proc)."""
    table: dict[int, ProcInfo] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        table[int(name)] = ProcInfo(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    return table


@dataclass
class ProcessTree:
    """The child's process group and descendants, recorded by pid and start time while it runs.

    A descendant that left the group (the Java harness wrapper starts its boot program with setsid) or was re-parented when
    its parent died is still found by pid. Nothing is ever looked up by name."""

    root: int
    known: dict[int, int] = field(default_factory=dict)  # pid -> start time

    def scan(self) -> dict[int, ProcInfo]:
        table = process_table()
        anchors = {self.root} | {pid for pid, started in self.known.items()
                                 if pid in table and table[pid].started == started}
        for pid, info in table.items():
            if pid in self.known or pid == os.getpid():
                continue
            if info.pgid == self.root or self._descends(pid, table, anchors):
                self.known[pid] = info.started
        return table

    @staticmethod
    def _descends(pid: int, table: dict[int, ProcInfo], anchors: set[int]) -> bool:
        for _ in range(64):
            parent = table[pid].ppid if pid in table else 0
            if parent in anchors:
                return True
            if parent <= 1 or parent not in table:
                return False
            pid = parent
        return False

    def alive(self) -> tuple[list[int], bool]:
        """Live (non-zombie) processes of the tree, and whether any of them is still in the child's group."""
        table = self.scan()
        live = [pid for pid, started in self.known.items()
                if pid in table and table[pid].started == started and table[pid].state != "Z"]
        if not table:  # no /proc: ask the group itself
            try:
                os.killpg(self.root, 0)
                return [], True
            except (ProcessLookupError, PermissionError):
                return [], False
        return live, any(table[pid].pgid == self.root for pid in live)

    def reap(self) -> None:
        """Collect tree members that ended as our children (re-parented to us when we run as PID 1 in a container)."""
        me = os.getpid()
        for pid, info in process_table().items():
            if info.state == "Z" and info.ppid == me and pid in self.known:
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(pid, os.WNOHANG)

    def stop(self, grace_s: float = STOP_GRACE_S) -> list[int]:
        """SIGTERM every live member (and the group), SIGKILL after grace_s; returns the pids that were still alive."""
        signalled: list[int] = []
        group_signalled = False
        deadline = time.monotonic() + grace_s
        while True:
            self.reap()
            live, group_alive = self.alive()
            if not live and not group_alive:
                return signalled
            killing = time.monotonic() >= deadline
            if killing:
                log.warning("supervisor: processes %s of the ended child still alive after %.0f s: SIGKILL", live, grace_s)
            for pid in live:
                if killing or pid not in signalled:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL if killing else signal.SIGTERM)
                if pid not in signalled:
                    signalled.append(pid)
            if group_alive and (killing or not group_signalled):
                group_signalled = True
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.root, signal.SIGKILL if killing else signal.SIGTERM)
            time.sleep(0.2)


# -- the supervisor ------------------------------------------------------------------------------------------------------------
@dataclass
class Supervisor:
    """Runs `command_for(standby)` as a child until it ends for good; returns the supervisor's exit code."""

    command_for: Callable[[bool], list[str]]
    backoff: Backoff = field(default_factory=Backoff)
    standby: bool = False
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0
    env: dict[str, str] | None = None
    stop_grace_s: float = STOP_GRACE_S
    restarts: int = 0
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self._restarts_total = Counter("pipeline_restarts_total", "Restarts of the pipeline job by its supervisor",
                                       registry=self.registry)
        self._child_up = Gauge("pipeline_child_running", "1 while the supervised pipeline child process runs",
                               registry=self.registry)
        self._stop_signal: int | None = None
        self._wake = threading.Event()
        self._child: subprocess.Popen | None = None

    def serve_metrics(self) -> int | None:
        if self.metrics_port <= 0:
            return None
        start_http_server(self.metrics_port, addr=self.metrics_host, registry=self.registry)
        log.info("supervisor metrics (pipeline_restarts_total) on http://%s:%d/metrics", self.metrics_host, self.metrics_port)
        return self.metrics_port

    def _on_signal(self, signum: int, _frame: Any) -> None:
        child = self._child
        if self._stop_signal is not None:
            # A second signal: no more waiting for a clean cancel.
            if child is not None and child.poll() is None:
                log.warning("supervisor: second signal %s: killing the child's process group", signal.Signals(signum).name)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
            return
        self._stop_signal = signum
        self._wake.set()
        if child is not None and child.poll() is None:
            log.info("supervisor: signal %s: forwarding it to the child (pid %d) and stopping without restart",
                     signal.Signals(signum).name, child.pid)
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)
        else:
            log.info("supervisor: signal %s: stopping", signal.Signals(signum).name)

    def _start(self, standby: bool) -> subprocess.Popen:
        command = self.command_for(standby)
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True,
                                 env=None if self.env is None else {**os.environ, **self.env})
        self._child = child
        self._child_up.set(1)
        log.info("supervisor: started the pipeline child pid %d (process group %d)%s", child.pid, child.pid,
                 ", on standby" if standby else "")
        if self._stop_signal is not None and child.poll() is None:  # the signal came while it was being started
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(self._stop_signal)
        return child

    def _wait(self, child: subprocess.Popen, tree: ProcessTree) -> int:
        stop_deadline: float | None = None
        next_scan = 0.0
        while True:
            if time.monotonic() >= next_scan:
                tree.scan()
                next_scan = time.monotonic() + TREE_SCAN_EVERY_S
            with contextlib.suppress(subprocess.TimeoutExpired):
                return child.wait(timeout=0.5)
            if self._stop_signal is not None:
                stop_deadline = stop_deadline or time.monotonic() + CHILD_STOP_TIMEOUT_S
                if time.monotonic() > stop_deadline:
                    log.warning("supervisor: the child did not stop within %.0f s: SIGKILL to its process group",
                                CHILD_STOP_TIMEOUT_S)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(child.pid, signal.SIGKILL)

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.serve_metrics()
            log.info("supervisor: --restart=on-failure (pid %d): backoff %.0f s doubling to %.0f s, reset after %.0f s "
                     "of running", os.getpid(), self.backoff.initial_s, self.backoff.max_s, self.backoff.reset_after_s)
            first = True
            while True:
                started = time.monotonic()
                child = self._start(self.standby or not first)
                tree = ProcessTree(child.pid)
                returncode = self._wait(child, tree)
                ended = ChildExit(returncode, time.monotonic() - started)
                self._child_up.set(0)
                left = tree.stop(self.stop_grace_s)
                if left:
                    log.info("supervisor: stopped %d leftover process(es) of child %d: %s", len(left), child.pid, left)
                if self._stop_signal is not None:
                    log.info("supervisor: child %d ended (%s) after the forwarded signal; exiting 0", child.pid,
                             ended.describe())
                    return 0
                decision = decide(ended, first_child=first, standby=self.standby)
                if not decision.restart:
                    log.log(logging.INFO if decision.exit_code == 0 else logging.ERROR,
                            "supervisor: child %d ended (%s): %s; exiting %d", child.pid, ended.describe(), decision.reason,
                            decision.exit_code)
                    return decision.exit_code
                first = False
                delay = self.backoff.next_delay(ended.ran_s)
                self.restarts += 1
                self._restarts_total.inc()
                log.warning("supervisor: restart %d: child %d ended (%s) after %.1f s; starting it again in %.1f s "
                            "(pipeline_restarts_total %d)", self.restarts, child.pid, ended.describe(), ended.ran_s, delay,
                            self.restarts)
                if self._wake.wait(delay):
                    log.info("supervisor: stopped during the restart delay; exiting 0")
                    return 0
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
