"""CommitOffsets with an in-memory consumer (tests/pipeline/transforms/fakes.py): contiguous per-partition commits, control
records stepped over, and the done-offsets state on a deterministic coder. test_commit.py runs the same on the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline.model import SourcePosition
from pipeline.transforms import commit
from pipeline.transforms.commit import CommitOffsets, _CommitFn
from tests.pipeline.transforms.fakes import FakeClients, World, drop_world, new_world
from tests.pipeline.transforms.test_stages_unit import job_config

TOPIC = "calls.raw"
# One partition, three committed transactions of three records: data at 0-2, 4-6, 8-10; commit markers at 3, 7 and 11.
DATA_OFFSETS = {0, 1, 2, 4, 5, 6, 8, 9, 10}
LOG_END = 12


HOUSEKEEPING_DELAY_S = 0.2
WAVE_S = 0.5  # test-clock time between waves: more than the delay, so housekeeping runs after each


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeClients, World]]:
    # The DoFn runs in this process: a shorter housekeeping delay keeps each test to a few seconds.
    monkeypatch.setattr(commit, "HOUSEKEEPING_DELAY_S", HOUSEKEEPING_DELAY_S)
    token, world = new_world()
    world.add_partition(TOPIC, 0, DATA_OFFSETS, LOG_END)
    try:
        yield FakeClients(job_config(), token), world
    finally:
        drop_world(token)


def run(clients: FakeClients, offsets_in_arrival_order: list[list[int]]) -> None:
    # The DirectRunner's test clock starts at 0 while the DoFn arms its timers in wall time: move the clock to just past now
    # (the margin covers the pipeline's start; until wall time catches up, housekeeping runs at every chance, harmlessly).
    stream = TestStream().advance_processing_time(round(time.time() + 1.5, 3))
    for wave in offsets_in_arrival_order:
        stream = stream.add_elements([SourcePosition(TOPIC, 0, offset) for offset in wave]).advance_processing_time(WAVE_S)
    stream = stream.advance_processing_time(WAVE_S).advance_watermark_to_infinity()
    p = TestPipeline(runner="BundleBasedDirectRunner")
    p.options.view_as(StandardOptions).streaming = True
    with p:
        _ = p | stream | CommitOffsets("unused:9", "unit", consumer_factory=clients.offset_consumer)


def test_commits_past_markers_when_every_data_record_is_done(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    run(clients, [[1, 0, 2, 5], [4, 6, 10], [8, 9]])
    assert world.group_offsets[(TOPIC, 0)] == LOG_END  # every data record done, the three commit markers stepped over
    committed = [offset for _, _, offset in world.commits]
    assert committed == sorted(committed), "commits only move forward"


def test_a_missing_data_record_holds_the_commit(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    run(clients, [[0, 1, 2, 4], [6, 8, 9, 10]])  # 5 never finishes
    assert world.group_offsets[(TOPIC, 0)] == 5


def test_resumes_from_the_group_offset_and_ignores_replayed_earlier_offsets(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    world.group_offsets[(TOPIC, 0)] = 4
    run(clients, [[1, 2, 4, 5], [6]])  # 1 and 2 were committed before the restart
    assert world.group_offsets[(TOPIC, 0)] == 8
    assert all(offset > 4 for _, _, offset in world.commits)


def test_done_offsets_are_kept_with_a_deterministic_coder() -> None:
    coder = _CommitFn.DONE.coder
    assert coder.is_deterministic()
    assert coder.decode(coder.encode([5, 9, 2**40])) == [5, 9, 2**40]


def test_teardown_after_a_failed_setup(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    world.broken_factories.add("offset_consumer")
    fn = _CommitFn("unit", clients.offset_consumer)
    with pytest.raises(ConnectionError):
        fn.setup()
    fn.teardown()
    assert world.closed == []
