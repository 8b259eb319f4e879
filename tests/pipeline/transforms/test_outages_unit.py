"""The I/O stages through dependency outages, with the in-memory fakes: an unavailable dependency holds the call (retried, not
counted against its attempts, never dead-lettered within the outage budget); a refusal dead-letters it at once; an outage
longer than the budget dead-letters a per-call stage's call with the reason. The same faults on the real stack: tests/faults/."""

from __future__ import annotations

from collections.abc import Iterator

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from core.recorder import AvayaRejected
from pipeline.io import resilience
from pipeline.transforms.download import DownloadToS3
from pipeline.transforms.enrich import EnrichCall
from pipeline.transforms.score import ScoreCall
from tests.pipeline.transforms.fakes import FOREVER
from tests.pipeline.transforms.test_stages_unit import (
    ATTEMPTS,
    RUNNER,
    Fakes,
    enriched,
    event,
    failure,
    io_stages,
    offsets,
    stored,
    wav,
)
from tests.pipeline.transforms.test_stages_unit import fakes as fakes  # noqa: F401 - the fixture

OUTAGE = ATTEMPTS + 2  # more failed tries than the stage's own attempts: only a hold gets through


@pytest.fixture(autouse=True)
def fresh_breakers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # The breakers are per process; each test starts with every dependency up.
    monkeypatch.setattr(resilience, "_BREAKERS", {})
    yield


def test_enrich_holds_its_calls_while_the_database_and_kafka_are_down(fakes: Fakes) -> None:
    world = fakes.world
    world.outages.update({"database": OUTAGE, "publisher": OUTAGE})
    with TestPipeline(runner=RUNNER) as p:
        calls, dead, _ = p | beam.Create([event("1101", 1), event("1102", 2)]) | EnrichCall(fakes.config, fakes.clients)
        assert_that(calls | beam.Map(lambda c: c.call_id), equal_to(["1101", "1102"]), label="enriched")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.outage_hits == {"database": OUTAGE, "publisher": OUTAGE}
    assert world.statuses == {"1101": "PENDING_DOWNLOAD", "1102": "PENDING_DOWNLOAD"}
    # At least once: a batch whose flush failed is sent again whole.
    assert {v["call_id"] for v in world.topic("calls.enriched")} == {"1101", "1102"}


def test_download_holds_a_call_through_recorder_and_s3_outages_without_counting_them(fakes: Fakes) -> None:
    world = fakes.world
    world.recordings["1201"] = wav(1.0)
    world.outages.update({"recorder": OUTAGE, "audio_store": OUTAGE})
    with TestPipeline(runner=RUNNER) as p:
        audio, dead = p | beam.Create([enriched("1201", 1)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(audio | beam.Map(lambda a: a.call_id), equal_to(["1201"]), label="stored")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.outage_hits == {"recorder": OUTAGE, "audio_store": OUTAGE}
    assert world.statuses == {} and sorted(world.assets) == ["1201"]


def test_a_replay_404_is_dead_at_once(fakes: Fakes) -> None:
    world = fakes.world
    world.fail_replay("1301", FOREVER, lambda: AvayaRejected("HTTP 404 for command=replay", 404))
    with TestPipeline(runner=RUNNER) as p:
        _, dead = p | beam.Create([enriched("1301", 1)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(failure(dead, "Dead"), equal_to([("1301", "download", "AvayaRejected", 1)]), label="dead")
    assert world.replays == {"1301": 1}


def test_a_recorder_answering_503_holds_the_call_until_it_recovers(fakes: Fakes) -> None:
    from core.recorder import AvayaUnavailable

    world = fakes.world
    world.recordings["1401"] = wav(1.0)
    world.fail_replay("1401", OUTAGE, lambda: AvayaUnavailable("HTTP 503", 503))
    with TestPipeline(runner=RUNNER) as p:
        audio, dead = p | beam.Create([enriched("1401", 1)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(audio | beam.Map(lambda a: a.call_id), equal_to(["1401"]), label="stored")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.replays == {"1401": OUTAGE + 1}


def test_an_outage_longer_than_the_budget_dead_letters_the_call_with_the_reason(fakes: Fakes) -> None:
    world = fakes.world
    world.recordings["1501"] = wav(1.0)
    world.outages["recorder"] = 10**9  # never comes back within the test's budget (one second)
    with TestPipeline(runner=RUNNER) as p:
        _, dead = p | beam.Create([enriched("1501", 1)]) | DownloadToS3(fakes.config, fakes.clients)
        assert_that(dead | beam.Map(lambda d: (d.call_id, d.error_type, d.error.startswith("recorder unavailable for"))),
                    equal_to([("1501", "OutageBudgetExceeded", True)]), label="dead with the reason")


def test_score_holds_its_call_while_the_scoring_service_is_down(fakes: Fakes) -> None:
    world = fakes.world
    audio = stored(world, "1601", 1)
    world.outages["scoring"] = OUTAGE
    with TestPipeline(runner=RUNNER) as p:
        results, dead = p | beam.Create([audio]) | ScoreCall(fakes.config, fakes.clients)
        assert_that(results | beam.Map(lambda s: s.call_id), equal_to(["1601"]), label="scored")
        assert_that(dead, equal_to([]), label="no dead letters")
    assert world.outage_hits == {"scoring": OUTAGE}


def test_every_message_leaves_the_stages_exactly_once_through_outages_of_every_dependency(fakes: Fakes) -> None:
    world = fakes.world
    for call_id in ("1701", "1702", "1703"):
        world.recordings[call_id] = wav(1.0)
    world.fail_replay("1703", FOREVER, lambda: AvayaRejected("HTTP 404 for command=replay", 404))
    world.outages.update({"database": 4, "publisher": 4, "recorder": 2, "audio_store": 2, "scoring": 2})
    inputs = [event("1701", 1), event("1702", 2), event("1703", 3)]
    with TestPipeline(runner=RUNNER) as p:
        finished, _, dead = io_stages(p | beam.Create(inputs), fakes)
        assert_that(offsets(finished, "Offsets"), equal_to([1, 2, 3]), label="each offset once")
        assert_that(offsets(dead, "Dead"), equal_to([3]), label="only the refused recording is dead")
    assert world.statuses == {"1701": "SCORED", "1702": "SCORED", "1703": "ERROR"}
    assert sum(world.outage_hits.values()) == 14
    assert {v["call_id"] for v in world.topic("scoring.results")} == {"1701", "1702"}
    assert [v["call_id"] for v in world.topic("audio.ready.dlq")] in (["1703"], ["1703", "1703"])
