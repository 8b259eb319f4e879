"""model.version.updated: the event that asks for a re-score, and the consumer that acts on it (`ccas rescore --follow`).

The streaming job does not start the bounded re-score itself: a Beam streaming job cannot launch and wait for another pipeline
from inside a DoFn without tying up its workers for the whole re-score. The follower is a process of its own beside it, with the
pipeline's principal: for each event it re-scores the calls started in the look-back with the service's model_version, then
commits the event. A repeated or replayed event costs nothing: the calls already at that version are not selected again.
"""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.kafka import consumer_config
from pipeline.clients import StageClients
from pipeline.options import JobConfig

log = logging.getLogger("ccas.rescore")

TOPIC = "model.version.updated"
FOLLOW_GROUP = "ccas-pipeline-rescore"  # under the pipeline principal's group prefix (ccas/kafka_acls.py)


def announce(config: JobConfig, clients: StageClients | None = None) -> str:
    """Publish the scoring service's current model_version on model.version.updated; returns it."""
    clients = clients or StageClients(config)
    scoring = clients.scoring(pool_size=1)
    try:
        version = scoring.model_version()
    finally:
        scoring.close()
    publisher = clients.publisher("ccas-rescore-announce")
    try:
        publisher.publish_all([(TOPIC, version, {"model_version": version, "scoring_url": config.scoring_url})])
    finally:
        publisher.close()
    return version


def _stop_on_sigterm() -> None:
    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)


def follow(config: JobConfig, lookback_s: int, rescore_since: Callable[[Any], Any], group: str = FOLLOW_GROUP,
           poll_timeout_ms: int = 1000) -> int:
    """Until SIGINT/SIGTERM: on each event re-score the calls started in the last `lookback_s`, then commit the event."""
    from kafka import KafkaConsumer

    from pipeline.rescore import Selection

    _stop_on_sigterm()
    consumer = KafkaConsumer(**consumer_config(config.kafka_bootstrap, group, client_id="ccas-rescore-follow",
                                               security=config.kafka_security, max_poll_records=1,
                                               # A re-score outlasts Kafka's default poll interval (5 min).
                                               max_poll_interval_ms=24 * 3600 * 1000))
    consumer.subscribe([TOPIC])
    log.info("following %s (group %s): each event re-scores the last %d s of calls", TOPIC, group, lookback_s)
    try:
        while True:
            for records in consumer.poll(timeout_ms=poll_timeout_ms).values():
                for record in records:
                    try:
                        event = json.loads(record.value)
                    except ValueError:
                        log.warning("%s offset %d is not JSON: skipped", TOPIC, record.offset)
                        continue
                    since = datetime.now(UTC) - timedelta(seconds=lookback_s)
                    log.info("%s: model_version %s announced; re-scoring calls started since %s", TOPIC,
                             event.get("model_version"), since.isoformat())
                    rescore_since(Selection(since=since))
                consumer.commit()
    except KeyboardInterrupt:
        log.info("stopped")
        return 0
    finally:
        consumer.close()
