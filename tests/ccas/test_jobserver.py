"""`ccas jobserver up | status | down`: Prism and the SDK worker pool, a job via the Job API, nothing left after."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from ccas import settings
from ccas.stack import process
from ccas.stack.jobserver import JobServer, WorkerPool, job_endpoint, worker_pool_endpoint

pytestmark = pytest.mark.integration


def _ccas(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ccas.cli", *args], capture_output=True, text=True, timeout=180,
                          cwd=settings.REPO_ROOT)


def _processes_naming(folders: list[Path]) -> list[tuple[int, str]]:
    """Live processes whose command line or environment names one of the folders (the services and the pool's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or not process.pid_alive(int(entry.name)):
            continue
        try:
            text = (entry / "cmdline").read_bytes() + b"\0" + (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(str(folder).encode() in text for folder in folders):
            found.append((int(entry.name), process.cmdline(int(entry.name))[:120]))
    return found


@pytest.fixture
def restore_state(stack_env: dict[str, str]) -> Iterator[bool]:
    """The test stops the services; if a developer had them running, they are started again afterwards."""
    was_running = JobServer().pid() is not None or WorkerPool().pid() is not None
    yield was_running
    if was_running:
        _ccas("jobserver", "up")


def test_up_status_job_down_leaves_nothing(restore_state: bool) -> None:
    server, pool = JobServer(), WorkerPool()
    up = _ccas("jobserver", "up")
    assert up.returncode == 0, up.stdout + up.stderr
    status = _ccas("jobserver", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    for name in ("jobserver", "workerpool"):
        line = next(line for line in status.stdout.splitlines() if line.startswith(name))
        assert " running " in line and "ok:" in line, line
    pids = {server.pid(), pool.pid()}
    assert None not in pids

    # A job that holds an SDK worker of the pool until it is cancelled: `down` must cancel it through the Job API.
    options = PipelineOptions(["--runner=PortableRunner", f"--job_endpoint={job_endpoint()}", "--environment_type=EXTERNAL",
                               f"--environment_config={worker_pool_endpoint()}"])
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | beam.Create([3600]) | beam.Map(lambda seconds: time.sleep(seconds))
    pipeline.run()  # returns once submitted; the job keeps running on Prism
    deadline = time.monotonic() + 120
    while not server.active_jobs() or len(pool.worker_processes()) < 2:
        assert time.monotonic() < deadline, f"no running job with a pool worker: jobs {server.jobs()}"
        time.sleep(1)
    listed = _ccas("jobserver", "status").stdout
    job_id = server.active_jobs()[0][0]
    assert "running jobs: 1" in listed and job_id in listed, listed
    workers = [pid for pid in pool.worker_processes() if pid != pool.pid()]
    assert workers, "the pool started a worker process for the job"

    down = _ccas("jobserver", "down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "cancelled 1 job(s) first" in down.stdout, down.stdout
    for pid in [*pids, *workers]:
        assert not process.pid_alive(pid), f"pid {pid} survived `ccas jobserver down`: {process.cmdline(pid)}"
    assert _processes_naming([server.dir, pool.dir]) == []
    assert not process.port_in_use(settings.ports().job_server)
    assert "stopped" in _ccas("jobserver", "status").stdout


def test_nothing_listens_beyond_loopback(restore_state: bool) -> None:
    """After `stack up` and `jobserver up`, with a job holding an SDK worker: every listener of every stack process is on a
    loopback address (Beam's expansion service, Prism and the worker pool are started through the stack's own launchers)."""
    server, pool = JobServer(), WorkerPool()
    assert _ccas("jobserver", "up").returncode == 0
    options = PipelineOptions(["--runner=PortableRunner", f"--job_endpoint={job_endpoint()}", "--environment_type=EXTERNAL",
                               f"--environment_config={worker_pool_endpoint()}"])
    pipeline = beam.Pipeline(options=options)
    _ = pipeline | beam.Create([3600]) | beam.Map(lambda seconds: time.sleep(seconds))
    pipeline.run()
    deadline = time.monotonic() + 120
    while not server.active_jobs() or len(pool.worker_processes()) < 2:
        assert time.monotonic() < deadline, f"no running job with a pool worker: jobs {server.jobs()}"
        time.sleep(1)

    stack_pids = {pid for pid, _ in _processes_naming([settings.stack_dir()])}
    listeners = process.listening_sockets(stack_pids)
    ports = {port for _, _, port in listeners}
    p = settings.ports()
    expected = {p.kafka, p.postgres, p.s3, p.expansion_service, p.job_server, p.job_server_ui, p.worker_pool, p.prometheus,
                p.lag_exporter}
    assert expected <= ports, f"the scan missed stack listeners {sorted(expected - ports)}: {listeners}"
    exposed = [(pid, address, port, process.cmdline(pid)[:100]) for pid, address, port in listeners
               if not process.is_loopback(address)]
    assert exposed == [], f"listeners beyond loopback: {exposed}"
    assert _ccas("jobserver", "down").returncode == 0
