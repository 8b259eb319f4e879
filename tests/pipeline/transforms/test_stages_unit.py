"""The I/O stages under a real TestPipeline with in-memory clients (tests/pipeline/transforms/fakes.py): outputs, dead-letter
branches, retries, and what reached the database and Kafka. No service runs; test_stages.py covers the same stages against
the real stack."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from audio.wav import wav_header
from core.pii import customer_key
from core.recorder import AvayaBadResponse, AvayaUnavailable
from pipeline.build import build_pipeline
from pipeline.clients import StageClients
from pipeline.io.scoring_client import ScoringRejected, ScoringUnavailable
from pipeline.model import CallEvent, DeadLetter, EnrichedCall, ScoredCall, SourcePosition, StoredAudio
from pipeline.options import JobConfig
from pipeline.transforms._bundles import BatchingDoFn
from pipeline.transforms.download import DownloadToS3, _DownloadFn
from pipeline.transforms.enrich import CustomerNumbers, EnrichCall, _EnrichFn, enrich
from pipeline.transforms.score import ScoreCall, _ScoreFn
from pipeline.transforms.write import WriteDeadLetters, WriteResults, _WriteDeadLettersFn, _WriteResultsFn
from tests.pipeline.transforms import fakes as fakes_module
from tests.pipeline.transforms.fakes import FOREVER, FakeClients, World, drop_world, new_world

RUNNER = "BundleBasedDirectRunner"
ATTEMPTS = 3
OUTAGE_BUDGET_S = 1.0  # how long the fakes' outages may hold a call here (the real default is 15 minutes)
STARTED_AT = "2026-11-25T09:58:00+00:00"
ENDED_AT = "2026-11-25T09:59:46+00:00"
PII_HMAC_KEY = "unit-test-hmac-key-0123456789"


def job_config() -> JobConfig:
    # Addresses nothing listens on: a stage that reached for a real client instead of the fakes would fail loudly.
    return JobConfig(
        kafka_bootstrap="127.0.0.1:9", kafka_io="python", expansion_service=None, consumer_group="unit",
        input_topic="calls.raw", database_url="postgresql://nobody@127.0.0.1:9/none", s3_endpoint="http://127.0.0.1:9",
        s3_bucket="unused", s3_region=None, s3_access_key=None, s3_secret_key=None, s3_ca_file=None,
        avaya_url="http://127.0.0.1:9",
        avaya_user="unit", avaya_password="unit", scoring_url="http://127.0.0.1:9", download_concurrency=2,
        scoring_concurrency=2, download_attempts=ATTEMPTS, download_backoff_s=0, scoring_attempts=ATTEMPTS, scoring_backoff_s=0,
        dedup_ttl_s=60, metrics_host="127.0.0.1", metrics_port=0, outage_budget_s=OUTAGE_BUDGET_S, outage_backoff_cap_s=0.05,
        pii_hmac_key=PII_HMAC_KEY,
    )


class Fakes(NamedTuple):
    config: JobConfig
    clients: FakeClients
    world: World


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    token, world = new_world()
    config = job_config()
    try:
        yield Fakes(config, FakeClients(config, token), world)
    finally:
        drop_world(token)


def wav(seconds: float = 2.0) -> bytes:
    frames = int(8000 * seconds)
    return wav_header(frames, 8000, 1, "ulaw") + b"\xff" * frames


def event(call_id: str, offset: int, **overrides: Any) -> CallEvent:
    value = {"call_id": call_id, "started_at": STARTED_AT, "ended_at": ENDED_AT, "duration": 106.0,
             "raw_agent": "1234 (agent1234.247)", "other_parties": "0901234567", "skill": " billing ", "service": "VDN 5001",
             "switch_call_id": "00012A3F", **overrides}
    return CallEvent(call_id, value, SourcePosition("calls.raw", 0, offset))


def enriched(call_id: str, offset: int) -> EnrichedCall:
    return enrich(event(call_id, offset), CustomerNumbers(PII_HMAC_KEY.encode()))


def stored(world: World, call_id: str, offset: int, body: bytes | None = None) -> StoredAudio:
    """A recording already in the fake S3, as DownloadToS3 would have left it."""
    body = wav() if body is None else body
    key = f"raw/2026/11/25/{call_id}.wav"
    world.objects[key] = body
    return StoredAudio(call=enriched(call_id, offset), s3_key=key, s3_version_id=None, sha256=hashlib.sha256(body).hexdigest(),
                       size_bytes=len(body), codec="ulaw", sample_rate=8000, channels=1, duration_s=2.0,
                       stored_at="2026-11-25T10:00:00+00:00")


def scored(world: World, call_id: str, offset: int, score: float | None = 80.0) -> ScoredCall:
    return ScoredCall(audio=stored(world, call_id, offset), score=score, scorable=score is not None, reason=None,
                      model_version="fake-1", latency_ms=120, breakdown=[{"criterion": "greeting"}],
                      scored_at="2026-11-25T10:00:14+00:00")


def letter(stage: str, call_id: str | None, offset: int | None, error: Exception) -> DeadLetter:
    source = SourcePosition("calls.raw", 0, offset) if offset is not None else None
    return DeadLetter.of(stage, error, retries=1, payload={"call_id": call_id}, call_id=call_id, source=source)


def failure(pcoll: Any, label: str) -> Any:
    return pcoll | label >> beam.Map(lambda d: (d.call_id, d.stage, d.error_type, d.retries))


def io_stages(events: Any, fakes: Fakes) -> tuple[Any, Any, Any]:
    """enrich → download → score → write, dead letters written: (every finished position, the written ones, the dead ones)."""
    calls, enrich_dead, already = events | EnrichCall(fakes.config, fakes.clients)
    audio, download_dead = calls | DownloadToS3(fakes.config, fakes.clients)
    results, score_dead = audio | ScoreCall(fakes.config, fakes.clients)
    written = results | WriteResults(fakes.config, fakes.clients)
    dead = (enrich_dead, download_dead, score_dead) | beam.Flatten() | WriteDeadLetters(fakes.config, fakes.clients)
    return (written, dead, already) | "Finished" >> beam.Flatten(), written, dead


def offsets(pcoll: Any, label: str) -> Any:
    return pcoll | label >> beam.Map(lambda position: position.offset)


# -- EnrichCall --------------------------------------------------------------------------------------------------------------


def test_enrich_upserts_publishes_and_splits_failures_and_scored_calls(fakes: Fakes) -> None:
    world = fakes.world
    world.statuses.update({"1003": "SCORED", "1004": "ERROR"})
    inputs = [event("1001", 1), event("1002", 2, ended_at="2000-01-01T00:00:00+00:00"), event("1003", 3), event("1004", 4)]
    with TestPipeline(runner=RUNNER) as p:
        good, dead, already = p | beam.Create(inputs) | EnrichCall(fakes.config, fakes.clients)
        assert_that(good | beam.Map(lambda c: (c.call_id, c.agent_id, c.agent_name, c.skill, c.source.offset)),
                    equal_to([("1001", "1234", "agent1234.247", "billing", 1), ("1004", "1234", "agent1234.247", "billing", 4)]),
                    label="enriched")
        assert_that(failure(dead, "Dead"), equal_to([("1002", "enrich", "ValueError", 0)]), label="dead")
        assert_that(offsets(already, "Already"), equal_to([3]), label="already scored")
    # The call enrich refused never reaches the database; a call that ended in ERROR restarts; one already SCORED is left
    # alone and not republished.
    assert sorted(i for method, ids in world.db_calls if method == "upsert_calls" for i in ids) == ["1001", "1003", "1004"]
    assert world.statuses == {"1001": "PENDING_DOWNLOAD", "1003": "SCORED", "1004": "PENDING_DOWNLOAD"}
    published = world.topic("calls.enriched")
    key = customer_key("0901234567", PII_HMAC_KEY.encode())
    assert sorted((v["call_id"], v["agent_id"], v["customer_key"], v["metadata_version"]) for v in published) == [
        ("1001", "1234", key, 2), ("1004", "1234", key, 2)]
    assert not any("other_party" in v or "0901234567" in json.dumps(v) for v in published)
    assert all(v["event_ts"] and v["ingest_uuid"] for v in published)
    assert {topic for topic, _, _ in world.published} == {"calls.enriched"}


# -- DownloadToS3 ------------------------------------------------------------------------------------------------------------


def test_download_stores_the_recording_records_the_asset_and_publishes(fakes: Fakes) -> None:
    world = fakes.world
    recording = wav(2.0)
    world.recordings["1001"] = recording
    world.statuses["1001"] = "PENDING_DOWNLOAD"
    with TestPipeline(runner=RUNNER) as p:
        audio, dead = p | beam.Create([enriched("1001", 7)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(audio | beam.Map(lambda a: (a.call_id, a.s3_key, a.size_bytes, a.sha256, a.codec, a.sample_rate,
                                                a.channels, a.duration_s, a.attempts, a.source.offset)),
                    equal_to([("1001", "raw/2026/11/25/1001.wav", len(recording), hashlib.sha256(recording).hexdigest(),
                               "ulaw", 8000, 1, 2.0, 1, 7)]), label="stored")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.objects == {"raw/2026/11/25/1001.wav": recording}
    assert world.statuses == {"1001": "DOWNLOADED"} and world.assets["1001"].sha256 == hashlib.sha256(recording).hexdigest()
    [ready] = world.topic("audio.ready")
    assert (ready["call_id"], ready["s3_key"], ready["codec"], ready["duration"], ready["size_bytes"]) == \
        ("1001", "raw/2026/11/25/1001.wav", "ulaw", 2.0, len(recording))
    assert ready["ingest_delay_ms"] >= 0 and ready["agent_id"] == "1234"


def test_download_retries_failing_replays_and_dead_letters_one_that_never_succeeds(fakes: Fakes) -> None:
    world = fakes.world
    for call_id in ("2001", "2002", "2003"):
        world.recordings[call_id] = wav(1.0)
    world.fail_replay("2001", ATTEMPTS - 1, lambda: AvayaUnavailable("HTTP 500", 500))
    world.fail_replay("2002", 1, lambda: AvayaBadResponse("truncated", "replay ended early"), mid_stream=True)
    world.fail_replay("2003", FOREVER, lambda: AvayaUnavailable("HTTP 500", 500))
    calls = [enriched("2001", 1), enriched("2002", 2), enriched("2003", 3)]
    with TestPipeline(runner=RUNNER) as p:
        audio, dead = p | beam.Create(calls) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(audio | beam.Map(lambda a: (a.call_id, a.attempts)), equal_to([("2001", ATTEMPTS), ("2002", 2)]),
                    label="stored after retries")
        assert_that(failure(dead, "Dead"), equal_to([("2003", "download", "AvayaUnavailable", ATTEMPTS)]), label="dead")
        assert_that(dead | beam.Map(lambda d: (d.payload["call_id"], d.source.offset, d.topic)),
                    equal_to([("2003", 3, "audio.ready.dlq")]), label="dead letter keeps the message")
    assert world.replays == {"2001": ATTEMPTS, "2002": 2, "2003": ATTEMPTS}
    assert sorted(world.objects) == ["raw/2026/11/25/2001.wav", "raw/2026/11/25/2002.wav"]
    assert sorted(v["call_id"] for v in world.topic("audio.ready")) == ["2001", "2002"]
    assert sorted(world.assets) == ["2001", "2002"]


def test_download_keeps_a_recording_whose_header_is_unreadable(fakes: Fakes) -> None:
    world = fakes.world
    world.recordings["3001"] = b"definitely not RIFF " * 500
    with TestPipeline(runner=RUNNER) as p:
        audio, _ = p | beam.Create([enriched("3001", 1)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(audio | beam.Map(lambda a: (a.call_id, a.codec, a.sample_rate, a.duration_s)),
                    equal_to([("3001", None, None, None)]), label="stored without facts")
    [ready] = world.topic("audio.ready")
    assert (ready["codec"], ready["duration"]) == ("unknown", None)


# -- ScoreCall ---------------------------------------------------------------------------------------------------------------


def test_score_streams_the_stored_recording_and_builds_the_result(fakes: Fakes) -> None:
    world = fakes.world
    audio = stored(world, "4001", 5)
    with TestPipeline(runner=RUNNER) as p:
        results, dead = p | beam.Create([audio]) | ScoreCall(fakes.config, fakes.clients)
        assert_that(results | beam.Map(lambda s: (s.call_id, s.scorable, s.model_version, s.breakdown[0]["criterion"],
                                                  s.latency_ms >= 0, bool(s.scored_at), s.source.offset)),
                    equal_to([("4001", True, "fake-1", "greeting", True, True, 5)]), label="scored")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.scoring_requests == [("4001", "1234", audio.sha256)]


def test_score_puts_the_transcript_in_s3_and_keeps_its_summary(fakes: Fakes) -> None:
    world = fakes.world
    world.transcribe = True
    config = dataclasses.replace(fakes.config, skill_languages=(("bill*", "vi"),))
    audio = stored(world, "4002", 6)
    with TestPipeline(runner=RUNNER) as p:
        results, _dead = p | beam.Create([audio]) | ScoreCall(config, FakeClients(config, fakes.clients.token))
        assert_that(results | beam.Map(lambda s: (s.transcript, s.response["transcript"] == s.transcript)), equal_to([(
            {"s3_key": "transcripts/2026/11/25/4002_whisper-base.json", "asr_model": "whisper-base", "language": "vi",
             "word_count": 2, "confidence": 0.8}, True)]), label="summary")
    # The skill "billing" matched "bill*": its language went with the recording.
    assert world.scoring_languages == {"4002": "vi"}
    key = "transcripts/2026/11/25/4002_whisper-base.json"
    document = json.loads(world.objects[key])
    assert document["call_id"] == "4002" and document["audio_s3_key"] == audio.s3_key
    assert [w["text"] for w in document["segments"][0]["words"]] == ["Xin", "chào"]
    args = world.object_args[key]
    assert args["ServerSideEncryption"] == "AES256" and args["ContentType"] == "application/json"
    assert dict(parse_qsl(args["Tagging"])) == {"call_id": "4002", "agent_id": "1234", "date": "2026-11-25",
                                               "kind": "transcript", "asr_model": "whisper-base"}


def test_score_rejection_is_dead_at_once_and_errors_are_retried(fakes: Fakes) -> None:
    world = fakes.world
    rejected, flaky, down = stored(world, "5001", 1), stored(world, "5002", 2), stored(world, "5003", 3)
    world.fail_scoring("5001", FOREVER, lambda: ScoringRejected("HTTP 422 not audio", 422))
    world.fail_scoring("5002", ATTEMPTS - 1, lambda: ScoringUnavailable("HTTP 503", 503))
    world.fail_scoring("5003", FOREVER, lambda: ScoringUnavailable("HTTP 500", 500))
    with TestPipeline(runner=RUNNER) as p:
        results, dead = p | beam.Create([rejected, flaky, down]) | ScoreCall(fakes.config, fakes.clients)
        assert_that(results | beam.Map(lambda s: s.call_id), equal_to(["5002"]), label="scored after retries")
        assert_that(failure(dead, "Dead"), equal_to([("5001", "score", "ScoringRejected", 1),
                                                     ("5003", "score", "ScoringUnavailable", ATTEMPTS)]), label="dead")
        assert_that(dead | beam.Map(lambda d: d.topic), equal_to(["scoring.results.dlq"] * 2), label="dlq topic")
    attempts = {call_id: sum(1 for request in world.scoring_requests if request[0] == call_id) for call_id in ("5001", "5002",
                                                                                                                 "5003")}
    assert attempts == {"5001": 1, "5002": ATTEMPTS, "5003": ATTEMPTS}


def test_score_answer_without_a_model_version_is_a_permanent_failure(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    original = fakes_module.FakeScoring.score

    def incomplete(self: Any, **kwargs: Any) -> dict:
        answer = original(self, **kwargs)
        del answer["model_version"]
        return answer

    monkeypatch.setattr(fakes_module.FakeScoring, "score", incomplete)
    with TestPipeline(runner=RUNNER) as p:
        results, dead = p | beam.Create([stored(fakes.world, "5101", 1)]) | ScoreCall(fakes.config, fakes.clients)
        assert_that(results, equal_to([]), label="nothing scored")
        assert_that(failure(dead, "Dead"), equal_to([("5101", "score", "KeyError", 1)]), label="dead")


# -- WriteResults / WriteDeadLetters -----------------------------------------------------------------------------------------


def test_write_results_records_scores_publishes_and_emits_positions(fakes: Fakes) -> None:
    world = fakes.world
    world.statuses.update({"6001": "DOWNLOADED", "6002": "DOWNLOADED"})
    results = [scored(world, "6001", 11), scored(world, "6002", 12, score=None)]
    with TestPipeline(runner=RUNNER) as p:
        written = p | beam.Create(results) | WriteResults(fakes.config, fakes.clients)
        assert_that(offsets(written, "Offsets"), equal_to([11, 12]), label="positions")
    assert world.statuses == {"6001": "SCORED", "6002": "SCORED"} and sorted(world.scores) == ["6001", "6002"]
    published = {v["call_id"]: v for v in world.topic("scoring.results")}
    assert (published["6001"]["score"], published["6002"]["score"], published["6002"]["scorable"]) == (80.0, None, False)
    assert published["6001"]["end_to_end_ms"] == 28_000  # 09:59:46 call end → 10:00:14 scored
    assert published["6001"]["latency_ms"] == 120 and published["6001"]["model_version"] == "fake-1"


def test_write_dead_letters_routes_each_stage_to_its_topic_and_marks_stored_calls(fakes: Fakes) -> None:
    world = fakes.world
    world.statuses.update({"7002": "PENDING_DOWNLOAD", "7003": "PENDING_DOWNLOAD", "7004": "DOWNLOADED"})
    letters = [letter("parse", None, 1, ValueError("not JSON")), letter("enrich", "7002", 2, ValueError("ended before start")),
               letter("download", "7003", 3, AvayaUnavailable("HTTP 503")),
               letter("score", "7004", 4, ScoringRejected("HTTP 422", 422)),
               letter("score", "7005", None, ScoringRejected("HTTP 422", 422))]
    with TestPipeline(runner=RUNNER) as p:
        done = p | beam.Create(letters) | WriteDeadLetters(fakes.config, fakes.clients)
        assert_that(offsets(done, "Offsets"), equal_to([1, 2, 3, 4]), label="positions of messages with one")
    routed = sorted((topic, key, value["stage"], value["error_type"]) for topic, key, value in world.published)
    assert routed == [("audio.ready.dlq", "7003", "download", "AvayaUnavailable"),
                      ("calls.raw.dlq", "7002", "enrich", "ValueError"), ("calls.raw.dlq", "unknown", "parse", "ValueError"),
                      ("scoring.results.dlq", "7004", "score", "ScoringRejected"),
                      ("scoring.results.dlq", "7005", "score", "ScoringRejected")]
    [download] = world.topic("audio.ready.dlq")
    assert (download["source_topic"], download["source_offset"], download["retries"], download["payload"]) == \
        ("calls.raw", 3, 1, {"call_id": "7003"})
    # Only stages after which the call has a row mark it ERROR; an enrich failure never wrote one.
    assert sorted(i for method, ids in world.db_calls if method == "mark_errors" for i in ids) == ["7003", "7004", "7005"]
    assert world.statuses == {"7002": "PENDING_DOWNLOAD", "7003": "ERROR", "7004": "ERROR"}
    assert world.errors["7003"].startswith("download: AvayaUnavailable: HTTP 503")


# -- the stages together -----------------------------------------------------------------------------------------------------


def test_every_message_leaves_the_io_stages_exactly_once(fakes: Fakes) -> None:
    """enrich → download → score → write, with a failure in each stage: each offset is finished once (written or dead)."""
    world = fakes.world
    for call_id in ("8001", "8002", "8003", "8004"):
        world.recordings[call_id] = wav(1.0)
    world.statuses["8005"] = "SCORED"
    world.fail_replay("8003", FOREVER, lambda: AvayaUnavailable("HTTP 500", 500))
    world.fail_scoring("8004", FOREVER, lambda: ScoringRejected("HTTP 422", 422))
    world.fail_scoring("8001", 1, lambda: ScoringUnavailable("HTTP 502", 502))
    inputs = [event("8001", 1), event("8002", 2, started_at="2026-11-25T10:30:00+00:00"), event("8003", 3), event("8004", 4),
              event("8005", 5)]
    with TestPipeline(runner=RUNNER) as p:
        finished, written, _ = io_stages(p | beam.Create(inputs), fakes)
        assert_that(offsets(finished, "Offsets"), equal_to([1, 2, 3, 4, 5]), label="each offset once")
        assert_that(offsets(written, "Written"), equal_to([1]), label="written")
    # 8002 ended before it started: refused by enrich, so it never got a row to mark.
    assert world.statuses == {"8001": "SCORED", "8003": "ERROR", "8004": "ERROR", "8005": "SCORED"}
    assert [v["call_id"] for v in world.topic("scoring.results")] == ["8001"]
    assert {topic: [v["call_id"] for v in world.topic(topic)] for topic in ("calls.raw.dlq", "audio.ready.dlq",
                                                                              "scoring.results.dlq")} == \
        {"calls.raw.dlq": ["8002"], "audio.ready.dlq": ["8003"], "scoring.results.dlq": ["8004"]}


# -- setup and teardown ------------------------------------------------------------------------------------------------------

# Each I/O DoFn with the clients its setup opens, in order.
SETUP_ORDER = {
    "enrich": ("database", "publisher"),
    "download": ("recorder", "audio_store", "database", "publisher"),
    "score": ("scoring", "audio_store"),
    "results": ("database", "publisher"),
    "dead_letters": ("database", "publisher"),
}


def stage_fn(stage: str, fakes: Fakes) -> BatchingDoFn:
    return {
        "enrich": lambda: _EnrichFn(fakes.config, fakes.clients),
        "download": lambda: _DownloadFn(fakes.config, fakes.clients),
        "score": lambda: _ScoreFn(fakes.config, fakes.clients),
        "results": lambda: _WriteResultsFn(fakes.clients),
        "dead_letters": lambda: _WriteDeadLettersFn(fakes.clients),
    }[stage]()


@pytest.mark.parametrize("stage", list(SETUP_ORDER))
@pytest.mark.parametrize("broken", ["first", "last"])
def test_teardown_after_a_setup_that_failed_half_way_closes_what_was_opened(fakes: Fakes, stage: str, broken: str) -> None:
    order = SETUP_ORDER[stage]
    failing = order[0] if broken == "first" else order[-1]
    fakes.world.broken_factories.add(failing)
    fn = stage_fn(stage, fakes)
    with pytest.raises(ConnectionError):
        fn.setup()
    fn.teardown()  # must not raise on the attributes setup never set
    opened = list(order[:order.index(failing)])
    assert fakes.world.opened == opened
    assert sorted(fakes.world.closed) == sorted(opened)


def test_teardown_closes_every_client_even_when_one_close_fails(fakes: Fakes, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Any) -> None:
        raise OSError("connection already gone")

    monkeypatch.setattr(fakes_module.FakeRecorder, "close", refuse)
    fn = stage_fn("download", fakes)
    fn.setup()
    fn.teardown()
    assert sorted(fakes.world.closed) == ["audio_store", "database", "publisher"]


# -- the real factory --------------------------------------------------------------------------------------------------------


def test_the_real_clients_are_built_from_the_config_without_connecting() -> None:
    clients = StageClients(job_config())
    opened = [clients.database(), clients.audio_store(max_pool=4), clients.recorder(), clients.scoring(pool_size=2)]
    try:
        database, store, recorder, scoring = opened
        assert database.url == "postgresql://nobody@127.0.0.1:9/none"
        assert (store.bucket, store.client.meta.endpoint_url) == ("unused", "http://127.0.0.1:9")
        assert recorder.retries == 0  # the stage's retry policy is the only one
        assert scoring.base_url == "http://127.0.0.1:9"
    finally:
        for client in opened:
            client.close()


def test_the_pipeline_graph_builds_and_pickles_with_the_default_clients() -> None:
    p = beam.Pipeline()
    build_pipeline(p, job_config())
    stages = {transform.unique_name for transform in p.to_runner_api().components.transforms.values()}
    assert {"EnrichCall", "DownloadToS3", "ScoreCall", "WriteResults", "WriteDeadLetters", "CommitOffsets"} <= stages
