"""DedupPerCall: one pass per call_id, remembered in per-key state until an event-time timer expires it (TTL, default 24 h).

The poller's overlapping windows and restarts may publish a call twice; only the first message per call goes on. A requeued
message (ccas dlq requeue) carries a higher `requeue_count` and passes again, by design.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.coders import VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Duration

from pipeline.model import CallEvent

DUPLICATE = "duplicate"


class _DedupFn(beam.DoFn):
    """(call_id, CallEvent) → CallEvent the first time per call (per requeue); duplicates → TaggedOutput(duplicate, source)."""

    # Highest (requeue_count + 1) let through for this call; absent = never seen (or expired).
    SEEN = ReadModifyWriteStateSpec("seen", VarIntCoder())
    EXPIRY = TimerSpec("expiry", TimeDomain.WATERMARK)

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s
        self.passed = Metrics.counter(self.__class__, "calls_unique")
        self.duplicates = Metrics.counter(self.__class__, "calls_duplicate")
        self.expired = Metrics.counter(self.__class__, "keys_expired")

    def process(self, element: tuple[str, CallEvent], timestamp: Any = beam.DoFn.TimestampParam,
                seen: Any = beam.DoFn.StateParam(SEEN), expiry: Any = beam.DoFn.TimerParam(EXPIRY)) -> Iterator[Any]:
        _, event = element
        marker = event.requeue_count + 1
        previous = seen.read()
        if previous is not None and marker <= previous:
            self.duplicates.inc()
            yield pvalue.TaggedOutput(DUPLICATE, event.source)
            return
        seen.write(marker)
        expiry.set(timestamp + Duration(seconds=self.ttl_s))
        self.passed.inc()
        yield event

    @on_timer(EXPIRY)
    def expire(self, seen: Any = beam.DoFn.StateParam(SEEN)) -> Iterator[Any]:
        seen.clear()
        self.expired.inc()
        return iter(())


@beam.typehints.with_input_types(CallEvent)
class DedupPerCall(beam.PTransform):
    """CallEvent → (unique CallEvent, SourcePosition of each duplicate dropped).

    Args:
        ttl_s: how long (event time) a call_id is remembered.
    """

    def __init__(self, ttl_s: int = 24 * 3600) -> None:
        super().__init__()
        self.ttl_s = ttl_s

    def expand(self, events: Any) -> tuple[Any, Any]:
        results = (
            events
            | "KeyByCallId" >> beam.Map(lambda event: (event.call_id, event)).with_input_types(CallEvent)
            .with_output_types(tuple[str, CallEvent])
            | "FirstPerCall" >> beam.ParDo(_DedupFn(self.ttl_s)).with_input_types(tuple[str, CallEvent])
            .with_output_types(CallEvent).with_outputs(DUPLICATE, main="unique")
        )
        return results.unique, results[DUPLICATE]
