"""The gap between the Kafka commit and the DB commit, made real: the DB refuses the checkpoint after Kafka committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from avaya_source.client import AvayaClient, Credentials
from avaya_source.metrics import PollerMetrics
from avaya_source.poller import Poller, PollerConfig, _WindowFailed
from avaya_source.publisher import TransactionalPublisher
from avaya_source.store import IngestStore
from avaya_source.windows import Window, WindowPolicy
from tests.avaya_source.harness import MOCK_PASSWORD, MOCK_USER, assert_exactly_once, consume_all, expected_inums

pytestmark = pytest.mark.integration


def _poller(mock_url: str, database: str, bootstrap: str, topic: str) -> Poller:
    policy = WindowPolicy(timedelta(seconds=300), timedelta(seconds=1), timedelta(seconds=600))
    config = PollerConfig(policy, datetime.now(UTC) - timedelta(hours=1), interval_s=0.5)
    return Poller(
        AvayaClient(mock_url, Credentials(MOCK_USER, MOCK_PASSWORD), retries=0),
        IngestStore(database),
        TransactionalPublisher(bootstrap, topic, f"test-{topic}"),
        config,
        PollerMetrics(),
    )


def test_crash_between_kafka_commit_and_db_commit_is_reconciled_not_republished(start_mock, database, topic, stack_env) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    mock = start_mock("--seed", "15", "--start", "-1800", "--calls-per-minute", "4", "--count", "40", "--duration-max", "60")
    wanted = expected_inums(mock)
    now = datetime.now(UTC).replace(microsecond=0)
    window = Window(now - timedelta(hours=1), now - timedelta(seconds=1))

    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        # NOT VALID: existing rows are not checked, every new write is — the checkpoint UPSERT fails after Kafka committed.
        cur.execute("ALTER TABLE ingestion_checkpoint ADD CONSTRAINT test_refuse_writes CHECK (false) NOT VALID")
    first = _poller(mock.url, database, bootstrap, topic)
    with pytest.raises(_WindowFailed):
        first.run_once(window)
    assert first.in_doubt
    assert first.metrics.value("poll_errors_total", {"reason": "database"}) == 1
    on_topic = consume_all(bootstrap, topic, idle_s=1.0)
    assert {m.key.decode() for m in on_topic} == wanted  # committed on Kafka...
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingested_recording")
        assert cur.fetchone()[0] == 0  # ...but unknown to the dedup table: the dangerous state
        cur.execute("ALTER TABLE ingestion_checkpoint DROP CONSTRAINT test_refuse_writes")
    first.publisher.close()
    first.store.close()

    # A restarted poller (as after kill -9) reconciles against the topic before it publishes anything.
    second = _poller(mock.url, database, bootstrap, topic)
    outcome = second.run_once(window)
    assert outcome is not None and outcome.published == 0 and outcome.duplicates >= len(wanted)
    assert second.metrics.value("records_reconciled_total") == len(wanted)
    second.publisher.close()
    second.store.close()
    assert_exactly_once(consume_all(bootstrap, topic, idle_s=1.0), wanted)
    with psycopg2.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), min(started_at) FROM ingested_recording")
        count, earliest = cur.fetchone()
        cur.execute("SELECT last_polled_to FROM ingestion_checkpoint")
        assert cur.fetchone()[0] == window.end
    assert count == len(wanted) and earliest.tzinfo is not None


def test_a_second_poller_with_the_same_transactional_id_fences_the_first(start_mock, database, topic, stack_env) -> None:
    bootstrap = stack_env["CCAS_KAFKA_BOOTSTRAP"]
    mock = start_mock("--seed", "16", "--start", "-900", "--calls-per-minute", "4", "--count", "10", "--duration-max", "60")
    now = datetime.now(UTC).replace(microsecond=0)
    old = _poller(mock.url, database, bootstrap, topic)
    old.publisher.start()
    new = _poller(mock.url, database, bootstrap, topic)
    new.publisher.start()  # init_transactions with the same id: the old producer is now a zombie
    with pytest.raises(SystemExit) as info:
        old.run_once(Window(now - timedelta(minutes=30), now - timedelta(seconds=1)))
    assert info.value.code == 3
    assert new.run_once(Window(now - timedelta(minutes=30), now - timedelta(seconds=1))).published == len(expected_inums(mock))
    for poller in (old, new):
        poller.publisher.close()
        poller.store.close()
