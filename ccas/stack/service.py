"""The shape every local-stack service shares: prepare (cached downloads/builds), start, health, stop by pid."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ccas import settings
from ccas.stack import process
from ccas.stack.process import StackError

log = logging.getLogger(__name__)


@dataclass
class Status:
    name: str
    state: str
    pid: int | None
    ports: dict[str, int]
    health: str
    rss_mb: float | None


class Service:
    """One real server of the local stack, bound to 127.0.0.1, with its data and pid under the stack folder."""

    name = "service"
    start_timeout_s = 60.0

    def __init__(self) -> None:
        self.ports_all = settings.ports()
        self.dir = settings.stack_dir() / self.name
        self.pid_file = self.dir / "pid"
        self.log_file = self.dir / f"{self.name}.log"

    # What a subclass provides --------------------------------------------------------------------------------------------
    def ports(self) -> dict[str, int]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Download or build what the service needs (cached outside the clone); idempotent."""

    def start(self) -> None:
        raise NotImplementedError

    def probe(self) -> str:
        """A real request to the server; returns a short detail, raises on failure."""
        raise NotImplementedError

    def after_start(self) -> None:
        """One-time set-up that needs the running server (roles, databases); idempotent."""

    # Shared behaviour -------------------------------------------------------------------------------------------------------
    @property
    def marker(self) -> str:
        return str(self.dir)

    def pid(self) -> int | None:
        return process.owned_pid(self.pid_file, self.marker)

    def check_ports_free(self) -> None:
        for label, port in self.ports().items():
            if not process.port_bindable(port):
                raise StackError(
                    f"cannot start {self.name}: port {port} ({label}) on 127.0.0.1 is already in use by another process; "
                    f"stop that process or choose other ports with CCAS_PORT_BASE (now {settings.port_base()})"
                )

    def up(self) -> str:
        if self.pid() is not None:
            return "already running"
        self.check_ports_free()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        started = time.monotonic()
        self.start()
        self.wait_healthy()
        self.after_start()
        return f"started in {time.monotonic() - started:.1f} s"

    def _started_pid(self) -> int | None:
        # The pid recorded at spawn, trusted without the command-line check: the process was started by this very call.
        return process.read_pid(self.pid_file) if self.pid_file.exists() else self.pid()

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        last_error = "no probe yet"
        started = self._started_pid()
        while time.monotonic() < deadline:
            if started is None or not process.pid_alive(started):
                exit_note = process.exit_status(started) if started else "no pid recorded"
                raise StackError(f"{self.name} exited during start-up ({exit_note}); last log lines:\n"
                                 f"{process.tail(self.log_file)}")
            try:
                self.probe()
                return
            except Exception as error:  # noqa: BLE001 - any failed probe means "not yet"; the last one is reported
                last_error = str(error)
            time.sleep(0.3)
        raise StackError(f"{self.name} not healthy after {self.start_timeout_s:.0f} s ({last_error}); "
                         f"log: {self.log_file}\n{process.tail(self.log_file)}")

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        process.terminate(pid)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> Status:
        pid = self.pid()
        if pid is None:
            return Status(self.name, "stopped", None, self.ports(), "-", None)
        try:
            health = "ok: " + self.probe()
        except Exception as error:  # noqa: BLE001 - status reports, it does not fail
            health = f"FAILING: {error}"
        return Status(self.name, "running", pid, self.ports(), health, process.rss_mb(pid))

    def log_path(self) -> Path:
        return self.log_file
