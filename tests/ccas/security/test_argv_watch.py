"""The argv watcher sees a secret in a process's arguments, even in a process that lives a few milliseconds."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from ccas.security import argv_watch


def test_exec_pid_reads_exec_events_only() -> None:
    header = b"\0" * argv_watch._EVENT_OFFSET
    exec_event = header + struct.pack("IIQII", 2, 0, 0, 4242, 4242)
    fork_event = header + struct.pack("IIQII", 1, 0, 0, 4242, 4242)
    assert argv_watch.exec_pid(exec_event) == 4242
    assert argv_watch.exec_pid(fork_event) is None
    assert argv_watch.exec_pid(b"short") is None


def test_short_lived_process_with_a_secret_in_argv_is_reported_by_name(tmp_path: Path) -> None:
    secret = "s3cr3t-" + os.urandom(8).hex()
    (tmp_path / "secrets.env").write_text(f"# test\nCCAS_DB_PASSWORD={secret}\nCCAS_USER=ccas\n")
    folder = tmp_path / "argv-watch"
    folder.mkdir()
    watcher = subprocess.Popen([sys.executable, "-m", "ccas.security.argv_watch", "run", "--folder", str(folder)],
                               env={**os.environ, "CCAS_STACK_DIR": str(tmp_path)}, stdout=subprocess.PIPE, text=True)
    try:
        assert "watching" in watcher.stdout.readline()
        # 150 ms: shorter than the 1 s /proc scan, so only an exec event sees it (the secrets are loaded before "watching").
        subprocess.run(["/bin/sh", "-c", "sleep 0.15", "ccas-test", f"--password={secret}"], check=True)
        subprocess.run(["/bin/sh", "-c", "sleep 0.15", "ccas-test", "ccas", "harmless"], check=True)
        findings = folder / "findings.txt"
        deadline = time.monotonic() + 10
        while not (findings.exists() and findings.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=10)
    text = findings.read_text()
    assert "CCAS_DB_PASSWORD in argv" in text and "ccas-test --password=<CCAS_DB_PASSWORD>" in text, text
    assert secret not in text
    assert "harmless" not in text  # short values (the user name) are not treated as secrets
