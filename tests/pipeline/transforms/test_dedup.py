"""DedupPerCall: first message per call passes, duplicates are reported by position, requeues pass, the TTL timer forgets."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from pipeline.model import CallEvent, SourcePosition
from pipeline.transforms.dedup import DedupPerCall

RUNNER = "BundleBasedDirectRunner"
TTL_S = 3600


def event(call_id: str, offset: int, requeue_count: int = 0) -> CallEvent:
    return CallEvent(call_id, {"call_id": call_id, "requeue_count": requeue_count}, SourcePosition("calls.raw", 0, offset))


def _streaming_pipeline() -> TestPipeline:
    p = TestPipeline(runner=RUNNER)
    p.options.view_as(StandardOptions).streaming = True
    return p


def test_duplicates_are_dropped_and_reported_requeues_pass() -> None:
    stream = (TestStream()
              .add_elements([TimestampedValue(event("a", 0), 100), TimestampedValue(event("b", 1), 100)])
              .add_elements([TimestampedValue(event("a", 2), 200), TimestampedValue(event("a", 3, requeue_count=1), 300)])
              .add_elements([TimestampedValue(event("a", 4, requeue_count=1), 400), TimestampedValue(event("b", 5), 400)])
              .advance_watermark_to_infinity())
    with _streaming_pipeline() as p:
        unique, duplicates = p | stream | DedupPerCall(ttl_s=TTL_S)
        assert_that(unique | "U" >> beam.Map(lambda e: (e.call_id, e.source.offset)), equal_to([("a", 0), ("b", 1), ("a", 3)]),
                    label="unique")
        assert_that(duplicates | "D" >> beam.Map(lambda s: s.offset), equal_to([2, 4, 5]), label="duplicates")


def test_timer_expiry_forgets_the_call_after_the_ttl() -> None:
    stream = (TestStream()
              .add_elements([TimestampedValue(event("a", 0), 1000)])
              .advance_watermark_to(1000 + TTL_S / 2)
              .add_elements([TimestampedValue(event("a", 1), 1000 + TTL_S / 2)])   # within the TTL: duplicate
              .advance_watermark_to(1000 + TTL_S + 1)                               # the expiry timer fires
              .add_elements([TimestampedValue(event("a", 2), 1000 + TTL_S + 2)])   # remembered no longer: passes
              .advance_watermark_to_infinity())
    with _streaming_pipeline() as p:
        unique, duplicates = p | stream | DedupPerCall(ttl_s=TTL_S)
        assert_that(unique | "U" >> beam.Map(lambda e: e.source.offset), equal_to([0, 2]), label="unique")
        assert_that(duplicates | "D" >> beam.Map(lambda s: s.offset), equal_to([1]), label="duplicates")
