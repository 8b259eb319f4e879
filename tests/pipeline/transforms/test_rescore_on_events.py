"""The streaming job's re-score on model.version.updated (RescoreOnModelVersion), with the fakes: which events count, what a
selection emits, that a failed selection costs the re-score and not the job, and that the branch feeds nothing of the live
graph. `LoadStoredAudio` takes (call_id, target) elements from either graph."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipeline.build import build_pipeline
from pipeline.io.records import KafkaRecord
from pipeline.transforms.rescore import (
    MODEL_VERSION_TOPIC,
    LoadStoredAudio,
    RescoreOnModelVersion,
    _ParseModelVersionEventFn,
    _SelectCallsToRescoreFn,
    announced_version,
    rescore_group,
)
from tests.pipeline.transforms.fakes import FakeClients, World, drop_world, new_world
from tests.pipeline.transforms.test_rescore import row
from tests.pipeline.transforms.test_stages_unit import RUNNER, job_config, wav

TARGET = "sc2.0.0+fx1.1.0"
OLD = "sc1.1.0+fx1.1.0"
LOOKBACK_S = 7 * 24 * 3600


def event(offset: int, value: Any) -> KafkaRecord:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    return KafkaRecord(MODEL_VERSION_TOPIC, 0, offset, TARGET.encode(), body, 1_764_777_600_000 + offset)


def announcement(offset: int, version: str = TARGET) -> KafkaRecord:
    return event(offset, {"model_version": version, "scoring_url": "https://scoring:8443",
                          "event_ts": "2026-12-03T15:00:00+00:00", "ingest_uuid": "0b7e1f57-6c1e-4c38-9a53-1f0f5e4f2f0a"})


BAD_EVENTS = [event(1, b"not json"), event(2, b"[1, 2]"), event(3, {"model_version": TARGET}),
              event(4, {"model_version": "", "event_ts": "2026-12-03T15:00:00+00:00",
                        "ingest_uuid": "0b7e1f57-6c1e-4c38-9a53-1f0f5e4f2f0a"}), event(5, None)]


@pytest.fixture
def world() -> Iterator[tuple[FakeClients, World]]:
    token, world = new_world()
    world.model_version = TARGET
    try:
        yield FakeClients(job_config(), token), world
    finally:
        drop_world(token)


def store_call(world: World, call_id: str, started_ago: timedelta, version: str = OLD, **changes: Any) -> None:
    """A scored call of `version` with its audio in the fake S3."""
    body = wav()
    key = f"raw/{call_id}.wav"
    world.objects[key] = body
    audio = {"s3_key": key, "sha256": hashlib.sha256(body).hexdigest(), "size_bytes": len(body)}
    world.stored_calls[call_id] = row(call_id=call_id, started_at=datetime.now(UTC) - started_ago, model_version=version,
                                      **{**audio, **changes})


def counter(result: Any, name: str) -> int:
    return sum(metric.committed or 0 for metric in result.metrics().query(MetricsFilter().with_name(name))["counters"])


def test_an_event_is_its_model_version_and_anything_else_is_refused() -> None:
    assert announced_version(announcement(0, "sc9.0.0+fx1.1.0")) == "sc9.0.0+fx1.1.0"
    for bad in BAD_EVENTS:
        with pytest.raises(ValueError):
            announced_version(bad)


def test_the_calls_of_the_lookback_not_at_the_service_version_are_selected_once_per_bundle_of_events(
        world: tuple[FakeClients, World]) -> None:
    clients, fake = world
    store_call(fake, "1001", timedelta(hours=1))
    store_call(fake, "1002", timedelta(days=6))
    store_call(fake, "1003", timedelta(hours=2), version=TARGET)  # already at the service's version
    store_call(fake, "1004", timedelta(days=8))  # before the look-back
    p = TestPipeline(runner=RUNNER)
    selected = (p | beam.Create([announcement(0, "sc0.0.1+fx0"), *BAD_EVENTS, announcement(6)])
                | beam.ParDo(_ParseModelVersionEventFn()) | beam.ParDo(_SelectCallsToRescoreFn(clients, LOOKBACK_S)))
    assert_that(selected, equal_to([("1001", TARGET), ("1002", TARGET)]))
    result = p.run()
    result.wait_until_finish()
    assert counter(result, "model_version_events_rejected") == len(BAD_EVENTS)
    assert counter(result, "model_version_events") == 2
    # The target is the service's version, whatever an event announced: both events are one selection.
    assert [call for call in fake.db_calls if call[0] == "rescore_candidates"] == [("rescore_candidates", ("1001", "1002"))]


def test_a_selection_that_cannot_reach_the_scoring_service_gives_up_the_rescore_not_the_job(
        world: tuple[FakeClients, World]) -> None:
    clients, fake = world
    store_call(fake, "2001", timedelta(hours=1))
    fake.outages["scoring"] = 10_000  # every try finds it down, past the (1 s) outage budget
    p = TestPipeline(runner=RUNNER)
    selected = (p | beam.Create([announcement(0)]) | beam.ParDo(_ParseModelVersionEventFn())
                | beam.ParDo(_SelectCallsToRescoreFn(clients, LOOKBACK_S)))
    assert_that(selected, equal_to([]))
    result = p.run()
    result.wait_until_finish()
    assert counter(result, "rescore_selections_failed") == 1


def test_stored_audio_is_loaded_per_target_and_a_call_done_meanwhile_is_dropped(world: tuple[FakeClients, World]) -> None:
    clients, fake = world
    store_call(fake, "3001", timedelta(hours=1))
    store_call(fake, "3002", timedelta(hours=1), version=TARGET)  # re-scored since it was selected
    store_call(fake, "3003", timedelta(hours=1), s3_key=None, audio_status=None)
    with TestPipeline(runner=RUNNER) as p:
        audio, dead = p | beam.Create([("3001", TARGET), ("3002", TARGET), ("3003", "sc3.0.0+fx1.1.0")]) \
            | LoadStoredAudio(clients)
        assert_that(audio | beam.Map(lambda a: (a.call_id, a.rescore)), equal_to([("3001", True)]), label="audio")
        assert_that(dead | beam.Map(lambda d: (d.call_id, d.payload["rescore_model_version"])),
                    equal_to([("3003", "sc3.0.0+fx1.1.0")]), label="dead")
    assert sorted(call for call in fake.db_calls if call[0] == "rescore_audio") == \
        [("rescore_audio", ("3001", "3002")), ("rescore_audio", ("3003",))]


def test_an_event_rescores_the_lookback_to_the_service_version_and_writes_results_and_dead_letters(
        world: tuple[FakeClients, World]) -> None:
    clients, fake = world
    config = dataclasses.replace(job_config(), rescore_rate=1000.0, rescore_lookback_s=LOOKBACK_S)
    store_call(fake, "4001", timedelta(hours=1))
    store_call(fake, "4002", timedelta(days=1))
    store_call(fake, "4003", timedelta(days=1), s3_key=None, audio_status="MISSING")
    with TestPipeline(runner=RUNNER) as p:
        _ = p | RescoreOnModelVersion(config, clients, read_events=beam.Create([announcement(0), event(1, b"{")]))
    assert {call_id: result.model_version for call_id, result in fake.scores.items()} == {"4001": TARGET, "4002": TARGET}
    assert all(result.end_to_end_ms is None for result in fake.scores.values())
    assert sorted(v["call_id"] for v in fake.topic("scoring.results")) == ["4001", "4002"]
    [letter] = fake.topic("scoring.results.dlq")
    assert (letter["call_id"], letter["source_topic"], letter["error_type"]) == ("4003", "rescore", "AudioMissing")


def _stages(config: Any) -> dict[str, Any]:
    p = beam.Pipeline()
    build_pipeline(p, config)
    return dict(p.to_runner_api().components.transforms)


def test_the_branch_is_a_graph_of_its_own_and_can_be_turned_off() -> None:
    transforms = _stages(job_config())
    branch = {tid for tid, t in transforms.items() if t.unique_name.startswith("RescoreOnModelVersion/")}
    names = {transforms[tid].unique_name for tid in branch}
    assert {"RescoreOnModelVersion/ScoreCall", "RescoreOnModelVersion/WriteResults",
            "RescoreOnModelVersion/WriteDeadLetters", "RescoreOnModelVersion/Reshuffle"} <= names
    branch_outputs = {pc for tid in branch for pc in transforms[tid].outputs.values()}
    outside = [t.unique_name for tid, t in transforms.items() if tid not in branch and t.unique_name != "RescoreOnModelVersion"
               and branch_outputs & set(t.inputs.values())]
    assert outside == [], "nothing outside the branch (CommitOffsets, scorecards, export) reads what it makes"
    assert not any(t.unique_name.startswith("RescoreOnModelVersion")
                   for t in _stages(dataclasses.replace(job_config(), rescore_on_events=False)).values())


def test_the_events_group_is_the_jobs_under_the_pipeline_principals_prefix() -> None:
    from ccas.kafka_acls import PIPELINE_GROUP_PREFIX

    assert rescore_group("ccas-pipeline") == "ccas-pipeline-rescore"
    assert rescore_group("ccas-pipeline-eu").startswith(PIPELINE_GROUP_PREFIX)
