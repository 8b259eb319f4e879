"""The supervisor's decisions and mechanics, with small fake child commands (the supervisor runs any command)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipeline import supervisor
from pipeline.fencing import EXIT_GROUP_HELD, EXIT_GROUP_LOST
from pipeline.main import child_command, supervise, with_switch_values
from pipeline.options import ConfigError
from pipeline.settings import PipelineSettings
from pipeline.supervisor import Backoff, ChildExit, ProcessTree, Supervisor, decide


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def counting_child(counter: Path, fail_times: int, failure: str = "sys.exit(1)") -> list[str]:
    """A child that counts its starts in `counter` and fails the first fail_times times, then exits 0."""
    return python(f"import os, signal, sys; from pathlib import Path; p = Path({str(counter)!r}); "
                  f"n = int(p.read_text()) + 1 if p.exists() else 1; p.write_text(str(n)); "
                  f"{failure} if n <= {fail_times} else sys.exit(0)")


def fast(command_for, **kwargs) -> Supervisor:  # noqa: ANN001 - a callable
    return Supervisor(command_for=command_for, backoff=Backoff(0.01, 0.05, 300.0), stop_grace_s=2.0, **kwargs)


def alive(pid: int, started: int) -> bool:
    table = supervisor.process_table()
    return pid in table and table[pid].started == started and table[pid].state != "Z"


# -- backoff and decisions -------------------------------------------------------------------------------------------------
def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    backoff = Backoff(initial_s=1.0, max_s=60.0, reset_after_s=300.0)
    assert [backoff.next_delay(ran_s=2.0) for _ in range(9)] == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_a_long_healthy_run_resets_the_backoff() -> None:
    backoff = Backoff(initial_s=1.0, max_s=60.0, reset_after_s=300.0)
    for _ in range(4):
        backoff.next_delay(ran_s=5.0)
    assert backoff.next_delay(ran_s=299.0) == 16
    assert backoff.next_delay(ran_s=300.0) == 1
    assert backoff.next_delay(ran_s=1.0) == 2


def test_exit_status_and_signal_are_described() -> None:
    assert ChildExit(1, 3.0).describe() == "exit status 1"
    assert ChildExit(-signal.SIGKILL, 3.0).describe() == "killed by signal SIGKILL"


@pytest.mark.parametrize(("returncode", "first", "standby", "restart", "code"), [
    (0, True, False, False, 0),  # the job ended by itself: on-failure does not restart it
    (0, False, False, False, 0),
    (1, True, False, True, 0),
    (-signal.SIGKILL, True, False, True, 0),
    (-signal.SIGSEGV, False, False, True, 0),
    (2, True, False, False, 2),  # configuration: a restart cannot fix it
    (2, False, False, True, 0),  # a later start that fails on configuration (e.g. a password file being replaced) retries
    (EXIT_GROUP_HELD, True, False, False, EXIT_GROUP_HELD),
    (EXIT_GROUP_HELD, True, True, True, 0),
    (EXIT_GROUP_HELD, False, False, True, 0),
    (EXIT_GROUP_LOST, True, False, True, 0),
])
def test_restart_decisions(returncode: int, first: bool, standby: bool, restart: bool, code: int) -> None:
    decision = decide(ChildExit(returncode, 1.0), first_child=first, standby=standby)
    assert (decision.restart, decision.exit_code) == (restart, code)


# -- the supervisor with fake children -----------------------------------------------------------------------------------------
def test_a_failing_child_is_restarted_until_it_succeeds_and_each_restart_is_counted(tmp_path: Path,
                                                                                      caplog: pytest.LogCaptureFixture) -> None:
    counter = tmp_path / "starts"
    registry = CollectorRegistry()
    sup = fast(lambda standby: counting_child(counter, fail_times=2), registry=registry)
    assert sup.run() == 0
    assert counter.read_text() == "3"
    assert sup.restarts == 2
    assert registry.get_sample_value("pipeline_restarts_total") == 2.0
    restarts = [r.getMessage() for r in caplog.records if "supervisor: restart" in r.getMessage()]
    assert len(restarts) == 2 and "exit status 1" in restarts[0] and "pipeline_restarts_total 1" in restarts[0]


def test_a_child_killed_by_a_signal_is_restarted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    counter = tmp_path / "starts"
    sup = fast(lambda standby: counting_child(counter, 1, failure="os.kill(os.getpid(), signal.SIGKILL)"))
    assert sup.run() == 0
    assert sup.restarts == 1
    assert any("killed by signal SIGKILL" in r.getMessage() for r in caplog.records)


def test_later_children_start_on_standby(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    asked: list[bool] = []

    def command_for(standby: bool) -> list[str]:
        asked.append(standby)
        return counting_child(counter, fail_times=2)

    assert fast(command_for).run() == 0
    assert asked == [False, True, True]


@pytest.mark.parametrize("code", [2, EXIT_GROUP_HELD])
def test_a_refusal_of_the_first_child_is_final(code: int) -> None:
    sup = fast(lambda standby: python(f"import sys; sys.exit({code})"))
    assert sup.run() == code
    assert sup.restarts == 0


def test_on_standby_a_fenced_first_child_is_retried(tmp_path: Path) -> None:
    counter = tmp_path / "starts"
    sup = fast(lambda standby: counting_child(counter, 1, failure=f"sys.exit({EXIT_GROUP_HELD})"), standby=True)
    assert sup.run() == 0
    assert sup.restarts == 1


def test_sigterm_is_forwarded_to_the_child_and_the_supervisor_exits_0_without_restart(tmp_path: Path) -> None:
    ready, got = tmp_path / "ready", tmp_path / "got-signal"
    child = python("import signal, sys, time; from pathlib import Path\n"
                   f"def stop(signum, frame):\n    Path({str(got)!r}).write_text(str(signum)); sys.exit(7)\n"
                   "signal.signal(signal.SIGTERM, stop)\n"
                   f"Path({str(ready)!r}).write_text('ok')\n"
                   "while True: time.sleep(0.1)")
    sup = fast(lambda standby: child)

    def signal_when_ready() -> None:
        for _ in range(600):
            if ready.exists():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=signal_when_ready, daemon=True).start()
    assert sup.run() == 0
    assert got.read_text() == str(int(signal.SIGTERM))
    assert sup.restarts == 0
    assert signal.getsignal(signal.SIGTERM) is not sup._on_signal, "the previous handler is restored"


def test_leftovers_of_an_ended_child_are_stopped_even_outside_its_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # First start: one grandchild in the child's group, one in a session of its own (as the Java harness does), then fail.
    first = python("import subprocess, sys, time; from pathlib import Path\n"
                   "same = subprocess.Popen(['sleep', '300'])\n"
                   "away = subprocess.Popen(['sleep', '301'], start_new_session=True)\n"
                   f"Path({str(pids)!r}).write_text(f'{{same.pid}} {{away.pid}}')\n"
                   f"time.sleep({supervisor.TREE_SCAN_EVERY_S * 2}); sys.exit(1)")

    commands = iter([first, python("import sys; sys.exit(0)")])
    table_before: dict[int, int] = {}

    def remember() -> None:
        while not pids.exists():
            time.sleep(0.05)
        time.sleep(0.2)
        table = supervisor.process_table()
        for pid in map(int, pids.read_text().split()):
            table_before[pid] = table[pid].started

    watcher = threading.Thread(target=remember, daemon=True)
    watcher.start()
    sup = fast(lambda standby: next(commands))
    assert sup.run() == 0
    watcher.join(5)
    assert sup.restarts == 1
    assert len(table_before) == 2
    for pid, started in table_before.items():
        assert not alive(pid, started), f"grandchild {pid} of the failed child is still running"


def test_the_process_tree_records_descendants_by_pid_and_start_time() -> None:
    import subprocess

    parent = subprocess.Popen(python("import subprocess, time; subprocess.Popen(['sleep', '30'], start_new_session=True); "
                                     "time.sleep(30)"), start_new_session=True)
    try:
        tree = ProcessTree(parent.pid)
        for _ in range(100):
            tree.scan()
            if len(tree.known) >= 2:
                break
            time.sleep(0.05)
        assert parent.pid in tree.known and len(tree.known) == 2
        stopped = tree.stop(grace_s=2.0)
        assert sorted(stopped) == sorted(tree.known)
        assert tree.alive() == ([], False)
    finally:
        parent.kill()
        parent.wait()


# -- wiring in pipeline.main -----------------------------------------------------------------------------------------------
def test_a_bare_standby_switch_gets_a_value_and_an_explicit_one_is_kept() -> None:
    assert with_switch_values(["--standby", "--x=1"]) == ["--standby=true", "--x=1"]
    assert with_switch_values(["--standby", "false"]) == ["--standby", "false"]
    assert with_switch_values(["--standby=false"]) == ["--standby=false"]


def test_the_child_runs_unsupervised_and_on_standby_when_asked() -> None:
    command = child_command(["--restart=on-failure", "--consumer_group=g"], standby=True)
    assert command[:3] == [sys.executable, "-m", "pipeline.main"]
    assert command[3:] == ["--restart=on-failure", "--consumer_group=g", "--restart=no", "--standby=true"]
    assert child_command([], standby=False)[3:] == ["--restart=no"]


def test_the_supervisor_port_must_lie_outside_the_workers_span() -> None:
    settings = PipelineSettings(
        kafka_bootstrap="127.0.0.1:9", kafka_io="python", database_url="postgresql://u:p@127.0.0.1:9/db", s3_bucket="b",
        avaya_url="http://127.0.0.1:9", avaya_user="u", avaya_password="p", scoring_url="http://127.0.0.1:9",
        pii_hmac_key="unit-pii-hmac-key-0123456789",
        scoring_token="unit-scoring-token-0123456789",
        pipeline_metrics_port=19080, supervisor_metrics_port=19085, pipeline_restart="on-failure")
    with pytest.raises(ConfigError, match="19080-19095"):
        supervise([], settings)


def test_only_a_job_running_inside_the_process_is_supervised() -> None:
    settings = PipelineSettings(
        kafka_bootstrap="127.0.0.1:9", kafka_io="python", database_url="postgresql://u:p@127.0.0.1:9/db", s3_bucket="b",
        avaya_url="http://127.0.0.1:9", avaya_user="u", avaya_password="p", scoring_url="http://127.0.0.1:9",
        pii_hmac_key="unit-pii-hmac-key-0123456789",
        scoring_token="unit-scoring-token-0123456789",
        pipeline_restart="on-failure")
    with pytest.raises(ConfigError, match="not --runner=portablerunner"):
        supervise(["--runner=PortableRunner"], settings)
