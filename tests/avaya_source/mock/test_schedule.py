from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

from avaya_source.mock.schedule import Schedule, ScheduleConfig
from avaya_source.records import CALL_ID_PATTERN

START = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
FAR = START + timedelta(days=2)


def test_same_seed_same_calls_and_extension_does_not_change_the_past() -> None:
    config = ScheduleConfig(seed=7, start=START, calls_per_minute=6, count=300, multi_inum_ratio=0.3)
    whole = Schedule(config).all_until(FAR)
    stepwise = Schedule(config)
    stepwise.started_between(START, START + timedelta(minutes=5))  # plan a little first, then the rest
    assert stepwise.all_until(FAR) == whole
    assert Schedule(ScheduleConfig(seed=8, start=START, count=300)).all_until(FAR) != whole


def test_contacts_with_several_inums_share_switchcallid_and_follow_each_other() -> None:
    segments = Schedule(ScheduleConfig(seed=3, start=START, count=400, multi_inum_ratio=0.3)).all_until(FAR)
    contacts: dict[str, list] = {}
    for segment in segments:
        assert CALL_ID_PATTERN.match(segment.inum)
        contacts.setdefault(segment.contact_id, []).append(segment)
    assert len(contacts) == 400
    assert len({s.inum for s in segments}) == len(segments)
    multi = [sorted(parts, key=lambda s: s.part) for parts in contacts.values() if len(parts) > 1]
    assert 0.2 < len(multi) / len(contacts) < 0.4
    assert {len(parts) for parts in multi} == {2, 3}
    for parts in multi:
        assert len({p.switch_call_id for p in parts}) == 1
        for earlier, later in zip(parts, parts[1:], strict=False):
            assert later.started_at > earlier.ended_at  # hold/transfer gap between the inums
        if parts[0].kind == "hold":
            assert len({p.agent_id for p in parts}) == 1


def test_durations_follow_the_real_distribution() -> None:
    segments = Schedule(ScheduleConfig(seed=5, start=START, count=1500, multi_inum_ratio=0.0)).all_until(FAR)
    durations = [s.duration_s for s in segments]
    assert 85 < statistics.median(durations) < 130
    assert min(durations) >= 0.7 and max(durations) <= 520


def test_arrival_rate_and_visibility_after_end_plus_delay() -> None:
    schedule = Schedule(ScheduleConfig(seed=9, start=START, calls_per_minute=30, availability_delay_s=5))
    hour = schedule.started_between(START, START + timedelta(hours=1))
    contacts = {s.contact_id for s in hour}
    assert 1600 < len(contacts) < 2000  # 30/min Poisson over an hour
    segment = hour[0]
    assert not schedule.visible(segment, segment.ended_at)
    assert not schedule.visible(segment, segment.ended_at + timedelta(seconds=4.9))
    assert schedule.visible(segment, segment.ended_at + timedelta(seconds=5))
