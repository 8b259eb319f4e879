"""A pace for the re-score: at most `rate` calls a second, spaced evenly, with no burst.

The live pipeline and the re-score share the scoring service. Spacing the re-score's requests 1/rate apart (rather than letting
a bucket of tokens go at once) keeps the service's queue short at every moment, so a live call waits behind at most the one
re-score request in flight. The pace is per process: the bounded re-score runs its DoFns in its own process, one pace for all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_PACES: dict[tuple[str, float], Pace] = {}
_PACES_LOCK = threading.Lock()


class Pace:
    """`wait()` returns no sooner than 1/rate seconds after the previous caller's turn (thread-safe).

    Args:
        rate: calls per second (> 0).
        clock, sleep: time.monotonic and time.sleep, replaced in unit tests.
    """

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 calls/s, got {rate}")
        self.interval = 1.0 / rate
        self.clock = clock
        self.sleep = sleep
        self._next = float("-inf")
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Block until this caller's turn; returns the moment (clock) of the turn."""
        with self._lock:
            now = self.clock()
            # An idle spell earns no credit: the next turn is now, not a catch-up burst.
            turn = max(now, self._next)
            self._next = turn + self.interval
        if turn > now:
            self.sleep(turn - now)
        return turn


def process_pace(name: str, rate: float) -> Pace:
    """One pace per name and rate per process, shared by every DoFn instance and bundle (and every run of the process)."""
    with _PACES_LOCK:
        key = (name, rate)
        if key not in _PACES:
            _PACES[key] = Pace(rate)
        return _PACES[key]


def most_in_any_window(moments: list[float], window_s: float = 1.0) -> int:
    """The most `moments` that fall in any half-open window [t, t + window_s): how a rate limit is checked from a log."""
    ordered = sorted(moments)
    most, first = 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= window_s:
            first += 1
        most = max(most, last - first + 1)
    return most
