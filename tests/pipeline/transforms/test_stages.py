"""The I/O composites under TestPipeline against the real services: EnrichCall, DownloadToS3, ScoreCall, WriteResults and
WriteDeadLetters, each with its good and its dead-letter branch (database, S3, Kafka and recorder all real). test_stages_unit.py
runs the same stages with in-memory clients."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from core.kafka import KafkaSecurity
from core.pii import customer_key
from core.s3 import s3_client
from pipeline.io.database import Database
from pipeline.model import CallEvent, SourcePosition
from pipeline.options import JobConfig
from pipeline.transforms.download import DownloadToS3
from pipeline.transforms.enrich import CustomerNumbers, EnrichCall, enrich
from pipeline.transforms.score import ScoreCall
from pipeline.transforms.write import WriteDeadLetters, WriteResults
from tests.pipeline import e2e

pytestmark = pytest.mark.integration
RUNNER = "BundleBasedDirectRunner"
PII_HMAC_KEY = "stage-test-hmac-key-0123456789"
NUMBERS = CustomerNumbers(PII_HMAC_KEY.encode())


@pytest.fixture(scope="module")
def world(stack_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    seed = random.randrange(10_000, 99_999)
    services = e2e.start_services(seed, 6)
    try:
        calls = sorted(services.recorder_calls(), key=lambda call: call["inum"])[:5]
        with e2e.scratch_database(stack_env["CCAS_DATABASE_URL"]) as url:
            config = JobConfig(
                kafka_bootstrap=stack_env["CCAS_KAFKA_BOOTSTRAP"], kafka_io="python", expansion_service=None,
                consumer_group="unused", input_topic="calls.raw", database_url=url, s3_endpoint=stack_env["CCAS_S3_ENDPOINT"],
                s3_bucket=stack_env["CCAS_S3_BUCKET"], s3_region=None, s3_access_key=stack_env["CCAS_S3_ACCESS_KEY"],
                s3_secret_key=stack_env["CCAS_S3_SECRET_KEY"], s3_ca_file=stack_env["CCAS_S3_CA_FILE"],
                avaya_url=services.recorder_url,
                avaya_user=stack_env["CCAS_AVAYA_USER"], avaya_password=stack_env["CCAS_AVAYA_PASSWORD"],
                scoring_url=services.scoring_url, download_concurrency=4, scoring_concurrency=2, download_attempts=2,
                download_backoff_s=0.05, scoring_attempts=2, scoring_backoff_s=0.05, dedup_ttl_s=60, metrics_host="127.0.0.1",
                metrics_port=0, pii_hmac_key=PII_HMAC_KEY, scoring_token=services.scoring_token,
                scoring_ca_file=services.scoring_env["CCAS_SCORING_CA_FILE"],
                kafka_security=KafkaSecurity.from_environment())  # the stack's TLS + SCRAM (as `admin`)
            yield {"services": services, "calls": calls, "config": config, "env": stack_env}
    finally:
        services.stop()


def event(call: dict, offset: int, **overrides: Any) -> CallEvent:
    value = {"call_id": call["inum"], "started_at": call["started_at"], "ended_at": call["ended_at"],
             "duration": call["duration"], "raw_agent": f"{1000 + offset} (agent{1000 + offset}.7)",
             "other_parties": "0901234567", "skill": " billing ", "service": "VDN 5001",
             "switch_call_id": call["switch_call_id"], **overrides}
    return CallEvent(call["inum"], value, SourcePosition("calls.raw", 0, offset))


def _ids(pcoll: Any, label: str) -> Any:
    return pcoll | label >> beam.Map(lambda item: item.call_id)


def test_enrich_upserts_publishes_and_dead_letters(world: dict) -> None:
    config: JobConfig = world["config"]
    good, backwards, scored = world["calls"][:3]
    Database(config.database_url).upsert_calls([enrich(event(scored, 99), NUMBERS)])
    e2e.query(config.database_url, "UPDATE call SET status = 'SCORED' WHERE call_id = %s RETURNING 1", (scored["inum"],))
    start = e2e.end_offsets(config.kafka_bootstrap, "calls.enriched")
    inputs = [event(good, 1), event(backwards, 2, ended_at="2000-01-01T00:00:00+00:00"), event(scored, 3)]
    with TestPipeline(runner=RUNNER) as p:
        enriched, dead, already = p | beam.Create(inputs) | EnrichCall(config)
        assert_that(enriched | beam.Map(lambda c: (c.call_id, c.agent_id, c.agent_name, c.skill)),
                    equal_to([(good["inum"], "1001", "agent1001.7", "billing")]), label="enriched")
        assert_that(dead | beam.Map(lambda d: (d.call_id, d.stage, d.error_type)),
                    equal_to([(backwards["inum"], "enrich", "ValueError")]), label="dead")
        assert_that(already | beam.Map(lambda s: s.offset), equal_to([3]), label="already scored")
    rows = dict(e2e.query(config.database_url, "SELECT call_id, status FROM call"))
    assert rows == {good["inum"]: "PENDING_DOWNLOAD", scored["inum"]: "SCORED"}
    # The customer is stored and published as its keyed hash, never as the number.
    key = customer_key("0901234567", PII_HMAC_KEY.encode())
    assert e2e.query(config.database_url, "SELECT customer_key, customer_number_enc FROM call WHERE call_id = %s",
                     (good["inum"],)) == [(key, None)]
    published = [v for v in e2e.read_since(config.kafka_bootstrap, "calls.enriched", start)
                 if v["call_id"] in {c["inum"] for c in world["calls"]}]
    assert [(v["call_id"], v["agent_id"], v["customer_key"], v["metadata_version"]) for v in published] == [
        (good["inum"], "1001", key, 2)]
    assert "other_party" not in published[0]


def test_download_score_and_write_with_their_dead_letter_branches(world: dict) -> None:
    config: JobConfig = world["config"]
    calls = world["calls"]
    flaky, dead, corrupt, good = calls[1], calls[3], calls[4], calls[0]
    world["services"].configure_recorder({"replay_failures": {flaky["inum"]: 1, dead["inum"]: -1},
                                          "corrupt_inums": [corrupt["inum"]]})
    enriched = [enrich(event(call, offset), NUMBERS) for offset, call in enumerate([good, flaky, dead, corrupt], start=10)]
    Database(config.database_url).upsert_calls(enriched)
    starts = {topic: e2e.end_offsets(config.kafka_bootstrap, topic) for topic in e2e.OUTPUT_TOPICS}
    with TestPipeline(runner=RUNNER) as p:
        stored, download_dead = p | beam.Create(enriched) | DownloadToS3(config)
        scored, score_dead = stored | ScoreCall(config)
        written = scored | WriteResults(config)
        dlq = (download_dead, score_dead) | beam.Flatten() | WriteDeadLetters(config)
        assert_that(stored | beam.Map(lambda s: (s.call_id, s.attempts)),
                    equal_to([(good["inum"], 1), (flaky["inum"], 2), (corrupt["inum"], 1)]), label="stored")
        assert_that(download_dead | beam.Map(lambda d: (d.call_id, d.stage, d.error_type, d.retries)),
                    equal_to([(dead["inum"], "download", "AvayaUnavailable", 2)]), label="download dead")
        assert_that(_ids(scored, "ScoredIds"), equal_to([good["inum"], flaky["inum"]]), label="scored")
        assert_that(score_dead | beam.Map(lambda d: (d.call_id, d.stage, d.error_type, d.retries)),
                    equal_to([(corrupt["inum"], "score", "ScoringRejected", 1)]), label="score dead")
        assert_that(written | "WrittenOffsets" >> beam.Map(lambda s: s.offset), equal_to([10, 11]), label="written")
        assert_that(dlq | "DeadOffsets" >> beam.Map(lambda s: s.offset), equal_to([12, 13]), label="dlq positions")

    statuses = dict(e2e.query(config.database_url, "SELECT call_id, status FROM call WHERE call_id = ANY(%s)",
                              ([c.call_id for c in enriched],)))
    assert statuses == {good["inum"]: "SCORED", flaky["inum"]: "SCORED", dead["inum"]: "ERROR", corrupt["inum"]: "ERROR"}
    s3 = s3_client(config.s3_endpoint, config.s3_access_key, config.s3_secret_key, ca_file=config.s3_ca_file)
    for call_id, key, sha256 in e2e.query(config.database_url, "SELECT call_id, s3_key, sha256 FROM audio_asset"):
        head = s3.head_object(Bucket=config.s3_bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256" and head["Metadata"]["sha256"] == sha256
        body = s3.get_object(Bucket=config.s3_bucket, Key=key)["Body"].read()
        assert hashlib.sha256(body).hexdigest() == sha256, call_id
    ours = {c.call_id for c in enriched}

    def published(topic: str) -> list[dict]:
        return [v for v in e2e.read_since(config.kafka_bootstrap, topic, starts[topic]) if v.get("call_id") in ours]

    assert sorted(v["call_id"] for v in published("audio.ready")) == sorted([good["inum"], flaky["inum"], corrupt["inum"]])
    results = published("scoring.results")
    assert sorted(v["call_id"] for v in results) == sorted([good["inum"], flaky["inum"]])
    assert all(v["model_version"] and isinstance(v["breakdown"], list) and v["latency_ms"] >= 0 for v in results)
    assert [(v["call_id"], v["retries"], v["payload"]["call_id"]) for v in published("audio.ready.dlq")] == \
        [(dead["inum"], 2, dead["inum"])]
    assert [(v["call_id"], v["error_type"]) for v in published("scoring.results.dlq")] == [(corrupt["inum"], "ScoringRejected")]
