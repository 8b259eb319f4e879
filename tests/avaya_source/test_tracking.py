"""Recordings tracked while in progress: the pure rules (tracking.py), then the poller's use of them over fakes of its ports."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest

from avaya_source.metrics import PollerMetrics
from avaya_source.poller import Poller, PollerConfig
from avaya_source.records import Recording
from avaya_source.store import Published
from avaya_source.tracking import Tracked, TrackingChange, plan, recheck_windows, reconcile_floor
from avaya_source.windows import Window, WindowPolicy, next_window
from avaya_source.xmlsafe import SearchPage

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def row(call_id: str, start: float, last_seen: float | None = None) -> Tracked:
    return Tracked(call_id, at(start), at(start + 5), at(last_seen if last_seen is not None else start + 5))


def rec(call_id: str, start: float, duration: float | None) -> Recording:
    return Recording(call_id, at(start), duration, switch_call_id=f"S{call_id}")


# -- pure rules ------------------------------------------------------------------------------------------------------------


def test_recheck_windows_cover_each_tracked_start_second_before_the_window_and_group_nearby_starts() -> None:
    tracked = [row("a", 0.4), row("b", 30), row("c", 60), row("d", 61.9), row("e", 200), row("f", 500)]
    windows = recheck_windows(tracked, before=at(300), span=timedelta(seconds=60))
    assert windows == [Window(at(0), at(60)), Window(at(61), at(61)), Window(at(200), at(200))]
    covered = [r for r in tracked if any(w.start <= r.started_at.replace(microsecond=0) <= w.end for w in windows)]
    assert [r.call_id for r in covered] == ["a", "b", "c", "d", "e"]  # f starts inside the current window
    assert recheck_windows([], before=at(300)) == []


def test_plan_tracks_new_calls_in_progress_and_forgets_tracked_calls_that_ended() -> None:
    now = at(1000)
    tracked = [row("ended", 0), row("still", 10), row("quiet", 20)]
    listed = [rec("ended", 0, 700.0), rec("still", 10, None), rec("new", 900, None), rec("short", 950, 20.0)]
    change = plan(tracked, listed, {"ended", "short"}, now, HOUR)
    assert change.finished == {"ended"}
    assert sorted(r.call_id for r in change.seen) == ["new", "still"]  # inserted, or last_seen_at refreshed
    assert change.seen_at == now and change.expired == []
    assert change.dropped == {"ended"}  # "quiet" is not listed this time but young: kept and searched again


def test_plan_expires_calls_older_than_the_maximum_age_whether_listed_or_not() -> None:
    now = at(4000)
    tracked = [row("listed_old", 0), row("gone_old", 100, last_seen=2000), row("young", 3000)]
    listed = [rec("listed_old", 0, None), rec("untracked_old", 50, None), rec("young", 3000, None)]
    change = plan(tracked, listed, set(), now, HOUR)
    expired = {r.call_id: r for r in change.expired}
    assert set(expired) == {"listed_old", "gone_old", "untracked_old"}
    assert expired["listed_old"].last_seen_at == now and expired["gone_old"].last_seen_at == at(2000)
    assert expired["listed_old"].first_seen_at == at(5)  # the tracked row's history is kept for the log line
    assert [r.call_id for r in change.seen] == ["young"]
    assert change.dropped == {"listed_old", "gone_old", "untracked_old"}
    # An old call that has ended is published, not expired: ending wins over age.
    assert plan(tracked, [rec("listed_old", 0, 3990.0)], {"listed_old"}, now, HOUR).expired[0].call_id == "gone_old"


def test_reconcile_floor_reaches_back_a_look_back_before_the_oldest_sighting() -> None:
    assert reconcile_floor([], timedelta(seconds=900)) is None
    floor = reconcile_floor([row("a", 0, last_seen=500), row("b", 100, last_seen=300)], timedelta(seconds=60))
    assert floor == at(240)


# -- the poller over fakes ----------------------------------------------------------------------------------------------


class FakeRecorder:
    """Search by start second over planned calls; a call is listed in progress (no duration) until `now` passes its end."""

    def __init__(self, calls: dict[str, tuple[float, float]]) -> None:
        self.calls = calls  # inum -> (start, duration) in seconds from T0
        self.now = T0
        self.windows: list[Window] = []

    def search(self, start: datetime, end: datetime, layout: str = "AvayaSegment") -> SearchPage:
        if layout != "AvayaSegment":
            return SearchPage()
        self.windows.append(Window(start, end))
        page = SearchPage()
        for inum, (offset, duration) in sorted(self.calls.items(), key=lambda item: item[1]):
            started = at(offset)
            if start <= started < end + timedelta(seconds=1) and started <= self.now:
                ended = started + timedelta(seconds=duration) <= self.now
                page.recordings.append(rec(inum, offset, duration if ended else None))
                page.result_count += 1
        return page


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[str, Tracked] = {}
        self.ingested: set[str] = set()
        self.check: tuple[datetime, datetime] | None = None

    def checkpoint(self) -> tuple[datetime, datetime] | None:
        return self.check

    def known(self, call_ids) -> set[str]:  # noqa: ANN001
        return set(call_ids) & self.ingested

    def tracked(self) -> list[Tracked]:
        return sorted(self.rows.values(), key=lambda r: r.started_at)

    def commit_window(self, published: list[Published], start: datetime, end: datetime, change: TrackingChange) -> int:
        self.ingested |= {p.call_id for p in published}
        for call_id in change.dropped | {p.call_id for p in published}:
            self.rows.pop(call_id, None)
        for r in change.seen:
            old = self.rows.get(r.call_id)
            self.rows[r.call_id] = Tracked(r.call_id, r.started_at, old.first_seen_at if old else change.seen_at,
                                           change.seen_at)
        if self.check is None or self.check[1] <= end:
            self.check = (start, end)
        return len(published)

    def mark_published(self, published: list[Published]) -> int:
        return 0


class FakePublisher:
    topic = "calls.raw"
    transactional_id = "test"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.watermarks: list[datetime] = []

    def publish(self, events: list[tuple[Recording, dict]], watermark: datetime | None = None) -> None:
        self.sent += [value["call_id"] for _, value in events]
        if watermark is not None:
            self.watermarks.append(watermark)

    def read_back(self, since: datetime) -> list[Published]:
        return []

    def reset(self) -> None:
        pass


def _poller(recorder: FakeRecorder, max_age: timedelta = HOUR) -> tuple[Poller, FakeStore, FakePublisher]:
    policy = WindowPolicy(timedelta(seconds=10), timedelta(seconds=2), timedelta(seconds=30))
    config = PollerConfig(policy, T0, interval_s=1, with_contacts=False, max_call_age=max_age)
    store, publisher = FakeStore(), FakePublisher()
    return Poller(recorder, store, publisher, config, PollerMetrics()), store, publisher  # type: ignore[arg-type]


def _poll_at(poller: Poller, recorder: FakeRecorder, store: FakeStore, seconds: float, monkeypatch) -> None:  # noqa: ANN001
    recorder.now = at(seconds)
    monkeypatch.setattr("avaya_source.poller.datetime", _Clock(at(seconds)))
    window = next_window(store.check[1] if store.check else None, T0, at(seconds), poller.config.policy)
    assert window is not None
    poller.poll_window(window)


class _Clock:
    """`datetime` as the poller module sees it, frozen at one moment."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self, tz=None) -> datetime:  # noqa: ANN001
        return self.moment


def test_a_call_many_look_backs_long_is_tracked_searched_again_and_published_once(monkeypatch) -> None:  # noqa: ANN001
    recorder = FakeRecorder({"long": (5, 120.0), "short": (6, 3.0)})
    poller, store, publisher = _poller(recorder)
    for second in range(12, 200, 4):
        _poll_at(poller, recorder, store, second, monkeypatch)
        if second == 20:
            assert set(store.rows) == {"long"} and publisher.sent == ["short"]
    assert publisher.sent == ["short", "long"]  # exactly once each, `long` 110 s after its window had passed
    assert store.rows == {} and store.ingested == {"short", "long"}
    assert any(w.start == w.end == at(5) for w in recorder.windows)  # its start second, searched again
    assert poller.metrics.value("records_tracked") == 0
    assert poller.metrics.value("records_in_progress_expired_total") == 0


def test_watermark_markers_go_with_the_first_window_then_once_per_interval_of_window_ends(monkeypatch) -> None:  # noqa: ANN001
    recorder = FakeRecorder({"short": (6, 3.0)})
    poller, store, publisher = _poller(recorder)
    poller.config = dataclasses.replace(poller.config, watermark_interval=timedelta(seconds=20))
    for second in range(12, 80, 4):
        _poll_at(poller, recorder, store, second, monkeypatch)
    # Window ends 10, 14, … 74 (each poll 4 s later, 2 s settle): a round at the first, then 20 s of window ends apart.
    assert publisher.watermarks == [at(10), at(30), at(50), at(70)]


def test_a_call_past_the_maximum_age_is_counted_logged_by_inum_and_dropped(monkeypatch, caplog) -> None:  # noqa: ANN001
    recorder = FakeRecorder({"1000000000000077": (5, 7200.0)})
    poller, store, publisher = _poller(recorder, max_age=timedelta(seconds=60))
    _poll_at(poller, recorder, store, 12, monkeypatch)
    assert set(store.rows) == {"1000000000000077"} and poller.metrics.value("records_tracked") == 1
    with caplog.at_level(logging.WARNING, logger="avaya_source.poller"):
        for second in (40, 70, 80):
            _poll_at(poller, recorder, store, second, monkeypatch)
    assert store.rows == {} and publisher.sent == []
    assert poller.metrics.value("records_in_progress_expired_total") == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "inum=1000000000000077" in warnings[0] and "NOT published" in warnings[0]


@pytest.mark.parametrize("seconds", [930, 600])
def test_settings_refuse_a_maximum_age_inside_the_windows_reach(seconds: float) -> None:
    from avaya_source.settings import PollerSettings
    from core.config import ConfigurationError, load

    base = {"avaya_url": "http://r", "kafka_bootstrap": "k:9092", "database_url": "postgresql://db/x", "avaya_user": "u"}
    with pytest.raises(ConfigurationError, match="--max-call-age: .*must exceed --lookback"):
        load(PollerSettings, {**base, "poller_max_call_age": seconds, "poller_lookback": 900, "poller_settle": 30})
    assert load(PollerSettings, base).poller_max_call_age == 14400
    assert load(PollerSettings, {**base, "poller_max_call_age": 931}).poller_max_call_age == 931
