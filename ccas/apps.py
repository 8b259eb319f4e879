"""The application processes of a local run (mock recorder, scoring service, poller, pipeline), started and stopped by pid.

Used by `ccas demo` and by the end-to-end tests, so both exercise exactly the commands an operator runs. The scoring service
and the pipeline are given the same bearer token (`scoring_token`); `wait_http` needs none: /healthz is open.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from ccas import settings
from ccas.stack import process


@dataclass
class App:
    """One process in its own process group (the pipeline's Prism and Java workers go down with it)."""

    name: str
    argv: list[str]
    log_file: Path
    env: dict[str, str] = field(default_factory=dict)
    popen: subprocess.Popen | None = None

    def start(self) -> App:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env={**os.environ, **self.env}, cwd=settings.REPO_ROOT, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the app alone (it drains, cancels its job, stops its children), then SIGKILL whatever is left of its group."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        self._kill_group_leftovers()
        return self.popen.returncode

    def kill(self) -> None:
        """kill -9 of the whole group: a crash, as a power cut would cause it."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)

    def _kill_group_leftovers(self) -> None:
        # Children (Prism, Java harnesses) share the group; once the leader is gone, none may outlive it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        return process.tail(self.log_file, lines)


def ccas_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ccas.cli", *args]


def pipeline_command(*args: str) -> list[str]:
    return [sys.executable, str(settings.REPO_ROOT / "run_pipeline.py"), *args]


def scoring_token() -> str:
    """The bearer token (CCAS_SCORING_TOKEN) that a scoring service started here requires and the pipeline sends: the
    environment's, which the demo and the tests' `stack_env` fill from the local stack, else the stack's generated one."""
    return os.environ.get("CCAS_SCORING_TOKEN") or settings.local_stack_env().get("CCAS_SCORING_TOKEN", "")


def wait_http(url: str, timeout_s: float, app: App | None = None, ca_file: str | None = None) -> None:
    """Until `url` answers below 500; an https URL is verified against `ca_file` (None: the system's trust store)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        if app is not None and not app.alive():
            raise RuntimeError(f"{app.name} exited during start-up:\n{app.tail()}")
        try:
            if requests.get(url, timeout=2, verify=ca_file or True).status_code < 500:
                return
        except requests.RequestException as error:
            last = str(error)
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s ({last})")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
