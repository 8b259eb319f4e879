from __future__ import annotations

from datetime import UTC, datetime, timedelta

from avaya_source.windows import Window, WindowPolicy, behind, next_window

S = timedelta(seconds=1)
POLICY = WindowPolicy(lookback=timedelta(seconds=900), settle=timedelta(seconds=30), max_window=timedelta(seconds=600))
NOW = datetime(2026, 11, 25, 12, 0, 0, 700000, tzinfo=UTC)


def test_steady_state_window_overlaps_by_lookback_and_stops_at_settle() -> None:
    checkpoint = NOW - timedelta(seconds=60)
    window = next_window(checkpoint, NOW, NOW, POLICY)
    expected_end = (NOW - timedelta(seconds=30)).replace(microsecond=0)
    assert window == Window(checkpoint.replace(microsecond=0) - timedelta(seconds=900), expected_end)
    assert not behind(window.end, NOW, POLICY)


def test_catch_up_after_downtime_goes_in_bounded_chunks_without_gaps() -> None:
    checkpoint = NOW - timedelta(hours=2)
    chunks = []
    while behind(checkpoint, NOW, POLICY):
        window = next_window(checkpoint, NOW, NOW, POLICY)
        assert window is not None
        assert window.end - window.start <= POLICY.lookback + POLICY.max_window
        assert window.start <= checkpoint  # overlaps what came before: no gap
        chunks.append(window)
        checkpoint = window.end
    assert len(chunks) == 12  # 2 h - 30 s settle in 10-minute chunks
    assert chunks[-1].end == (NOW - POLICY.settle).replace(microsecond=0)


def test_nothing_due_when_checkpoint_is_at_the_settle_edge() -> None:
    assert next_window((NOW - POLICY.settle), NOW, NOW, POLICY) is None


def test_first_window_starts_at_first_start() -> None:
    first = NOW - timedelta(minutes=5)
    window = next_window(None, first, NOW, POLICY)
    assert window is not None and window.start == first.replace(microsecond=0)


def test_split_covers_the_window_exactly() -> None:
    window = Window(NOW.replace(microsecond=0), NOW.replace(microsecond=0) + timedelta(seconds=9))
    left, right = window.split()
    assert left.start == window.start and right.end == window.end
    assert right.start - left.end == S
    one = Window(window.start, window.start)
    assert one.split() is None
