"""Prometheus metrics exported by the pipeline's worker processes (Beam Distributions do not reach Flink's reporters).

The HTTP endpoint starts once per process, on the first DoFn setup that asks for it.
"""

from __future__ import annotations

import logging
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

_lock = threading.Lock()
_started_port: int | None = None


def ensure_metrics_server(port: int) -> None:
    """Serve /metrics on 127.0.0.1:port once per process; a port already taken is logged, never fatal for the job."""
    global _started_port
    if port <= 0:
        return
    with _lock:
        if _started_port is not None:
            return
        try:
            start_http_server(port, addr="127.0.0.1")
            _started_port = port
            log.info("pipeline metrics on http://127.0.0.1:%d/metrics", port)
        except OSError as error:
            _started_port = -1
            log.warning("pipeline metrics not served: port %d: %s", port, error)
