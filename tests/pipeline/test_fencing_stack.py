"""Fencing on the stack's PostgreSQL: the lock itself (contention, standby, a lost session taken back or taken over), then
real `run_pipeline.py` processes: a second pipeline on the same group exits 3 naming the holder; one on --standby takes over
when the first stops, and runs the job."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest

from ccas.apps import App, ccas_command
from pipeline.fencing import EXIT_GROUP_HELD, EXIT_GROUP_LOST, GroupHeld, GroupLock, LockWatch, lock_key, pg_locks_ids
from tests.pipeline import e2e, supervision

pytestmark = pytest.mark.integration


@pytest.fixture
def database(stack_env: dict[str, str]) -> Iterator[str]:
    with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
        yield url


def _log(app: App) -> str:
    return app.log_file.read_text(errors="replace")


def _backend_of(database_url: str, group: str) -> int:
    classid, objid = pg_locks_ids(lock_key(group))
    return e2e.query(database_url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid"
                                   " AND objid = %s::oid AND objsubid = 1 AND granted", (classid, objid))[0][0]


def _terminate(database_url: str, backend: int) -> None:
    assert e2e.query(database_url, "SELECT pg_terminate_backend(%s)", (backend,)) == [(True,)]


def _rival_waiting(database_url: str, group: str) -> tuple[psycopg2.extensions.connection, threading.Event]:
    """Another session blocked in pg_advisory_lock on the group: it gets the lock the moment the holder's session ends."""
    rival = psycopg2.connect(database_url, application_name="fencing-test-rival")
    rival.autocommit = True
    got = threading.Event()

    def wait() -> None:
        with rival.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key(group),))
        got.set()

    threading.Thread(target=wait, daemon=True).start()
    waiting = ("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
               " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
    e2e.wait_until(lambda: e2e.query(database_url, waiting), 30, "the rival to queue for the lock", interval_s=0.1)
    return rival, got


def test_one_holder_per_group_and_a_standby_takes_over_when_it_is_released(database: str) -> None:
    group = f"ccas-pipeline-fence-{uuid.uuid4().hex[:8]}"
    first, second, other_group = GroupLock(database, group), GroupLock(database, group), GroupLock(database, group + "-b")
    never = threading.Event()
    try:
        assert first.acquire(standby=False, connect_timeout_s=10, check_interval_s=0.2, stopping=never)
        with pytest.raises(GroupHeld) as held:
            second.acquire(standby=False, connect_timeout_s=10, check_interval_s=0.2, stopping=never)
        message = str(held.value)
        assert f"consumer group {group!r}" in message and f"ccas-pipeline pid={os.getpid()} " in message
        assert "exit code 3" in message and "--standby" in message
        assert other_group.acquire(standby=False, connect_timeout_s=10, check_interval_s=0.2, stopping=never)

        taken = threading.Event()
        standby = threading.Thread(target=lambda: second.acquire(standby=True, connect_timeout_s=10, check_interval_s=0.2,
                                                                 stopping=never) and taken.set(), daemon=True)
        standby.start()
        assert not taken.wait(1.0), "the standby must wait while the first holds the group"
        first.close()
        assert taken.wait(60), "the standby takes the group once the holder's session ends"
        assert second.still_held()
    finally:
        for lock in (first, second, other_group):
            lock.close()


@contextmanager
def _watched_lock(database: str, group: str) -> Iterator[tuple[LockWatch, list[str]]]:
    """The group's lock, held and watched; yields the watch and the loss messages it reported."""
    lock = GroupLock(database, group)
    lost: list[str] = []
    assert lock.acquire(standby=False, connect_timeout_s=10, check_interval_s=0.2, stopping=threading.Event())
    watch = LockWatch(lock, 0.2, lost.append)
    watch.start()
    try:
        yield watch, lost
    finally:
        watch.stop()
        lock.close()


def test_a_lock_lost_with_its_session_is_taken_back(database: str) -> None:
    group = f"ccas-pipeline-fence-{uuid.uuid4().hex[:8]}"
    with _watched_lock(database, group) as (watch, lost):
        old = _backend_of(database, group)
        _terminate(database, old)  # what a PostgreSQL restart does to every session
        e2e.wait_until(lambda: watch.reacquired == 1, 60, "the watch to take the lock back")
        assert _backend_of(database, group) != old
        assert lost == [] and watch.is_alive()


def test_a_lock_taken_by_another_pipeline_meanwhile_stops_the_holder(database: str) -> None:
    group = f"ccas-pipeline-fence-{uuid.uuid4().hex[:8]}"
    with _watched_lock(database, group) as (watch, lost):
        rival, got = _rival_waiting(database, group)
        try:
            _terminate(database, _backend_of(database, group))
            assert got.wait(30), "the waiting rival gets the lock when the holder's session ends"
            e2e.wait_until(lambda: lost, 60, "the watch to report the group lost")
            assert f"consumer group {group!r} was taken by another pipeline (fencing-test-rival;" in lost[0]
            assert "exit code 4" in lost[0]
            watch.join(10)
            assert not watch.is_alive(), "the watch ends once it reported the loss"
        finally:
            rival.close()


def test_a_second_pipeline_on_the_group_exits_3_and_a_standby_takes_over(stack_env: dict[str, str], database: str) -> None:
    group = f"ccas-pipeline-fence-{uuid.uuid4().hex[:8]}"
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    e2e.commit_group(bootstrap, group, "calls.raw", e2e.end_offsets(bootstrap, "calls.raw"))
    services = e2e.Services(stack_env["CCAS_AVAYA_URL"], stack_env["CCAS_SCORING_URL"])
    started: list[App] = []

    def pipeline(name: str, *extra: str) -> App:
        app = e2e.start_pipeline(services, database, group, "python", f"fencing-{group}-{name}.log", extra=list(extra))
        started.append(app)
        return app

    try:
        first = pipeline("first")
        supervision.wait_for_holder(database, group, first.pid, [first])

        second = pipeline("second")
        code = second.popen.wait(240)
        output = _log(second)
        assert code == EXIT_GROUP_HELD, output
        assert f"consumer group {group!r} is held by another pipeline (ccas-pipeline pid={first.pid} " in output
        assert first.alive()

        standby = pipeline("standby", "--standby")
        e2e.wait_until(lambda: "standby: consumer group" in _log(standby), 240, "the standby to wait", [standby])
        assert first.stop() == 0
        supervision.wait_for_holder(database, group, standby.pid, [standby])
        position = supervision.publish_bad_message(bootstrap)
        supervision.wait_committed_past(bootstrap, group, position, [standby])
        assert standby.stop() == 0
    finally:
        for app in started:
            app.stop()


def test_a_running_pipeline_takes_its_lock_back_after_a_postgresql_restart_and_stops_once_another_took_it(
        stack_env: dict[str, str], database: str) -> None:
    group = f"ccas-pipeline-fence-{uuid.uuid4().hex[:8]}"
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    e2e.commit_group(bootstrap, group, "calls.raw", e2e.end_offsets(bootstrap, "calls.raw"))
    services = e2e.Services(stack_env["CCAS_AVAYA_URL"], stack_env["CCAS_SCORING_URL"])
    app = e2e.start_pipeline(services, database, group, "python", f"fencing-{group}-restart.log",
                             extra=["--fencing_check_interval_s=1"])
    rival = None
    try:
        supervision.wait_for_holder(database, group, app.pid, [app])
        try:
            supervision.restart_postgres()
        finally:
            subprocess.run(ccas_command("stack", "up", "postgres"), check=False, capture_output=True, timeout=180)
        e2e.wait_until(lambda: "is held by this pipeline again" in _log(app), 120, "the lock taken back", [app])
        supervision.wait_for_holder(database, group, app.pid, [app])
        assert "fencing: lost the PostgreSQL session holding consumer group" in _log(app)

        rival, got = _rival_waiting(database, group)
        _terminate(database, _backend_of(database, group))
        assert got.wait(30)
        assert app.popen.wait(120) == EXIT_GROUP_LOST
        output = _log(app)
        assert f"consumer group {group!r} was taken by another pipeline (fencing-test-rival;" in output
    finally:
        app.stop()
        if rival is not None:
            rival.close()
