"""The installed product, as an operator gets it: the wheel built from an sdist, installed into a fresh virtualenv outside the
clone, and its commands started with nothing but explicit `CCAS_*` settings in their environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from ccas import settings

REPO_ROOT = settings.REPO_ROOT
# Wheels of the pinned requirements, built once per machine: later venvs install them offline in about a minute.
WHEELHOUSE = settings.cache_dir() / "pip" / "wheelhouse"
# What a process needs from the machine itself; everything CCAS-related is passed explicitly on top.
MACHINE_VARIABLES = ("HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def run(argv: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout_s: float = 600) -> str:
    """Run to completion; a non-zero exit fails with the command's own output."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stdout[-4000:]}"
                             f"\n{result.stderr[-4000:]}")
    return result.stdout + result.stderr


def build_wheel(folder: Path) -> Path:
    """sdist from the clone (MANIFEST.in decides its content), then `pip wheel --no-deps` from that sdist, as a release does.

    The egg-info goes to `folder` too: nothing is written into the clone, and no stale SOURCES.txt can add files.
    """
    egg_base, sdist_dir, wheel_dir = folder / "egg-info", folder / "sdist", folder / "wheel"
    egg_base.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(egg_base), "sdist", "--dist-dir", str(sdist_dir)],
        cwd=REPO_ROOT, timeout_s=300)
    (sdist,) = sdist_dir.glob("ccas-*.tar.gz")
    # No build isolation: setuptools comes from the running venv instead of a download.
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(sdist)],
        cwd=folder, timeout_s=300)
    (wheel,) = wheel_dir.glob("ccas-*.whl")
    return wheel


def machine_env(**extra: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in MACHINE_VARIABLES if name in os.environ}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    env.update(extra)
    return env


def system_python() -> str:
    """The real python3.11 interpreter (PATH may hold a pyenv shim, which needs pyenv's own environment to run)."""
    shim = shutil.which("python3.11")
    assert shim, "python3.11 is required (the polyglot image ships it)"
    return run([shim, "-c", "import sys; print(sys.executable)"], cwd=Path.cwd()).strip()


def create_venv(folder: Path, wheel: Path) -> Path:
    """A fresh Python 3.11 virtualenv with the wheel and its real dependencies; returns its bin folder."""
    run([system_python(), "-m", "venv", str(folder)], cwd=folder.parent, env=machine_env(), timeout_s=120)
    pip = [str(folder / "bin" / "python"), "-m", "pip"]
    env = machine_env(PIP_CACHE_DIR=str(settings.cache_dir() / "pip"), PIP_DISABLE_PIP_VERSION_CHECK="1")
    offline = [*pip, "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), str(wheel)]
    try:
        run(offline, cwd=folder.parent, env=env, timeout_s=900)
    except AssertionError:
        # First run on this machine, or requirements.txt changed: fill the wheelhouse from the index, then install offline.
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        run([*pip, "wheel", "-q", "--find-links", str(WHEELHOUSE), "-w", str(WHEELHOUSE), "-r",
             str(REPO_ROOT / "requirements.txt")], cwd=folder.parent, env=env, timeout_s=1800)
        run(offline, cwd=folder.parent, env=env, timeout_s=900)
    return folder / "bin"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Process:
    """One command in a session of its own; stopped by its pid (SIGTERM, then SIGKILL of its process group)."""

    name: str
    argv: list[str]
    log_file: Path
    env: dict[str, str]
    cwd: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> Process:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        if not self.log_file.exists():
            return "(no log)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 30) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout_s)
        # Its children (SDK workers of the pool, Prism's own) share the group: none may outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(10)


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str, watched: list[Process] = (),
               interval_s: float = 1.0, details: Callable[[], str] = lambda: "") -> Any:
    """Poll until `condition` is truthy; fails at once, with its log, when a watched process exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        for process in watched:
            if not process.alive():
                raise AssertionError(f"{process.name} exited (code {process.popen.returncode}) while waiting for {what}:\n"
                                     f"{process.tail(60)}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}. {details()}")
        time.sleep(interval_s)


@contextmanager
def scratch_database(server_url: str, prefix: str = "ccas_deploy") -> Iterator[str]:
    """An empty database on the stack's PostgreSQL, dropped afterwards (whatever happened)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(server_url)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    finally:
        connection.close()
