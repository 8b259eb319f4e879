"""The re-score's pace: calls spaced 1/rate apart, no burst after an idle spell, one pace per process; and the check the
acceptance test applies to what the scoring service saw (most calls in any one-second window)."""

from __future__ import annotations

import threading

import pytest

from pipeline.pacing import Pace, most_in_any_window, process_pace


class FakeClock:
    """A clock that moves only when the pace sleeps (or the test advances it)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_turns_are_spaced_one_over_rate_apart() -> None:
    clock = FakeClock()
    pace = Pace(4.0, clock=clock, sleep=clock.sleep)
    turns = [pace.wait() for _ in range(9)]
    assert turns == pytest.approx([100.0 + 0.25 * n for n in range(9)])
    assert most_in_any_window(turns) == 4


def test_an_idle_spell_earns_no_burst() -> None:
    clock = FakeClock()
    pace = Pace(2.0, clock=clock, sleep=clock.sleep)
    pace.wait()
    clock.now += 60  # nothing to do for a minute
    turns = [pace.wait() for _ in range(4)]
    assert turns == pytest.approx([160.0, 160.5, 161.0, 161.5])


def test_threads_share_one_pace() -> None:
    clock_lock = threading.Lock()
    clock = FakeClock()

    def sleep(seconds: float) -> None:
        with clock_lock:
            clock.sleep(seconds)

    pace = Pace(10.0, clock=clock, sleep=sleep)
    turns: list[float] = []
    threads = [threading.Thread(target=lambda: turns.append(pace.wait())) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(turns) == pytest.approx([100.0 + 0.1 * n for n in range(20)]), "every turn distinct, 0.1 s apart"


def test_real_clock_keeps_the_rate() -> None:
    pace = Pace(50.0)
    turns = [pace.wait() for _ in range(26)]
    assert turns[-1] - turns[0] == pytest.approx(0.5, abs=0.01)
    assert most_in_any_window(turns, 0.2) <= 11


def test_one_pace_per_name_and_rate_in_a_process() -> None:
    assert process_pace("test-a", 3.0) is process_pace("test-a", 3.0)
    assert process_pace("test-a", 3.0) is not process_pace("test-a", 4.0)
    assert process_pace("test-a", 3.0) is not process_pace("test-b", 3.0)


def test_a_rate_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rate must be > 0"):
        Pace(0)


@pytest.mark.parametrize(("moments", "most"), [
    ([], 0),
    ([0.0], 1),
    ([0.0, 0.99, 1.0, 1.5, 1.98], 4),  # [0.99, 1.99) holds four
    ([0.0, 0.5, 1.0, 1.5], 2),  # half-open: 1.0 is not in [0.0, 1.0)
    ([0.0, 1.0, 2.0, 3.0], 1),
    ([5.0, 5.0, 5.0, 7.0], 3),
])
def test_most_in_any_window(moments: list[float], most: int) -> None:
    assert most_in_any_window(moments) == most
