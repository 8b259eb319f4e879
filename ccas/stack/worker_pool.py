"""Beam's Python SDK worker pool (EXTERNAL environment) bound to 127.0.0.1.

Beam's worker_pool_main listens on `[::]`, every interface, and starts an SDK worker for any runner that asks — which then
runs the pipeline code it is sent. This entry point serves the same servicer with the same worker processes on the loopback
address only. Run as `python -m ccas.stack.worker_pool --service_port PORT`.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import time

import grpc
from apache_beam.portability.api import beam_fn_api_pb2_grpc
from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer, kill_process_gracefully
from apache_beam.utils import thread_pool_executor

log = logging.getLogger("ccas.worker_pool")


def serve(port: int, host: str = "127.0.0.1") -> grpc.Server:
    """Start the pool's gRPC server on host:port with process workers; returns the started server."""
    # Beam's own options for this server: a runner's keep-alive pings must never get the pool's connection closed.
    options = [("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)]
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(), options=options)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot listen on {host}:{port}")
    pool = BeamFnExternalWorkerPoolServicer(use_process=True)
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(pool, server)
    server.start()

    def stop_workers() -> None:
        for worker in list(pool._worker_processes.values()):  # noqa: SLF001 - the servicer keeps no public handle on them
            kill_process_gracefully(worker)

    atexit.register(stop_workers)
    log.info("worker pool listening on %s:%d", host, bound)
    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service_port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args, _ = parser.parse_known_args(argv)  # others (e.g. --ccas_stack_service) only mark the command line
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = serve(args.service_port, args.host)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop(0)


if __name__ == "__main__":
    main()
