"""One pipeline per consumer group: a PostgreSQL advisory lock, held by the process that runs the job for the job's whole life.

Two jobs on one group would both read every partition (the readers assign partitions, no group rebalancing splits them) and
commit over each other's offsets. So before the job is submitted the process takes a session-level advisory lock keyed on the
group, on a connection of its own (autocommit, nothing else on it). The lock lives exactly as long as that PostgreSQL session:

- the process ends, however (even `kill -9`): the kernel closes the socket, the backend ends, the lock is free at once;
- the host dies or the network breaks: the backend ends when its TCP keepalives fail (asked for here, ~30 s), freeing the lock;
- PostgreSQL restarts: every session is gone, so the lock is lost while the job still runs. `LockWatch` checks the lock every
  `--fencing_check_interval_s` and, once PostgreSQL answers again, takes it back; if another pipeline took it first, the
  job is stopped (exit code 4) — two jobs must not run on one group.

Advisory locks belong to one database: pipelines that should fence each other must share CCAS_DATABASE_URL's database, as
every deployment of one system does.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import psycopg2.extensions

log = logging.getLogger("ccas.pipeline.fencing")

EXIT_GROUP_HELD = 3  # refused to start: another pipeline holds the consumer group
EXIT_GROUP_LOST = 4  # stopped: the lock was lost (PostgreSQL restarted) and another pipeline took the group meanwhile

KEY_NAMESPACE = "ccas.pipeline.consumer_group:"
PROGRESS_LOG_EVERY_S = 60.0
# Server side: the backend of a vanished holder ends after ~10 + 5 × 4 s of silence (PostgreSQL's default is the kernel's,
# often two hours, during which nobody could take over). Client side the same, plus a bound on unacknowledged sends.
_KEEPALIVE = {"keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5", "keepalives_count": "4"}
_SERVER_OPTIONS = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=4 -c statement_timeout=15000"
_CONNECT_TIMEOUT_S = 5


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL stayed unreachable for longer than the start-up budget; nothing was started."""


class GroupHeld(RuntimeError):
    """Another pipeline holds the consumer group (the message names the group and the holder)."""


def lock_key(consumer_group: str) -> int:
    """The advisory lock's 64-bit key: the first 8 bytes of SHA-256 over a namespaced group name, as a signed bigint."""
    digest = hashlib.sha256((KEY_NAMESPACE + consumer_group).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def pg_locks_ids(key: int) -> tuple[int, int]:
    """(classid, objid) under which pg_locks shows a bigint advisory lock: its high and low 32 bits, unsigned."""
    unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
    return unsigned >> 32, unsigned & 0xFFFF_FFFF


def application_name(pid: int | None = None, host: str | None = None) -> str:
    """How this process names its lock session in pg_stat_activity (PostgreSQL keeps 63 bytes: pid first, host may be cut)."""
    name = f"ccas-pipeline pid={pid or os.getpid()} host={host or socket.gethostname()}"
    return name.encode()[:63].decode(errors="ignore")


@dataclass(frozen=True)
class Holder:
    backend_pid: int
    application_name: str
    client: str
    since: str

    def __str__(self) -> str:
        who = self.application_name or "a session without application_name"
        return f"{who}; PostgreSQL backend {self.backend_pid}, client {self.client or 'local socket'}, since {self.since}"


def lock_dsn(database_url: str) -> str:
    """The database URL with keepalives, timeouts and our application_name added (the URL's own options kept)."""
    params = psycopg2.extensions.parse_dsn(database_url)
    extra: dict[str, str] = {"application_name": application_name(), "connect_timeout": str(_CONNECT_TIMEOUT_S),
                             **_KEEPALIVE, "options": f"{params.get('options', '')} {_SERVER_OPTIONS}".strip()}
    if psycopg2.extensions.libpq_version() >= 120000:
        extra["tcp_user_timeout"] = "30000"
    return psycopg2.extensions.make_dsn(database_url, **extra)


class GroupLock:
    """The advisory lock of one consumer group on a dedicated PostgreSQL session."""

    def __init__(self, database_url: str, consumer_group: str) -> None:
        self.consumer_group = consumer_group
        self.key = lock_key(consumer_group)
        self._dsn = lock_dsn(database_url)
        self._connection: psycopg2.extensions.connection | None = None
        self._held_by_backend: int | None = None  # our session's backend pid while we hold the lock

    # -- one step each -------------------------------------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the lock session if there is none; raises psycopg2.OperationalError when PostgreSQL cannot be reached."""
        if self._connection is not None and not self._connection.closed:
            return
        self._connection = psycopg2.connect(self._dsn)
        self._connection.autocommit = True

    def try_acquire(self) -> bool:
        """pg_try_advisory_lock on the open session; True when this session holds the lock now."""
        assert self._connection is not None, "connect() first"
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s), pg_backend_pid()", (self.key,))
            acquired, backend = cursor.fetchone()
        if acquired:
            self._held_by_backend = backend
        return bool(acquired)

    def still_held(self) -> bool:
        """Whether our session still holds the lock; raises psycopg2.Error when the session is gone."""
        assert self._connection is not None, "connect() first"
        classid, objid = pg_locks_ids(self.key)
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                           " AND classid = %s::oid AND objid = %s::oid AND objsubid = 1 AND granted)", (classid, objid))
            return bool(cursor.fetchone()[0])

    def holder(self) -> Holder | None:
        """The session holding the lock now, from pg_locks and pg_stat_activity (None when nobody does)."""
        assert self._connection is not None, "connect() first"
        classid, objid = pg_locks_ids(self.key)
        with self._connection.cursor() as cursor:
            cursor.execute(
                "SELECT l.pid, coalesce(a.application_name, ''), coalesce(host(a.client_addr), ''),"
                " coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '')"
                " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database"
                " WHERE datname = current_database()) AND l.classid = %s::oid AND l.objid = %s::oid AND l.objsubid = 1",
                (classid, objid))
            row = cursor.fetchone()
        return Holder(*row) if row else None

    def drop_own_stale_session(self, holder: Holder) -> bool:
        """Our previous session may outlive its connection on the server for a while; end it if it is the holder."""
        if holder.backend_pid != self._held_by_backend or holder.application_name != application_name():
            return False
        assert self._connection is not None
        with self._connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (holder.backend_pid,))
        log.info("fencing: ended this pipeline's previous PostgreSQL session %d, which still held the lock",
                 holder.backend_pid)
        return True

    def close(self) -> None:
        """Close the session: PostgreSQL releases the lock with it."""
        if self._connection is not None and not self._connection.closed:
            with contextlib.suppress(psycopg2.Error):
                self._connection.close()
        self._connection = None

    # -- start-up --------------------------------------------------------------------------------------------------------------
    def held_message(self, holder: Holder | None) -> str:
        return (f"consumer group {self.consumer_group!r} is held by another pipeline ({holder or 'holder not visible'}): "
                f"refusing to start (exit code {EXIT_GROUP_HELD}). Stop that pipeline first, or start this one with "
                "--standby to take over when it stops.")

    def acquire(self, *, standby: bool, connect_timeout_s: float, check_interval_s: float,
                stopping: threading.Event) -> bool:
        """Take the lock before the job starts. False when `stopping` was set meanwhile (a signal on standby).

        Raises GroupHeld when another pipeline holds it (unless standby: then wait for it) and DatabaseUnavailable when
        PostgreSQL stays unreachable for connect_timeout_s in a row.
        """
        unreachable_since: float | None = None
        last_progress = 0.0
        while not stopping.is_set():
            try:
                self.connect()
                if self.try_acquire():
                    log.info("fencing: this pipeline holds consumer group %r (advisory lock %d, session %s)",
                             self.consumer_group, self.key, application_name())
                    return True
                unreachable_since = None
                holder = self.holder()
                if not standby:
                    raise GroupHeld(self.held_message(holder))
                if time.monotonic() - last_progress >= PROGRESS_LOG_EVERY_S:
                    last_progress = time.monotonic()
                    log.info("standby: consumer group %r is held by another pipeline (%s); waiting for it to be released, "
                             "checking every %.0f s", self.consumer_group, holder or "holder not visible", check_interval_s)
            except psycopg2.OperationalError as error:
                self.close()
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                left = connect_timeout_s - (now - unreachable_since)
                if left <= 0:
                    raise DatabaseUnavailable(
                        f"PostgreSQL unreachable for {connect_timeout_s:.0f} s while taking the lock of consumer group "
                        f"{self.consumer_group!r} ({_one_line(error)}); nothing was started "
                        "(--fencing_connect_timeout_s / CCAS_FENCING_CONNECT_TIMEOUT_S)") from None
                log.warning("fencing: PostgreSQL not reachable yet (%s); retrying for up to %.0f s more", _one_line(error),
                            left)
            stopping.wait(check_interval_s)
        self.close()
        return False


class LockWatch(threading.Thread):
    """While the job runs: verify the lock every interval; take it back after PostgreSQL lost it; on_lost if another has it."""

    def __init__(self, lock: GroupLock, interval_s: float, on_lost: Callable[[str], None]) -> None:
        super().__init__(name="ccas-fencing-watch", daemon=True)
        self.lock, self.interval_s, self.on_lost = lock, interval_s, on_lost
        self.stopped = threading.Event()
        self.reacquired = 0  # times the lock was taken back after a loss (for logs and tests)

    def stop(self) -> None:
        self.stopped.set()

    def run(self) -> None:
        lost_since: float | None = None
        last_warning = 0.0
        while not self.stopped.wait(self.interval_s):
            try:
                if lost_since is None:
                    self.lock.connect()
                    if self.lock.still_held():
                        continue
                    lost_since = time.monotonic()
                    log.warning("fencing: the lock of consumer group %r is no longer held by this pipeline; taking it back",
                                self.lock.consumer_group)
                self.lock.connect()
                if self.lock.try_acquire():
                    log.info("fencing: consumer group %r is held by this pipeline again, after %.0f s without the lock",
                             self.lock.consumer_group, time.monotonic() - lost_since)
                    lost_since = None
                    self.reacquired += 1
                    continue
                holder = self.lock.holder()
                if holder is not None and self.lock.drop_own_stale_session(holder):
                    continue  # our old session is ending; the next check takes the lock
                who = holder or "holder not visible"
                message = (f"consumer group {self.lock.consumer_group!r} was taken by another pipeline ({who}) while this "
                           "pipeline's lock was lost (PostgreSQL restarted or dropped the session): stopping this job "
                           f"(exit code {EXIT_GROUP_LOST}) so that one pipeline runs the group")
                self.stopped.set()
                self.on_lost(message)
                return
            except psycopg2.Error as error:
                self.lock.close()
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                if now - last_warning >= PROGRESS_LOG_EVERY_S or last_warning == 0.0:
                    last_warning = now
                    log.warning("fencing: lost the PostgreSQL session holding consumer group %r (%s); the job keeps "
                                "running, taking the lock back every %.0f s", self.lock.consumer_group, _one_line(error),
                                self.interval_s)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
