"""A standalone Prism job service and a Python SDK worker pool: the targets of `--runner=PortableRunner` on this machine.

Started by `ccas jobserver up` (not by `ccas stack up`), stopped by `ccas jobserver down` or `ccas stack down`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from ccas import settings
from ccas.stack import process, tools
from ccas.stack.process import StackError
from ccas.stack.service import Service

# Job states in which a job still holds workers; anything else is finished (DONE, FAILED, CANCELLED, DRAINED, ...).
ACTIVE_STATES = ("STOPPED", "STARTING", "RUNNING", "DRAINING", "CANCELLING", "UPDATED", "RESUMING")


def job_endpoint() -> str:
    """host:port for `--job_endpoint` of the local standalone Prism."""
    return f"localhost:{settings.ports().job_server}"


def worker_pool_endpoint() -> str:
    """host:port for `--environment_config` with `--environment_type=EXTERNAL`."""
    return f"localhost:{settings.ports().worker_pool}"


class JobServer(Service):
    """`prism --job_port <job_server> --serve_http --web_port <job_server_ui>`: Beam's Job API plus Prism's web UI.

    Prism has no bind-address option and its Job API listens on every interface; anyone who reaches it can submit a job, i.e.
    run code here. The stack's Prism is built with that listener bound to 127.0.0.1 (scripts/build_tools.sh); its web UI and
    the per-job worker endpoints already listen on localhost. Jobs submitted to it keep running after their client exits;
    `down` cancels every active job through the Job API before stopping Prism, so no job (nor its Java workers) outlives
    the service.
    """

    name = "jobserver"
    start_timeout_s = 30.0

    def ports(self) -> dict[str, int]:
        return {"job-api": self.ports_all.job_server, "web-ui": self.ports_all.job_server_ui}

    def prepare(self) -> None:
        self.binary = tools.go_binary("prism")

    def start(self) -> None:
        argv = [
            str(self.binary), f"--job_port={self.ports_all.job_server}", "--serve_http=true",
            f"--web_port={self.ports_all.job_server_ui}", "--log_level=warn",
            # Only read in Prism's worker mode; here it puts the stack folder in the command line, which owned_pid() checks.
            f"--semi_persist_dir={self.dir}",
        ]
        process.spawn(argv, self.log_file, self.pid_file, cwd=self.dir)

    def _stub(self, channel: object) -> object:
        from apache_beam.portability.api import beam_job_api_pb2_grpc

        return beam_job_api_pb2_grpc.JobServiceStub(channel)

    def jobs(self) -> list[tuple[str, str, str]]:
        """Every job Prism knows: (job id, job name, state name), via the Job API's GetJobs."""
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2

        with grpc.insecure_channel(f"127.0.0.1:{self.ports_all.job_server}") as channel:
            response = self._stub(channel).GetJobs(beam_job_api_pb2.GetJobsRequest(), timeout=5)
        return [(job.job_id, job.job_name, beam_job_api_pb2.JobState.Enum.Name(job.state))
                for job in response.job_info]

    def active_jobs(self) -> list[tuple[str, str, str]]:
        return [job for job in self.jobs() if job[2] in ACTIVE_STATES]

    def cancel_all(self, timeout_s: float = 20.0) -> list[str]:
        """Cancel every active job (Job API Cancel) and wait until none is active; returns the ids cancelled."""
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2

        cancelled = []
        with grpc.insecure_channel(f"127.0.0.1:{self.ports_all.job_server}") as channel:
            stub = self._stub(channel)
            for job_id, _, _ in self.active_jobs():
                with contextlib.suppress(grpc.RpcError):  # finished between GetJobs and Cancel
                    stub.Cancel(beam_job_api_pb2.CancelJobRequest(job_id=job_id), timeout=10)
                    cancelled.append(job_id)
        deadline = time.monotonic() + timeout_s
        while self.active_jobs() and time.monotonic() < deadline:
            time.sleep(0.3)
        return cancelled

    def probe(self) -> str:
        """A real Job API call (GetJobs) and a request to the web UI."""
        import requests

        if not process.port_in_use(self.ports_all.job_server):
            raise StackError(f"port {self.ports_all.job_server} is not accepting connections")
        jobs = self.jobs()
        ui = requests.get(self.ui_url(), timeout=3)
        ui.raise_for_status()
        active = sum(1 for job in jobs if job[2] in ACTIVE_STATES)
        return f"Job API answers, {active} active / {len(jobs)} job(s); UI {self.ui_url()}"

    def ui_url(self) -> str:
        return f"http://localhost:{self.ports_all.job_server_ui}/"

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        try:
            cancelled = self.cancel_all()
        except Exception as error:  # noqa: BLE001 - an unresponsive Prism is still stopped by pid below
            note = f"; cancel failed ({str(error)[:80]})"
        else:
            note = f"; cancelled {len(cancelled)} job(s) first" if cancelled else ""
        return super().down() + note


class WorkerPool(Service):
    """`python -m ccas.stack.worker_pool --service_port <worker_pool>`: EXTERNAL Python SDK workers on 127.0.0.1.

    Beam's own worker_pool_main binds `[::]` (every interface) and runs whatever pipeline code a runner sends it; ours serves
    the same servicer on the loopback address only (ccas/stack/worker_pool.py). The pool starts each worker as
    `python -c ...` from PATH, so it runs with this virtualenv's bin first on PATH (else workers fail to import Beam).
    Workers are its children in its process group (spawned in a session of its own), and the pool does not stop them on
    SIGTERM (only its atexit hook would), so `down` signals the whole group.
    """

    name = "workerpool"
    start_timeout_s = 30.0

    def ports(self) -> dict[str, int]:
        return {"grpc": self.ports_all.worker_pool}

    def start(self) -> None:
        venv_bin = str(Path(sys.executable).parent)
        argv = [
            sys.executable, "-m", "ccas.stack.worker_pool",
            f"--service_port={self.ports_all.worker_pool}",
            # Ignored by the pool (parse_known_args); names the stack folder in the command line for owned_pid().
            f"--ccas_stack_service={self.dir}",
        ]
        env = {
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            # Workers unpickle our DoFns, which import `pipeline` and `ccas` from this clone (not installed in the venv);
            # so the pool serves this clone's code as it was when the pool started: restart it after changing the pipeline.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.REPO_ROOT), os.environ.get("PYTHONPATH")])),
            "CCAS_WORKER_POOL_DIR": str(self.dir),
        }
        process.spawn(argv, self.log_file, self.pid_file, env=env, cwd=self.dir)

    def probe(self) -> str:
        """A real call on the pool's gRPC service: StopWorker of an unknown id is a no-op that it answers."""
        import grpc
        from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc

        port = self.ports_all.worker_pool
        if not process.port_in_use(port):
            raise StackError(f"port {port} is not accepting connections")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel)
            response = stub.StopWorker(beam_fn_api_pb2.StopWorkerRequest(worker_id="ccas-probe"), timeout=5)
        if response.error:
            raise StackError(f"worker pool answered with an error: {response.error[:200]}")
        return f"gRPC answers, {len(self.worker_processes()) - 1} SDK worker process(es)"

    def worker_processes(self) -> list[int]:
        """The pool and its live workers: they inherit CCAS_WORKER_POOL_DIR (a worker's command line names nothing)."""
        return process.pids_with_env("CCAS_WORKER_POOL_DIR", str(self.dir))

    def down(self) -> str:
        pid = self.pid()
        if pid is None:
            return "not running"
        workers = [worker for worker in self.worker_processes() if worker != pid]
        # The pool leads its own process group (spawn uses a new session): SIGTERM reaches it and its workers at once.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        process.terminate(pid, timeout_s=10)
        for worker in self.worker_processes():  # a worker that ignored SIGTERM, or one that left the group
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid}, {len(workers)} worker(s))"


NAMES = ["jobserver", "workerpool"]
