"""The poller's Prometheus metrics, on a registry of their own so several pollers (tests) can live in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DELAY_BUCKETS = (1, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800)


class PollerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingest_lag = Gauge("ingest_lag_seconds", "now minus the end of the last window fully published", registry=r)
        self.poll_duration = Histogram(
            "poll_duration_seconds", "one window: search(es), dedup, publish, checkpoint", buckets=LATENCY_BUCKETS, registry=r
        )
        self.poll_to_publish = Histogram(
            "poll_to_publish_seconds", "search request sent → Kafka transaction committed", buckets=LATENCY_BUCKETS, registry=r
        )
        self.publish_delay = Histogram(
            "call_end_to_publish_seconds", "call end → its value committed on calls.raw", buckets=DELAY_BUCKETS, registry=r
        )
        self.published = Counter("records_published", "calls published to calls.raw", registry=r)
        self.duplicates = Counter(
            "records_duplicate", "results skipped as already published or repeated in an answer", registry=r
        )
        self.rejected = Counter("records_rejected", "results rejected, by reason", ["reason"], registry=r)
        self.in_progress = Gauge("records_in_progress", "recordings without a duration in the last window", registry=r)
        self.tracked = Gauge(
            "records_tracked", "recordings tracked as in progress, searched again every poll until they end", registry=r
        )
        self.expired = Counter(
            "records_in_progress_expired",
            "recordings still in progress after the maximum call age: dropped from tracking, never published",
            registry=r,
        )
        self.poll_errors = Counter("poll_errors", "windows that failed and will be retried, by reason", ["reason"], registry=r)
        self.windows = Counter("windows_polled", "windows completed (checkpoint moved)", registry=r)
        self.splits = Counter("window_splits", "windows split because the answer hit the recorder's cap", registry=r)
        self.reconciled = Counter("records_reconciled", "calls found on the topic but missing from the dedup table", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value (tests and the note's measurements)."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
