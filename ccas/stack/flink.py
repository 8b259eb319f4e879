"""A Flink 1.20.3 session cluster (JobManager + one TaskManager) for `--runner=FlinkRunner`, assembled from PyPI.

Flink's jars and scripts ship on PyPI in two packages that cannot be pip-installed beside Beam (apache-flink pins
apache-beam<2.49), so they are downloaded without dependencies and unpacked once per machine into the cache
(`${CCAS_CACHE}/flink-1.20.3/home`; docs/flink.md). Configuration, logs, pids, checkpoints and
savepoints live in this clone's stack folder; the Flink home stays read-only and shared.

Started by `ccas flink up` (not by `ccas stack up`), stopped by `ccas flink down` or `ccas stack down`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from ccas import settings
from ccas.stack import process, tools
from ccas.stack.process import StackError
from ccas.stack.service import Service

FLINK_VERSION = "1.20.3"
TASK_SLOTS = 2
CHECKPOINT_INTERVAL = "30s"


def rest_port() -> int:
    """The REST/UI port: 8081 as users and Beam's `--flink_master=localhost:8081` expect, movable for a second cluster."""
    return int(os.environ.get("CCAS_FLINK_REST_PORT", "8081"))


def rpc_port() -> int:
    return int(os.environ.get("CCAS_FLINK_RPC_PORT", "6123"))


def flink_master() -> str:
    return f"localhost:{rest_port()}"


def flink_home() -> Path:
    return settings.cache_dir() / f"flink-{FLINK_VERSION}" / "home"


def ensure_flink_home() -> Path:
    """Download (pip, no deps) and unpack Flink once per machine; later calls only check that the home is complete."""
    home = flink_home()
    if (home / "lib").is_dir() and (home / "bin" / "bash-java-utils.jar").exists():
        return home
    base = home.parent
    downloads = base / "dl"
    downloads.mkdir(parents=True, exist_ok=True)
    sdist = downloads / f"apache-flink-libraries-{FLINK_VERSION}.tar.gz"
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads)]
    if not sdist.exists():
        _run([*pip, "--no-binary", ":all:", f"apache-flink-libraries=={FLINK_VERSION}"], "downloading Flink's jars")
    if not list(downloads.glob(f"apache_flink-{FLINK_VERSION}-*.whl")):
        _run([*pip, "--only-binary", ":all:", "--python-version", "3.11", f"apache-flink=={FLINK_VERSION}"],
             "downloading Flink's scripts")
    wheel = next(downloads.glob(f"apache_flink-{FLINK_VERSION}-*.whl"))
    # Unpack beside the final home and rename at the end: an interrupted unpack is never mistaken for a complete home.
    staging = base / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    top = f"apache-flink-libraries-{FLINK_VERSION}/deps"
    _run(["tar", "xzf", str(sdist), "-C", str(staging), f"{top}/lib", f"{top}/opt", f"{top}/plugins",
          f"{top}/bin/bash-java-utils.jar"], "unpacking Flink's jars")
    _run(["unzip", "-q", "-o", str(wheel), "pyflink/bin/*", "pyflink/conf/*", "-d", str(staging / "whl")],
         "unpacking Flink's scripts")
    new_home = staging / "home"
    new_home.mkdir()
    for part in ("lib", "opt", "plugins"):
        (staging / top / part).rename(new_home / part)
    for part in ("bin", "conf"):
        (staging / "whl" / "pyflink" / part).rename(new_home / part)
    (staging / top / "bin" / "bash-java-utils.jar").rename(new_home / "bin" / "bash-java-utils.jar")
    for script in (new_home / "bin").iterdir():
        script.chmod(0o755)
    shutil.rmtree(home, ignore_errors=True)
    new_home.rename(home)
    shutil.rmtree(staging, ignore_errors=True)
    return home


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{what} failed (exit {result.returncode}): {(result.stderr or result.stdout).strip()[-800:]}")


def rest_get(path: str, port: int | None = None, timeout_s: float = 3.0) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port or rest_port()}{path}", timeout=timeout_s) as response:
        return json.loads(response.read())


class Flink(Service):
    """JobManager and TaskManager as two JVMs run in the foreground by Flink's own scripts, each with a pid file of ours.

    `jobmanager.sh start-foreground` exec's the JVM, so the pid we spawn is the JVM's pid and its command line names the stack
    folder (config and log paths): stopping is by that pid, never by name.
    """

    name = "flink"
    start_timeout_s = 90.0

    def __init__(self) -> None:
        super().__init__()
        self.conf_dir = self.dir / "conf"
        self.flink_log_dir = self.dir / "log"
        self.flink_pid_dir = self.dir / "pids"
        self.pid_file = self.dir / "jobmanager.pid"
        self.tm_pid_file = self.dir / "taskmanager.pid"
        self.tm_log_file = self.dir / "taskmanager.out"
        self.log_file = self.dir / "jobmanager.out"

    def ports(self) -> dict[str, int]:
        return {"rest": rest_port(), "rpc": rpc_port()}

    def check_ports_free(self) -> None:
        # Fixed ports (8081 is what users and Beam's examples expect), so the hint is their variables, not CCAS_PORT_BASE.
        for label, port in self.ports().items():
            if not process.port_bindable(port):
                raise StackError(f"cannot start flink: port {port} ({label}) on 127.0.0.1 is already in use (another Flink?); "
                                 "stop it or set CCAS_FLINK_REST_PORT / CCAS_FLINK_RPC_PORT")

    def config(self) -> dict[str, Any]:
        """Flink's config.yaml (flat keys): everything bound to 127.0.0.1, state under the stack folder, modest memory."""
        return {
            "jobmanager.rpc.address": "127.0.0.1",
            "jobmanager.rpc.port": rpc_port(),
            "jobmanager.bind-host": "127.0.0.1",
            "taskmanager.bind-host": "127.0.0.1",
            "taskmanager.host": "127.0.0.1",
            "rest.address": "127.0.0.1",
            "rest.bind-address": "127.0.0.1",
            "rest.port": rest_port(),
            # 768m/1024m fit beside the rest of the stack on a shared 24 GB machine. Beam's portable runner keeps state on the
            # heap (hashmap backend), so managed memory (RocksDB's) is shrunk in favour of task heap.
            "jobmanager.memory.process.size": "768m",
            "taskmanager.memory.process.size": "1024m",
            "taskmanager.memory.managed.size": "64m",
            "taskmanager.numberOfTaskSlots": TASK_SLOTS,
            "parallelism.default": 1,
            "state.backend.type": "hashmap",
            "execution.checkpointing.interval": CHECKPOINT_INTERVAL,
            "execution.checkpointing.mode": "EXACTLY_ONCE",
            "execution.checkpointing.dir": (self.dir / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (self.dir / "savepoints").as_uri(),
            "execution.checkpointing.num-retained": 3,
            # A failing sink (DB, S3 down) should back off instead of restarting the job in a tight loop.
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": "1s",
            "restart-strategy.exponential-delay.max-backoff": "60s",
            "restart-strategy.exponential-delay.backoff-multiplier": 2.0,
            "restart-strategy.exponential-delay.reset-backoff-threshold": "10min",
            "restart-strategy.exponential-delay.jitter-factor": 0.1,
            "jobmanager.execution.failover-strategy": "region",
            "io.tmp.dirs": str(self.dir / "tmp"),
            "web.tmpdir": str(self.dir / "tmp" / "web"),
            "env.log.dir": str(self.flink_log_dir),
            "env.pid.dir": str(self.flink_pid_dir),
        }

    def prepare(self) -> None:
        self.home = ensure_flink_home()
        for path in (self.conf_dir, self.flink_log_dir, self.flink_pid_dir, self.dir / "tmp", self.dir / "checkpoints",
                     self.dir / "savepoints"):
            path.mkdir(parents=True, exist_ok=True)
        # JSON is valid YAML: Flink 1.20 reads config.yaml as standard YAML.
        (self.conf_dir / "config.yaml").write_text(json.dumps(self.config(), indent=1) + "\n")
        shipped = self.home / "conf"
        for name in ("log4j.properties", "logback.xml"):
            shutil.copy(shipped / name, self.conf_dir / name)
        # Foreground mode reads log4j-console.properties; the file-only variant keeps the log in one rolling file under log/.
        shutil.copy(shipped / "log4j.properties", self.conf_dir / "log4j-console.properties")
        (self.conf_dir / "masters").write_text(f"127.0.0.1:{rest_port()}\n")
        (self.conf_dir / "workers").write_text("127.0.0.1\n")

    def _env(self) -> dict[str, str]:
        java_home = str(Path(os.path.realpath(tools.java_binary())).parent.parent)
        return {"FLINK_CONF_DIR": str(self.conf_dir), "FLINK_LOG_DIR": str(self.flink_log_dir),
                "FLINK_PID_DIR": str(self.flink_pid_dir), "JAVA_HOME": java_home}

    def start(self) -> None:
        home = flink_home()
        process.spawn([str(home / "bin" / "jobmanager.sh"), "start-foreground"], self.log_file, self.pid_file, env=self._env())
        self.start_taskmanager()

    def start_taskmanager(self) -> int:
        """Also used after a TaskManager failure (kill -9) to bring the slots back, as a cluster manager would."""
        return process.spawn([str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground"], self.tm_log_file,
                             self.tm_pid_file, env=self._env())

    def taskmanager_pid(self) -> int | None:
        return process.owned_pid(self.tm_pid_file, self.marker)

    def probe(self) -> str:
        overview = rest_get("/overview")
        if overview.get("taskmanagers", 0) < 1:
            raise StackError("JobManager up, no TaskManager registered yet")
        return (f"{overview['taskmanagers']} TaskManager(s), slots {overview['slots-available']}/{overview['slots-total']} free, "
                f"{overview['jobs-running']} job(s) running, Flink {overview['flink-version']}")

    def down(self) -> str:
        stopped = []
        # TaskManager first: stopping the JobManager first would make it log the lost TaskManager as a failure.
        for label, pid, pid_file in (("taskmanager", self.taskmanager_pid(), self.tm_pid_file),
                                     ("jobmanager", self.pid(), self.pid_file)):
            if pid is not None:
                process.terminate(pid)
                if process.pid_alive(pid):
                    raise StackError(f"flink {label} (pid {pid}) is still running after SIGKILL")
                stopped.append(f"{label} pid {pid}")
            pid_file.unlink(missing_ok=True)
        for leftover in self.flink_pid_dir.glob("*.pid"):  # written by Flink's scripts; the JVMs they name are gone
            leftover.unlink()
        return f"stopped ({', '.join(stopped)})" if stopped else "not running"


def _print_status(service: Flink) -> int:
    if service.pid() is None:
        print("flink: stopped")
        return 3
    try:
        overview = rest_get("/overview")
        managers = rest_get("/taskmanagers")["taskmanagers"]
        jobs = rest_get("/jobs/overview")["jobs"]
    except OSError as error:
        print(f"flink: JobManager pid {service.pid()} runs but its REST API does not answer: {error}")
        return 1
    print(f"flink {overview['flink-version']}: JobManager pid {service.pid()}, UI http://127.0.0.1:{rest_port()}")
    print(f"taskmanagers: {overview['taskmanagers']}   slots: {overview['slots-total']} total, "
          f"{overview['slots-available']} available   running jobs: {overview['jobs-running']}")
    for manager in managers:
        print(f"  taskmanager {manager['id']}: {manager['slotsNumber']} slots, {manager['freeSlots']} free")
    for job in jobs:
        print(f"  job {job['jid']} {job['state']:<10} {job['name']}")
    for label, pid in (("jobmanager", service.pid()), ("taskmanager", service.taskmanager_pid())):
        rss = process.rss_mb(pid) if pid else None
        print(f"  {label} rss: {f'{rss:.0f} MB' if rss else '-'}")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ccas flink", description="local Flink 1.20 session cluster for --runner=FlinkRunner")
    parser.add_argument("command", choices=("up", "down", "status"))
    args = parser.parse_args(argv)
    service = Flink()
    try:
        if args.command == "up":
            started = time.monotonic()
            print(f"flink: {service.up()} (total {time.monotonic() - started:.1f} s)", flush=True)
            return _print_status(service)
        if args.command == "down":
            print(f"flink: {service.down()}")
            return 0
        return _print_status(service)
    except StackError as error:
        print(f"ccas flink {args.command}: {error}", file=sys.stderr)
        return 1
