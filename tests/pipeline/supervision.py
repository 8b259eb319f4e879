"""Helpers for the supervisor and fencing tests on the stack: who holds a group's lock, a message the job must get past,
the child pids a supervisor logs, and processes compared by pid and start time."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

from ccas.apps import App, ccas_command
from core.kafka import producer
from pipeline.fencing import lock_key, pg_locks_ids
from pipeline.supervisor import process_table
from tests.pipeline import e2e


def lock_holder(database_url: str, group: str) -> str | None:
    """application_name of the session holding the group's advisory lock in that database, None when nobody does."""
    classid, objid = pg_locks_ids(lock_key(group))
    rows = e2e.query(database_url,
                     "SELECT coalesce(a.application_name, '') FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                     " WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database"
                     " WHERE datname = current_database()) AND l.classid = %s::oid AND l.objid = %s::oid"
                     " AND l.objsubid = 1", (classid, objid))
    return rows[0][0] if rows else None


def wait_for_holder(database_url: str, group: str, pid: int, apps: list[App], timeout_s: float = 240) -> None:
    e2e.wait_until(lambda: f"pid={pid} " in f"{lock_holder(database_url, group)} ", timeout_s,
                   f"process {pid} to hold the lock of consumer group {group}", apps)


def publish_bad_message(bootstrap: str) -> tuple[int, int]:
    """A schema-invalid calls.raw message (the job dead-letters it and commits past it); its (partition, offset)."""
    call_id = "fence-" + uuid.uuid4().hex[:8]
    send = producer(bootstrap)
    try:
        metadata = send.send("calls.raw", key=call_id.encode(),
                             value=json.dumps({"call_id": call_id, "ingest_uuid": str(uuid.uuid4())}).encode()).get(30)
    finally:
        send.close()
    return metadata.partition, metadata.offset


def wait_committed_past(bootstrap: str, group: str, position: tuple[int, int], apps: list[App],
                        timeout_s: float = 300) -> None:
    partition, offset = position
    e2e.wait_until(lambda: (e2e.committed(bootstrap, group, "calls.raw", [partition])[partition] or 0) > offset, timeout_s,
                   f"group {group} to commit past calls.raw[{partition}]@{offset}", apps, interval_s=2.0)


def child_pids(log_file: Path) -> list[int]:
    """Pids of the children a supervisor started, in order, from its log."""
    return [int(pid) for pid in re.findall(r"started the pipeline child pid (\d+)", log_file.read_text(errors="replace"))]


def snapshot(pids: list[int]) -> dict[int, int]:
    """pid -> start time of the given processes that are alive now."""
    table = process_table()
    return {pid: table[pid].started for pid in pids if pid in table and table[pid].state != "Z"}


def still_alive(recorded: dict[int, int]) -> list[int]:
    """The recorded processes still running (same pid and start time, not a zombie)."""
    table = process_table()
    return [pid for pid, started in recorded.items()
            if pid in table and table[pid].started == started and table[pid].state != "Z"]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def restart_postgres() -> None:
    """`ccas stack down postgres` (a fast shutdown: every session ends) and `up` again, on this test run's stack."""
    for command in ("down", "up"):
        subprocess.run(ccas_command("stack", command, "postgres"), check=True, capture_output=True, timeout=180)
