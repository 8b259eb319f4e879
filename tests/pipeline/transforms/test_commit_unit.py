"""CommitOffsets with an in-memory consumer (tests/pipeline/transforms/fakes.py): contiguous per-partition commits, control
records stepped over, and the done-offsets state on a deterministic coder. test_commit.py runs the same on the real broker."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream

from pipeline.io.resilience import OutageBudgetExceeded, breaker
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


def run(clients: FakeClients, offsets_in_arrival_order: list[list[int]], *, recover: bool = False) -> None:
    # The DirectRunner's test clock starts at 0 while the DoFn arms its timers in wall time: move the clock to just past now
    # (the margin covers the pipeline's start; until wall time catches up, housekeeping runs at every chance, harmlessly).
    stream = TestStream().advance_processing_time(round(time.time() + 1.5, 3))
    for wave in offsets_in_arrival_order:
        stream = stream.add_elements([SourcePosition(TOPIC, 0, offset) for offset in wave]).advance_processing_time(WAVE_S)
    stream = stream.advance_processing_time(WAVE_S).advance_watermark_to_infinity()
    p = TestPipeline(runner="BundleBasedDirectRunner")
    p.options.view_as(StandardOptions).streaming = True
    with p:
        _ = p | stream | CommitOffsets("unused:9", "unit", consumer_factory=clients.offset_consumer,
                                       database_factory=clients.database if recover else None)


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


def test_a_consumer_that_cannot_open_is_held_then_reported(fakes: tuple[FakeClients, World]) -> None:
    from kafka import TopicPartition

    clients, world = fakes
    world.broken_factories.add("offset_consumer")
    fn = _CommitFn("unit", clients.offset_consumer, outage_budget_s=0.0)
    fn.setup()  # opens nothing: a broker that is down while the worker starts must not fail the setup
    with pytest.raises(OutageBudgetExceeded) as raised:
        fn._start_offset(TopicPartition(TOPIC, 0))
    assert raised.value.dependency == "kafka"
    fn.teardown()
    assert world.closed == []
    breaker("kafka").succeeded()  # the breaker is per process: leave it closed for the tests that follow


@pytest.fixture
def no_housekeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The housekeeping timer is never armed: what a runner that lost it would look like."""
    monkeypatch.setattr(_CommitFn, "_arm", lambda self, *args, **kwargs: None)


@pytest.mark.usefixtures("no_housekeeping")
def test_a_committed_offset_on_a_marker_is_stepped_over_without_the_timer(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    world.group_offsets[(TOPIC, 0)] = 3  # the group stopped on the first transaction's commit marker
    run(clients, [[4, 5, 6], [8, 9, 10]])
    # 3 and 7 are markers, stepped over as elements arrive; 11 (the trailing marker) is the timer's job: 11 is past the
    # last data record (10), which is what "nothing stranded" needs.
    assert world.group_offsets[(TOPIC, 0)] == 11


@pytest.mark.usefixtures("no_housekeeping")
def test_restart_from_a_committed_offset_mid_partition(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    world.group_offsets[(TOPIC, 0)] = 5  # a restart in the middle of the second transaction
    run(clients, [[8, 6], [5]])  # replayed out of order; 7 is a marker
    assert world.group_offsets[(TOPIC, 0)] == 9
    assert [offset for _, _, offset in world.commits] == [9]  # nothing committed before 5 arrived, never backwards


@pytest.mark.usefixtures("no_housekeeping")
def test_a_data_record_in_flight_is_asked_about_once_and_holds_the_commit(fakes: tuple[FakeClients, World]) -> None:
    clients, world = fakes
    run(clients, [[0, 1], [2, 5], [6], [8]])  # 4 is a data record still in flight
    assert world.group_offsets[(TOPIC, 0)] == 4  # 3 (a marker) stepped over; 4 holds the rest


class _State:
    def __init__(self, value: int | None = None) -> None:
        self.value = value

    def read(self) -> int | None:
        return self.value

    def write(self, value: int) -> None:
        self.value = value

    def clear(self) -> None:
        self.value = None


class _Timer:
    def __init__(self) -> None:
        self.set_at: list[object] = []

    def set(self, when: object) -> None:
        self.set_at.append(when)


def test_a_lost_housekeeping_timer_is_armed_again_by_the_next_element() -> None:
    fn = _CommitFn("unit", lambda: None)
    now_ms = int(time.time() * 1000)
    pending, timer = _State(now_ms - 1000), _Timer()
    fn._arm(pending, timer)
    assert timer.set_at == [], "a timer armed a second ago is still pending: not re-armed (that would starve it)"
    lost = _State(now_ms - (commit.HOUSEKEEPING_DELAY_S + commit.TIMER_LOST_AFTER_S + 5) * 1000)
    fn._arm(lost, timer)
    assert len(timer.set_at) == 1 and lost.value is not None and lost.value >= now_ms


@pytest.mark.parametrize("status,expected", [("SCORED", 5), ("ERROR", 0)])
def test_a_position_the_runner_lost_is_passed_only_when_its_call_is_scored(
        fakes: tuple[FakeClients, World], monkeypatch: pytest.MonkeyPatch, status: str, expected: int) -> None:
    clients, world = fakes
    monkeypatch.setattr(commit, "STRANDED_AFTER_S", 0)
    world.record_calls[(TOPIC, 0, 0)] = "c0"
    world.statuses["c0"] = status
    run(clients, [[1, 2, 4], [], [], []], recover=True)  # offset 0's position never arrives
    assert world.group_offsets.get((TOPIC, 0), 0) == expected  # SCORED: past 0-4 (3 a marker); else it keeps waiting


def test_the_lost_position_of_a_watermark_marker_never_holds_the_commit(
        fakes: tuple[FakeClients, World], monkeypatch: pytest.MonkeyPatch) -> None:
    clients, world = fakes
    monkeypatch.setattr(commit, "STRANDED_AFTER_S", 0)
    world.record_calls[(TOPIC, 0, 0)] = "~watermark"  # the poller's marker: no call, so no status to wait for
    run(clients, [[1, 2, 4], [], [], []], recover=True)  # offset 0's position never arrives
    assert world.group_offsets.get((TOPIC, 0), 0) == 5


@pytest.mark.parametrize("second_status,expected", [("SCORED", LOG_END), ("ERROR", 1)])
def test_several_lost_positions_are_passed_in_one_recovery_up_to_the_first_call_not_scored(
        fakes: tuple[FakeClients, World], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        second_status: str, expected: int) -> None:
    clients, world = fakes
    monkeypatch.setattr(commit, "STRANDED_AFTER_S", 0)
    for offset, status in ((0, "SCORED"), (1, second_status), (2, "SCORED")):
        world.record_calls[(TOPIC, 0, offset)] = f"c{offset}"
        world.statuses[f"c{offset}"] = status
    run(clients, [[4, 5, 6, 8, 9, 10], [], [], []], recover=True)  # the positions of 0, 1 and 2 never arrive
    # All SCORED: past 0-2, marker 3, 4-6, marker 7, 8-10 and the last marker. Offset 1 not SCORED: past 0 only.
    assert world.group_offsets.get((TOPIC, 0), 0) == expected
    recoveries = [r.getMessage() for r in caplog.records if "never reached the commit stage" in r.getMessage()]
    assert recoveries and recoveries[0].split(": ")[1].startswith("3 position(s)" if expected == LOG_END else "1 position(s)")


def test_the_lost_position_of_a_partitions_last_record_is_passed_when_its_call_is_scored(
        fakes: tuple[FakeClients, World], monkeypatch: pytest.MonkeyPatch) -> None:
    clients, world = fakes
    monkeypatch.setattr(commit, "STRANDED_AFTER_S", 0)
    world.record_calls[(TOPIC, 0, 10)] = "c10"
    world.statuses["c10"] = "SCORED"
    run(clients, [[0, 1, 2, 4, 5, 6, 8, 9], [], [], []], recover=True)  # no later offset will ever be done
    assert world.group_offsets.get((TOPIC, 0), 0) == LOG_END
