"""Beam's Java expansion service (KafkaIO) whose transforms run on Prism as a PROCESS environment (java_worker.sh)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

from ccas.stack import process, tools
from ccas.stack.process import StackError
from ccas.stack.service import Service

log = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).resolve().parent / "java_worker.sh"
LAUNCHER_SOURCE = Path(__file__).resolve().parent / "java" / "LoopbackExpansionService.java"
_MAIN_CLASS = "ccas.stack.LoopbackExpansionService"


class Expansion(Service):
    """Beam's expansion service on 127.0.0.1; each expanded Java transform runs through java_worker.sh.

    Beam's own ExpansionService.main listens on every interface (`ServerBuilder.forPort`, no bind-address option) and expands
    whatever Java transform a client names, i.e. runs code for anyone who reaches the port. The stack starts it through
    java/LoopbackExpansionService.java instead: the same services and arguments, bound to the loopback address only.
    """

    name = "expansion"
    start_timeout_s = 90.0

    def __init__(self) -> None:
        super().__init__()
        self.workers_dir = self.dir / "workers"

    def ports(self) -> dict[str, int]:
        return {"grpc": self.ports_all.expansion_service}

    def prepare(self) -> None:
        self.libs = tools.maven_classpath("expansion-pom.xml")
        self.launcher = tools.compiled_java(LAUNCHER_SOURCE, self.libs)
        self.boot = tools.go_binary("java_boot")
        self.workers_dir.mkdir(parents=True, exist_ok=True)
        sweep_workers(self.workers_dir)

    def environment_config(self) -> str:
        """The PROCESS environment every expanded transform gets: our wrapper, told where the boot program and folders are."""
        return json.dumps({
            "command": str(WORKER_SCRIPT),
            "env": {"CCAS_JAVA_BOOT": str(self.boot), "CCAS_JAVA_WORKER_DIR": str(self.workers_dir)},
        })

    def start(self) -> None:
        argv = [
            tools.java_binary(), "-Xms128m", "-Xmx768m", "-XX:+UseSerialGC",
            # Names the stack folder in the command line: owned_pid() recognises the process by it.
            f"-Dccas.stack.service={self.dir}",
            "-cp", f"{self.launcher}{os.pathsep}{self.libs}/*", _MAIN_CLASS, str(self.ports_all.expansion_service),
            "--javaClassLookupAllowlistFile=*",
            "--defaultEnvironmentType=PROCESS",
            f"--defaultEnvironmentConfig={self.environment_config()}",
        ]
        process.spawn(argv, self.log_file, self.pid_file, cwd=self.dir)

    def probe(self) -> str:
        """A real ExpansionService call: DiscoverSchemaTransform lists the Java SchemaTransforms it can expand."""
        import grpc
        from apache_beam.portability.api import beam_expansion_api_pb2, beam_expansion_api_pb2_grpc

        port = self.ports_all.expansion_service
        if not process.port_in_use(port):
            raise StackError(f"port {port} is not accepting connections")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = beam_expansion_api_pb2_grpc.ExpansionServiceStub(channel)
            response = stub.DiscoverSchemaTransform(beam_expansion_api_pb2.DiscoverSchemaTransformRequest(), timeout=5)
        if response.error:
            raise StackError(f"expansion service answered with an error: {response.error[:200]}")
        kafka = [urn for urn in response.schema_transform_configs if "kafka" in urn]
        return (f"gRPC answers, {len(response.schema_transform_configs)} schema transforms ({len(kafka)} Kafka), "
                f"{len(worker_pids(self.workers_dir))} Java worker(s)")

    def down(self) -> str:
        result = super().down()
        # Prism stops its workers when it stops or cancels a job; this catches any left by a Prism that was killed outright.
        swept = sweep_workers(self.workers_dir)
        return result + (f"; removed {swept} stale Java worker folder(s)" if swept else "")


def worker_pids(workers_dir: Path) -> dict[str, tuple[int, int]]:
    """Worker folder -> (wrapper pid, boot program pid = process group id), as each java_worker.sh recorded them."""
    found: dict[str, tuple[int, int]] = {}
    for pid_file in sorted(workers_dir.glob("*/pids")):
        with contextlib.suppress(OSError, ValueError):
            wrapper, boot = (int(value) for value in pid_file.read_text().split()[:2])
            found[pid_file.parent.name] = (wrapper, boot)
    return found


def worker_processes(workers_dir: Path) -> list[int]:
    """Live processes of the Java workers of this stack: java_worker.sh, its watcher, the boot program and java all inherit
    CCAS_JAVA_WORKER_DIR from the PROCESS environment (the expansion service only names it in its arguments)."""
    return process.pids_with_env("CCAS_JAVA_WORKER_DIR", str(workers_dir))


def sweep_workers(workers_dir: Path) -> int:
    """Remove worker folders whose wrapper is gone (stopping what is left of their process group); returns how many."""
    if not workers_dir.is_dir():
        return 0
    live = worker_pids(workers_dir)
    swept = 0
    for folder in workers_dir.iterdir():
        if not folder.is_dir():
            continue
        wrapper, boot = live.get(folder.name, (0, 0))
        if not wrapper and time.time() - folder.stat().st_mtime < 30:
            continue  # a worker starting right now: its wrapper has not written its pids yet
        if wrapper and process.pid_alive(wrapper) and str(WORKER_SCRIPT) in process.cmdline(wrapper):
            continue
        if boot and process.pid_alive(boot) and str(workers_dir) in process.cmdline(boot):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(boot, signal.SIGKILL)
        log.info("removing stale Java worker folder %s", folder)
        shutil.rmtree(folder, ignore_errors=True)
        swept += 1
    return swept
