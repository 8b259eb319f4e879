"""`ccas flink up | status | down`: a real Flink 1.20 session cluster, one TaskManager with 2 slots, nothing left after.

Runs in its own stack folder and on free ports, so it neither touches nor collides with a developer's running cluster;
the Flink home in the shared cache is reused (downloaded once per machine).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ccas import settings
from ccas.stack import process

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_naming(folder: Path) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and process.pid_alive(int(entry.name)) and str(folder) in process.cmdline(int(entry.name)):
            found.append((int(entry.name), process.cmdline(int(entry.name))[:120]))
    return found


def test_up_status_down_leaves_no_flink_process(tmp_path: Path) -> None:
    stack = tmp_path / "stack"
    env = {**os.environ, "CCAS_STACK_DIR": str(stack), "CCAS_FLINK_REST_PORT": str(_free_port()),
           "CCAS_FLINK_RPC_PORT": str(_free_port())}

    def ccas(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "ccas.cli", "flink", *args], capture_output=True, text=True,
                              timeout=180, cwd=settings.REPO_ROOT, env=env)

    try:
        up = ccas("up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = ccas("status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert "taskmanagers: 1 " in status.stdout and "slots: 2 total, 2 available" in status.stdout, status.stdout
        assert f"UI http://127.0.0.1:{env['CCAS_FLINK_REST_PORT']}" in status.stdout
        assert len(_processes_naming(stack / "flink")) == 2, "a JobManager and a TaskManager JVM"
    finally:
        down = ccas("down")
    assert down.returncode == 0 and "taskmanager pid" in down.stdout and "jobmanager pid" in down.stdout, down.stdout
    assert _processes_naming(stack / "flink") == []
    assert ccas("status").returncode == 3
