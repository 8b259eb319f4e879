"""Which startedat window the poller asks for next: pure functions of the checkpoint and the clock, so they are unit-tested."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

ONE_SECOND = timedelta(seconds=1)


@dataclass(frozen=True)
class Window:
    """Inclusive [start, end] at one-second resolution, the ACR between-operator's semantics."""

    start: datetime
    end: datetime

    def __str__(self) -> str:
        return f"[{self.start.isoformat()} .. {self.end.isoformat()}]"

    def split(self) -> tuple[Window, Window] | None:
        """Two halves that together cover this window exactly (bounds are inclusive seconds); None if it is one second."""
        seconds = int((self.end - self.start).total_seconds())
        if seconds < 1:
            return None
        middle = self.start + timedelta(seconds=seconds // 2)
        return Window(self.start, middle), Window(middle + ONE_SECOND, self.end)


def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


@dataclass(frozen=True)
class WindowPolicy:
    lookback: timedelta  # re-read this much before the checkpoint: a call is listed only once it has ended
    settle: timedelta  # never ask about the last few seconds: recordings there may not be searchable yet
    max_window: timedelta  # catch-up chunk: how far past the checkpoint one poll may reach


def next_window(checkpoint_to: datetime | None, first_start: datetime, now: datetime, policy: WindowPolicy) -> Window | None:
    """The next window after `checkpoint_to` (or from `first_start` when there is no checkpoint), or None if nothing is due.

    The window starts `lookback` before the checkpoint and ends at the earlier of `now - settle` and `checkpoint + max_window`,
    so after downtime the poller catches up in bounded chunks and each chunk still overlaps the previous one by the look-back.
    """
    limit = floor_second(now - policy.settle)
    if checkpoint_to is None:
        start = floor_second(first_start)
        base = start
    else:
        base = floor_second(checkpoint_to)
        start = base - policy.lookback
    end = min(limit, base + policy.max_window)
    if end <= base:
        return None
    return Window(start, end)


def behind(checkpoint_to: datetime | None, now: datetime, policy: WindowPolicy) -> bool:
    """True while the checkpoint trails `now - settle` by more than a second: keep polling chunks without waiting."""
    if checkpoint_to is None:
        return True
    return floor_second(now - policy.settle) - floor_second(checkpoint_to) > ONE_SECOND
