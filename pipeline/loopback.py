"""The LOOPBACK environment's SDK worker server, on the loopback address only.

With `--environment_type=LOOPBACK` (the default on Prism) Beam starts, inside the submitting process, a worker pool that the
runner asks for SDK workers, and binds it to `[::]`, every interface: whoever reaches the port can have this process run the
code they send. The runner is on the same machine in that mode, so the pool needs no other address than 127.0.0.1.
`bind_loopback_workers_locally()` replaces Beam's start of that pool with the same server bound there.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.worker import worker_pool_main
from apache_beam.utils import thread_pool_executor

log = logging.getLogger(__name__)
HOST = "127.0.0.1"


def _start_on_loopback(cls: Any, use_process: bool = False, port: int = 0, state_cache_size: int = 0,
                       data_buffer_time_limit_ms: int = -1, container_executable: str | None = None) -> tuple[str, grpc.Server]:
    # Beam's own server options: a runner's keep-alive pings must never get the pool's connection closed.
    options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
    bound = server.add_insecure_port(f"{HOST}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {HOST}:{port} for the LOOPBACK SDK workers")
    pool = cls(use_process=use_process, container_executable=container_executable, state_cache_size=state_cache_size,
               data_buffer_time_limit_ms=data_buffer_time_limit_ms)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()
    log.info("LOOPBACK SDK workers listening on %s:%d", HOST, bound)

    def stop_workers() -> None:
        for worker in list(pool._worker_processes.values()):  # noqa: SLF001 - the servicer keeps no public handle on them
            worker_pool_main.kill_process_gracefully(worker)

    atexit.register(stop_workers)
    return f"{HOST}:{bound}", server


def bind_loopback_workers_locally() -> None:
    """From now on in this process, a LOOPBACK environment's worker pool listens on 127.0.0.1 only."""
    worker_pool_main.BeamFnExternalWorkerPoolServicer.start = classmethod(_start_on_loopback)  # type: ignore[method-assign]
