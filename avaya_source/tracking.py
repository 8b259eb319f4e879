"""Recordings seen still in progress: which start times to search again, and what one poll changes in the tracking table.

Windows are on start time and reach back only the look-back, so a call longer than that is never listed again by them once it
ends. Every recording listed without a duration is tracked (in_progress_recording) and its start second is searched again on
every poll until it has ended, or until it is older than the maximum call age, when it is dropped loudly (counter + WARNING).
Pure functions of the tracked rows, the answers and the clock, so every rule is unit-tested without a recorder or database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from avaya_source.records import Recording
from avaya_source.windows import Window, floor_second

# Tracked starts closer together than this share one search: one request for a minute of starts costs less than one request
# per call, and the answer (every recording started in that minute) stays small.
RECHECK_SPAN = timedelta(seconds=60)


@dataclass(frozen=True)
class Tracked:
    """A row of in_progress_recording."""

    call_id: str
    started_at: datetime
    first_seen_at: datetime
    last_seen_at: datetime
    switch_call_id: str | None = None


@dataclass
class TrackingChange:
    """What one poll does to the tracking table, written in the same DB transaction as its dedup rows and checkpoint."""

    seen: list[Recording] = field(default_factory=list)  # still in progress: insert, or refresh last_seen_at
    seen_at: datetime | None = None
    finished: set[str] = field(default_factory=set)  # tracked calls that have ended (published, known or rejected): delete
    expired: list[Tracked] = field(default_factory=list)  # older than the maximum call age and still not ended: delete

    @property
    def dropped(self) -> set[str]:
        return self.finished | {row.call_id for row in self.expired}


def recheck_windows(tracked: Iterable[Tracked], before: datetime, span: timedelta = RECHECK_SPAN) -> list[Window]:
    """Windows covering the start second of every tracked call that started before `before` (the current window covers the
    rest); starts within `span` of a window's first start share it."""
    starts = sorted({floor_second(row.started_at) for row in tracked if floor_second(row.started_at) < floor_second(before)})
    windows: list[Window] = []
    for start in starts:
        if windows and start - windows[-1].start <= span:
            windows[-1] = Window(windows[-1].start, start)
        else:
            windows.append(Window(start, start))
    return windows


def plan(
    tracked: Iterable[Tracked],
    listed: Iterable[Recording],
    ended_ids: set[str],
    now: datetime,
    max_age: timedelta,
) -> TrackingChange:
    """The tracking change of one poll.

    `listed` is every recording the poll's answers listed (main window and re-checks); `ended_ids` the call_ids among them that
    have ended, whether published now, already known or rejected: their rows go. A recording in progress is tracked unless it
    started more than `max_age` before `now`; such a recording, and a tracked one that has neither ended nor is younger than
    `max_age`, is expired (whether the recorder still lists it or not).
    """
    oldest = now - max_age
    rows = {row.call_id: row for row in tracked}
    change = TrackingChange(seen_at=now)
    in_progress: dict[str, Recording] = {}
    for recording in listed:
        if recording.call_id not in ended_ids and not recording.ended:
            in_progress.setdefault(recording.call_id, recording)
    change.finished = {call_id for call_id in rows if call_id in ended_ids}
    for call_id, recording in in_progress.items():
        if recording.started_at >= oldest:
            change.seen.append(recording)
        else:
            row = rows.get(call_id) or Tracked(call_id, recording.started_at, now, now, recording.switch_call_id or None)
            change.expired.append(Tracked(row.call_id, row.started_at, row.first_seen_at, now, row.switch_call_id))
    for call_id, row in rows.items():
        if call_id not in ended_ids and call_id not in in_progress and row.started_at < oldest:
            change.expired.append(row)  # no longer listed at all: deleted on the recorder, or the search misses it
    return change


def reconcile_floor(tracked: Iterable[Tracked], lookback: timedelta) -> datetime | None:
    """The earliest call end a tracked call published by an unrecorded transaction can have, or None with nothing tracked.

    A call listed in progress at `last_seen_at` had not ended earlier than the recorder's listing delay before then; the
    look-back exceeds that delay (docs/avaya.md), so reading the topic back from `last_seen_at - lookback` finds it.
    """
    seen = [row.last_seen_at for row in tracked]
    return min(seen) - lookback if seen else None
