"""ccas/stack/java_worker.sh with a stand-in boot program: quotes stripped, staging folder per worker, nothing left behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ccas.stack import process
from ccas.stack.expansion import WORKER_SCRIPT, sweep_workers, worker_pids

# Records its arguments, then runs a child (as the real boot program runs java) and waits for it.
FAKE_BOOT = """#!/usr/bin/env bash
printf '%s\\n' "$@" > "$ARGS_FILE"
pwd > "$ARGS_FILE.cwd"
sleep "$CHILD_SECONDS" &
echo $! > "$ARGS_FILE.child"
wait $!
exit "$EXIT_CODE"
"""


@pytest.fixture
def worker_env(tmp_path: Path) -> dict[str, str]:
    boot = tmp_path / "boot"
    boot.write_text(FAKE_BOOT)
    boot.chmod(0o755)
    return {**os.environ, "CCAS_JAVA_BOOT": str(boot), "CCAS_JAVA_WORKER_DIR": str(tmp_path / "workers"),
            "ARGS_FILE": str(tmp_path / "args"), "CHILD_SECONDS": "0", "EXIT_CODE": "3"}


def wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_quoted_id_is_stripped_and_the_folder_goes_when_the_worker_ends(worker_env: dict[str, str]) -> None:
    workers = Path(worker_env["CCAS_JAVA_WORKER_DIR"])
    # Prism 2.73 passes the id with literal quotes; a semi_persist_dir from elsewhere must not win over ours.
    run = subprocess.run([str(WORKER_SCRIPT), "--id='job-001[job]_env'", "--provision_endpoint=localhost:1",
                          "--semi_persist_dir=/tmp"], env=worker_env, capture_output=True, text=True, timeout=30, check=False)
    assert run.returncode == 3, run.stderr  # the boot program's exit code is the wrapper's
    args = Path(worker_env["ARGS_FILE"]).read_text().splitlines()
    assert "--id=job-001[job]_env" in args
    assert "--provision_endpoint=localhost:1" in args
    persist = [arg for arg in args if arg.startswith("--semi_persist_dir=")]
    assert len(persist) == 1 and Path(persist[0].split("=", 1)[1]).parent == workers
    # It writes pipeline_options.json and pathing.jar into its working directory: that must be the worker's own folder.
    assert Path(worker_env["ARGS_FILE"] + ".cwd").read_text().strip() == persist[0].split("=", 1)[1]
    assert wait_until(lambda: not any(workers.iterdir())), f"worker folder left: {list(workers.iterdir())}"


def test_missing_id_is_refused(worker_env: dict[str, str]) -> None:
    run = subprocess.run([str(WORKER_SCRIPT), "--provision_endpoint=localhost:1"], env=worker_env, capture_output=True,
                         text=True, timeout=30, check=False)
    assert run.returncode == 2 and "--id" in run.stderr
    assert not Path(worker_env["ARGS_FILE"]).exists()


def test_sigkilled_wrapper_leaves_no_process_and_no_folder(worker_env: dict[str, str]) -> None:
    workers = Path(worker_env["CCAS_JAVA_WORKER_DIR"])
    env = {**worker_env, "CHILD_SECONDS": "300"}
    # Prism stops a worker this way (SIGKILL of the command it started), which the wrapper itself cannot trap.
    wrapper = subprocess.Popen([str(WORKER_SCRIPT), "--id='w1'", "--provision_endpoint=localhost:1"], env=env)
    child_file = Path(env["ARGS_FILE"] + ".child")
    boot = 0
    try:
        assert wait_until(lambda: bool(worker_pids(workers)) and child_file.exists()), "the worker did not start"
        (_, boot), = worker_pids(workers).values()
        child = int(child_file.read_text())
        assert process.pid_alive(boot) and process.pid_alive(child)
        wrapper.kill()
        wrapper.wait(timeout=10)
        gone = wait_until(lambda: not process.pid_alive(boot) and not process.pid_alive(child))
        assert gone, "the boot program or its child survived the wrapper"
        assert wait_until(lambda: not any(workers.iterdir())), f"worker folder left: {list(workers.iterdir())}"
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        if boot:  # only when the test failed: stop what the watcher should have stopped
            with contextlib.suppress(ProcessLookupError):
                os.killpg(boot, signal.SIGKILL)


def test_sweep_removes_folders_of_dead_workers_only(worker_env: dict[str, str]) -> None:
    workers = Path(worker_env["CCAS_JAVA_WORKER_DIR"])
    stale = workers / "999999999"
    (stale / "job-001" / "staged").mkdir(parents=True)
    (stale / "pids").write_text("999999999 999999999\n")  # no such process: its wrapper is gone
    env = {**worker_env, "CHILD_SECONDS": "300"}
    wrapper = subprocess.Popen([str(WORKER_SCRIPT), "--id='w2'", "--provision_endpoint=localhost:1"], env=env)
    try:
        assert wait_until(lambda: str(wrapper.pid) in worker_pids(workers)), "the worker did not start"
        assert sweep_workers(workers) == 1
        assert sorted(path.name for path in workers.iterdir()) == [str(wrapper.pid)]  # the running worker keeps its folder
    finally:
        wrapper.kill()
        wrapper.wait(timeout=10)
    assert wait_until(lambda: not any(workers.iterdir())), f"worker folder left: {list(workers.iterdir())}"
