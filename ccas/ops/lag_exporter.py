"""`ccas lag-exporter`: consumer lag from broker offsets, for Prometheus.

Each scrape asks the broker for the committed offsets of the consumer groups named by `--groups` (a regex; default the
pipeline's `ccas-...` groups, so groups that tests left behind do not page anyone) and for the log-end offsets of their
partitions. Exported:
- `queue_depth{topic, partition, group}`: log-end offset minus committed offset (never negative);
- `dlq_messages{topic, stage}`: messages held by each dead-letter topic (log end minus log start);
- `lag_exporter_scrape_errors_total`: scrapes that could not reach the broker.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import re
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ccas.ops.settings import LagExporterSettings
from core.config import add_flags, load_for_command
from core.kafka import client_security
from schemas.contracts import DLQ_TOPICS, dlq_stage

log = logging.getLogger(__name__)

# Each dead-letter topic, labelled by the first stage that writes to it.
DLQ_STAGES = {topic: dlq_stage(topic) for topic in DLQ_TOPICS}


class LagCollector(Collector):
    def __init__(self, bootstrap: str, groups: str, registry: CollectorRegistry, cache_s: float = 5.0) -> None:
        self.bootstrap = bootstrap
        self.groups = re.compile(groups)
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Any]] = (0.0, [])
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None
        self.errors = Counter("lag_exporter_scrape_errors", "scrapes that failed to read offsets from the broker",
                              registry=registry)

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None or self._consumer is None:
            security = client_security(None)  # the lag exporter's principal: it may describe, nothing more
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="ccas-lag-exporter",
                                           request_timeout_ms=10000, **security)
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, client_id="ccas-lag-exporter",
                                           enable_auto_commit=False, request_timeout_ms=11000, **security)
        return self._admin, self._consumer

    def measure(self) -> tuple[dict[tuple[str, int, str], int], dict[str, int]]:
        admin, consumer = self._clients()
        groups = sorted(g["group_id"] for g in admin.list_groups() if self.groups.search(g["group_id"]))
        committed: dict[tuple[str, int, str], int] = {}
        for group, offsets in (admin.list_group_offsets(dict.fromkeys(groups)) if groups else {}).items():
            for tp, meta in offsets.items():
                if meta.offset is not None and meta.offset >= 0:
                    committed[(tp.topic, tp.partition, group)] = meta.offset
        # A group may keep offsets of a topic deleted since (tests do that); asking for its end offsets fails the whole scrape.
        existing = consumer.topics()
        committed = {key: offset for key, offset in committed.items() if key[0] in existing}
        partitions = {TopicPartition(topic, partition) for topic, partition, _ in committed}
        dlq_partitions = {TopicPartition(topic, p) for topic in DLQ_STAGES
                          for p in consumer.partitions_for_topic(topic) or ()}
        ends = consumer.end_offsets(sorted(partitions | dlq_partitions)) if partitions | dlq_partitions else {}
        starts = consumer.beginning_offsets(sorted(dlq_partitions)) if dlq_partitions else {}
        lag = {key: max(0, ends.get(TopicPartition(key[0], key[1]), offset) - offset) for key, offset in committed.items()}
        dlq = {topic: sum(ends[tp] - starts[tp] for tp in dlq_partitions if tp.topic == topic) for topic in DLQ_STAGES}
        return lag, dlq

    def collect(self) -> Iterator[Any]:
        with self._lock:
            fetched_at, families = self._cached
            if time.monotonic() - fetched_at > self.cache_s:
                try:
                    lag, dlq = self.measure()
                except Exception as error:  # noqa: BLE001 - a scrape reports the failure as a metric, never crashes
                    log.warning("offsets not read: %s", error)
                    self.errors.inc()
                    self._admin = self._consumer = None
                    return iter(())
                depth = GaugeMetricFamily("queue_depth", "Consumer lag: log end offset minus committed offset",
                                          labels=["topic", "partition", "group"])
                for (topic, partition, group), value in sorted(lag.items()):
                    depth.add_metric([topic, str(partition), group], value)
                held = GaugeMetricFamily("dlq_messages", "Messages held by a dead-letter topic", labels=["topic", "stage"])
                for topic, value in sorted(dlq.items()):
                    held.add_metric([topic, DLQ_STAGES[topic]], value)
                families = [depth, held]
                self._cached = (time.monotonic(), families)
            return iter(families)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas lag-exporter", description="consumer lag per topic/partition/group")
    add_flags(parser, LagExporterSettings)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = load_for_command(LagExporterSettings, args, "ccas lag-exporter")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    registry = CollectorRegistry()
    registry.register(LagCollector(settings.kafka_bootstrap, settings.lag_exporter_groups, registry))
    start_http_server(settings.lag_exporter_port, addr=settings.lag_exporter_host, registry=registry)
    log.info("lag exporter on http://%s:%d/metrics (groups %s)", settings.lag_exporter_host, settings.lag_exporter_port,
             settings.lag_exporter_groups)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    return 0
