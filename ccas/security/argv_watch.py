"""`ccas argv-watch start | stop | check`: watch every process's command line for the stack's secrets.

A secret in argv is readable by every local user through `ps` and /proc. While the stack starts, the demo runs or the
tests run, the watcher reads the command line of every process as it is exec'd (the kernel's process-events connector, so a
`psql` that lives 20 ms is seen too; a full /proc scan every second catches what was already running, and is all it does
where the connector is not permitted), and records each process whose arguments contain a value of the secrets file (read
again whenever it changes, so secrets created by `stack up` are watched from then on). `stop` ends the watcher and exits 1
if anything was found, naming the process and the secret's variable — never the value.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from ccas import settings
from ccas.stack import process

MIN_SECRET_LENGTH = 8  # shorter values (a user name, a port) would match harmless text


def _watch_dir() -> Path:
    return settings.stack_dir() / "argv-watch"


def _secret_values(path: Path) -> dict[str, str]:
    try:
        return {key: value for key, value in settings.read_secrets_file(path).items() if len(value) >= MIN_SECRET_LENGTH}
    except OSError:
        return {}


def _exposed(pid: int, secrets: dict[str, str]) -> list[tuple[int, str, str]]:
    try:
        text = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return []
    return [(pid, key, text.replace(value, f"<{key}>").replace("\0", " ")[:160])
            for key, value in secrets.items() if value in text]


def scan(secrets: dict[str, str], own_pid: int) -> list[tuple[int, str, str]]:
    """(pid, variable, the command line with the value hidden) for each secret in a running process's arguments."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != own_pid:
            found += _exposed(int(entry.name), secrets)
    return found


_NETLINK_CONNECTOR, _CN_IDX_PROC, _CN_VAL_PROC, _PROC_CN_MCAST_LISTEN, _PROC_EVENT_EXEC = 11, 1, 1, 1, 2
_EVENT_OFFSET = 16 + 20  # nlmsghdr, cn_msg header


def exec_events() -> socket.socket | None:
    """A netlink socket that receives a message at every exec on the machine; None where the kernel refuses it."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_CONNECTOR)
        sock.bind((os.getpid(), _CN_IDX_PROC))
        listen = struct.pack("I", _PROC_CN_MCAST_LISTEN)
        message = struct.pack("IIIIHH", _CN_IDX_PROC, _CN_VAL_PROC, 0, 0, len(listen), 0) + listen
        sock.send(struct.pack("IHHII", 16 + len(message), 3, 0, 0, os.getpid()) + message)  # NLMSG_DONE
        return sock
    except OSError:
        return None


def exec_pid(message: bytes) -> int | None:
    """The pid of an exec event (proc_event: what, cpu, timestamp, then the exec's pid), None for other events."""
    if len(message) < _EVENT_OFFSET + 20:
        return None
    what, = struct.unpack_from("I", message, _EVENT_OFFSET)
    return struct.unpack_from("I", message, _EVENT_OFFSET + 16)[0] if what == _PROC_EVENT_EXEC else None


def run(secrets_file: Path, findings: Path, scan_every_s: float = 1.0) -> None:
    stamp: float | None = None
    secrets: dict[str, str] = {}
    seen: set[tuple[int, str]] = set()
    stop = False

    def request_stop(*_: object) -> None:
        nonlocal stop
        stop = True

    def record(found: list[tuple[int, str, str]]) -> None:
        for pid, key, shown in found:
            if (pid, key) not in seen:
                seen.add((pid, key))
                with findings.open("a") as handle:
                    handle.write(f"pid {pid}: {key} in argv: {shown}\n")

    def reload_secrets() -> None:
        nonlocal stamp, secrets
        with contextlib.suppress(OSError):
            mtime = secrets_file.stat().st_mtime
            if mtime != stamp:
                stamp, secrets = mtime, _secret_values(secrets_file)

    def drain_exec_events(wait_s: float) -> None:
        # A process's command line is readable only while it lives: events are handled before anything slower.
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([events], [], [], wait_s)
            while ready:
                pid = exec_pid(events.recv(4096))
                if pid is not None and secrets:
                    record(_exposed(pid, secrets))
                ready, _, _ = select.select([events], [], [], 0)

    signal.signal(signal.SIGTERM, request_stop)
    events = exec_events()
    reload_secrets()
    print(f"watching {'exec events and ' if events else ''}a /proc scan every {scan_every_s} s", flush=True)
    next_scan = 0.0
    while not stop:
        reload_secrets()
        if events is not None:
            drain_exec_events(0)
        if time.monotonic() >= next_scan:
            record(scan(secrets, os.getpid()))
            next_scan = time.monotonic() + scan_every_s
        if events is None:
            time.sleep(scan_every_s)
        else:
            drain_exec_events(min(scan_every_s, 0.2))  # wakes often enough to see the secrets file change


def start() -> int:
    folder = _watch_dir()
    folder.mkdir(parents=True, exist_ok=True)
    pid_file, findings = folder / "pid", folder / "findings.txt"
    pid = process.owned_pid(pid_file, str(folder))
    if pid is not None:
        print(f"argv-watch: already running (pid {pid})")
        return 0
    findings.write_text("")
    argv = [sys.executable, "-m", "ccas.security.argv_watch", "run", "--folder", str(folder)]
    pid = process.spawn(argv, folder / "argv-watch.log", pid_file, cwd=settings.REPO_ROOT)
    print(f"argv-watch: watching every process's arguments for the secrets of {settings.secrets_file()} (pid {pid}; "
          f"{folder / 'argv-watch.log'})")
    return 0


def report() -> int:
    findings = _watch_dir() / "findings.txt"
    text = findings.read_text().strip() if findings.exists() else ""
    if text:
        print(f"argv-watch: SECRETS IN PROCESS ARGUMENTS:\n{text}", file=sys.stderr)
        return 1
    print("argv-watch: no secret seen in any process's arguments")
    return 0


def stop() -> int:
    pid_file = _watch_dir() / "pid"
    pid = process.owned_pid(pid_file, str(_watch_dir()))
    if pid is not None:
        process.terminate(pid, timeout_s=10)
    pid_file.unlink(missing_ok=True)
    return report()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas argv-watch", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop", "check", "run"])
    parser.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.command == "run":
        folder = Path(args.folder)
        run(settings.secrets_file(), folder / "findings.txt")
        return 0
    return {"start": start, "stop": stop, "check": report}[args.command]()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
