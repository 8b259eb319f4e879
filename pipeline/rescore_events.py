"""model.version.updated: the event that asks for a re-score (`ccas rescore --announce`), and `ccas rescore --follow`, a
consumer of it in a process of its own.

The streaming job reacts to the event itself: its side branch RescoreOnModelVersion (pipeline/transforms/rescore.py) selects
the calls started within CCAS_RESCORE_LOOKBACK_S that are not at the scoring service's version and re-scores them, paced,
inside the job (on by default; CCAS_RESCORE_ON_EVENTS=false turns it off). The follower is the alternative for a job run with
it off: for each event it runs the bounded re-score (pipeline/rescore.py) over the look-back, then commits the event. Run one
or the other, not both: both would score the same calls. A repeated or replayed event costs a query: the calls already at the
service's version are not selected again.
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
    version = clients.scoring_model_version()
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
