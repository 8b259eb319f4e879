"""Prometheus metrics exported by the pipeline's worker processes (Beam Distributions do not reach Flink's reporters).

The HTTP endpoint starts once per process, on the first DoFn setup that asks for it, on the configured address
(CCAS_PIPELINE_METRICS_HOST / --metrics_host; 0.0.0.0 in a container). A worker pool runs several SDK worker processes side
by side, and each needs an endpoint of its own: a process takes the configured port if it is free, else the next one, up to
PORT_SPAN ports, and logs the one it took. Prometheus scrapes that whole span (ops/prometheus/prometheus.compose.yml).

Why not prometheus_client's multiprocess mode: it needs a shared directory set before the first import in every worker,
cleanup of dead workers' files, and a collector process of its own; and it merges the workers into one series, while one
target per worker tells which worker is stuck. A span of ports needs nothing but the scrape config.
"""

from __future__ import annotations

import logging
import os
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_MS_BUCKETS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000, 120000)

DOWNLOAD_LATENCY_MS = Histogram("download_latency_ms", "Replay download + S3 upload time per call (ms)",
                                buckets=_MS_BUCKETS)
SCORING_LATENCY_MS = Histogram("scoring_latency_ms", "Scoring service round trip per call (ms)", buckets=_MS_BUCKETS)
END_TO_END_SECONDS = Histogram("call_end_to_scored_seconds", "Call end to scored result published (s)",
                               buckets=(5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600))
INGEST_LAG_SECONDS = Gauge("ingest_lag_seconds", "Call end to the pipeline reading it from calls.raw (s), last call seen",
                           ["component"])
QUEUE_DEPTH = Gauge("queue_depth", "Consumer lag: log end offset minus committed offset", ["topic", "partition", "group"])
DEAD_LETTERS = Counter("dead_letters_total", "Messages sent to a dead-letter topic", ["stage", "error_type"])
CALLS_PROCESSED = Counter("pipeline_calls_total", "Calls that completed a stage", ["stage"])
OFFSETS_COMMITTED = Counter("pipeline_offsets_committed_total", "Offset commits", ["topic"])
DEPENDENCY_UP = Gauge("dependency_up", "1 while this worker reaches the dependency, 0 while it is held as unavailable",
                      ["dependency"])
DEPENDENCY_FAILURES = Counter("dependency_unavailable_total", "Tries that found a dependency unavailable", ["dependency"])
VIEW_WRITE_FAILURES = Counter("view_write_failures_total", "Writes of a view (the Parquet export, the scorecards) that failed "
                              "for good and were skipped: the calls themselves are in scoring_result", ["view"])
SCORECARD_TOO_LATE = Counter("scorecard_calls_too_late_total", "Calls later than the scorecards' allowed lateness, left out of a "
                             "window", ["granularity"])
CALLS_HELD = Gauge("calls_held", "Calls (or sink batches) waiting for an unavailable dependency", ["dependency"])

PORT_SPAN = 16

_lock = threading.Lock()
_served_port: int | None = None
_tried = False


def ensure_metrics_server(host: str, port: int, span: int = PORT_SPAN) -> int | None:
    """Serve /metrics on host:port, or the first free port of port … port+span-1, once per process; returns the port taken.

    Port 0 turns the endpoint off. No free port in the span is logged, never fatal for the job, and not retried by the
    process's later DoFn setups (None).
    """
    global _served_port, _tried
    if port <= 0:
        return None
    with _lock:
        if _tried:
            return _served_port
        _tried = True
        last_error: OSError | None = None
        for candidate in range(port, min(port + span, 65536)):
            try:
                start_http_server(candidate, addr=host)
            except OSError as error:  # taken by another worker process of this pool (or anything else)
                last_error = error
                continue
            _served_port = candidate
            log.info("pipeline metrics of this worker process (pid %d) on http://%s:%d/metrics", os.getpid(), host, candidate)
            return candidate
        log.warning("pipeline metrics not served: no free port in %s:%d-%d (%s)", host, port, port + span - 1, last_error)
        return None
