"""The consumer-group lock: its key, how it shows in pg_locks, the session's name, and a database that cannot be reached."""

from __future__ import annotations

import logging
import os
import socket
import threading

import psycopg2.extensions
import pytest

from pipeline import fencing
from pipeline.fencing import DatabaseUnavailable, GroupLock, application_name, lock_dsn, lock_key, pg_locks_ids


def test_the_key_is_a_stable_signed_64_bit_hash_of_the_group() -> None:
    key = lock_key("ccas-pipeline")
    assert key == lock_key("ccas-pipeline")
    assert -(2 ** 63) <= key < 2 ** 63
    # Pinned: every pipeline version must compute the same key, or an old and a new one would not fence each other.
    assert key == 5501110455228482881
    assert lock_key("ccas-pipeline-2") != key
    assert lock_key("") != key


def test_pg_locks_shows_a_bigint_key_as_its_two_unsigned_halves() -> None:
    assert pg_locks_ids(1) == (0, 1)
    assert pg_locks_ids(-1) == (0xFFFF_FFFF, 0xFFFF_FFFF)
    assert pg_locks_ids(-(2 ** 63)) == (0x8000_0000, 0)
    key = lock_key("ccas-pipeline")
    high, low = pg_locks_ids(key)
    assert ((high << 32) | low) == key & 0xFFFF_FFFF_FFFF_FFFF


def test_the_session_name_says_pid_and_host_within_postgresqls_63_bytes() -> None:
    assert application_name(1234, "worker-7") == "ccas-pipeline pid=1234 host=worker-7"
    long = application_name(4_194_304, "h" * 100)
    assert len(long.encode()) == 63 and long.startswith("ccas-pipeline pid=4194304 host=hhh")
    assert application_name() == f"ccas-pipeline pid={os.getpid()} host={socket.gethostname()}"[:63]


def test_the_lock_session_keeps_the_urls_options_and_adds_keepalives() -> None:
    dsn = psycopg2.extensions.parse_dsn(lock_dsn("postgresql://u:secret@db:5432/ccas?options=-c%20search_path%3Dccas"))
    assert dsn["host"] == "db" and dsn["dbname"] == "ccas" and dsn["password"] == "secret"
    assert dsn["options"].startswith("-c search_path=ccas ") and "tcp_keepalives_idle=10" in dsn["options"]
    assert dsn["keepalives"] == "1" and dsn["application_name"] == application_name()


def test_an_unreachable_database_is_retried_for_a_bounded_time_with_a_progress_line(
        caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lock = GroupLock(f"postgresql://u:p@127.0.0.1:{port}/ccas", "group-x")
    caplog.set_level(logging.INFO, logger=fencing.log.name)
    with pytest.raises(DatabaseUnavailable, match="consumer group 'group-x'.*nothing was started"):
        lock.acquire(standby=False, connect_timeout_s=0.3, check_interval_s=0.05, stopping=threading.Event())
    progress = [r.getMessage() for r in caplog.records if "not reachable yet" in r.getMessage()]
    assert progress and "retrying for up to" in progress[0]


def test_a_signal_during_the_wait_stops_acquiring_without_an_error() -> None:
    stopping = threading.Event()
    stopping.set()
    lock = GroupLock("postgresql://u:p@127.0.0.1:9/ccas", "group-x")
    assert lock.acquire(standby=True, connect_timeout_s=60, check_interval_s=0.05, stopping=stopping) is False
