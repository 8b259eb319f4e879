"""BatchingDoFn: a stage with per-element work passes finished elements on while its bundle is still running; a pure batch
write keeps one batch per bundle."""

from __future__ import annotations

import threading
import time
from typing import Any

from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from pipeline.transforms._bundles import BatchingDoFn, Held

WAIT_S = 10.0  # only reached if the code under test is broken


class _Worker(BatchingDoFn):
    """`work` returns the element upper-cased; an element named in `gated` waits for `release`."""

    concurrency = 1  # in flight before process() waits: 2

    def __init__(self, gated: set[str]) -> None:
        self.gated = gated
        self.release = threading.Event()
        self.batches: list[list[str]] = []

    def work(self, element: str) -> str:
        if element in self.gated:
            assert self.release.wait(WAIT_S), "never released"
        return element.upper()

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        self.batches.append([item.element for item in held])
        return [(None, item.work.result(), item) for item in held]


class _Writer(BatchingDoFn):
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        self.batches.append([item.element for item in held])
        return [(None, item.element, item) for item in held]


def _process(fn: BatchingDoFn, element: str, seconds: int) -> list[WindowedValue]:
    return list(fn.process(element, timestamp=Timestamp(seconds), window=GlobalWindow()))


def test_finished_elements_are_emitted_before_the_slowest_of_their_bundle() -> None:
    fn = _Worker(gated={"slow"})
    fn.setup()
    try:
        fn.start_bundle()
        during = _process(fn, "slow", 1) + _process(fn, "fast-a", 2) + _process(fn, "fast-b", 3)
        # The slow call is still in flight, yet both fast ones have left the stage, each with its own timestamp.
        assert sorted(v.value for v in during) == ["FAST-A", "FAST-B"]
        assert {v.value: v.timestamp for v in during} == {"FAST-A": Timestamp(2), "FAST-B": Timestamp(3)}
        fn.release.set()
        at_end = list(fn.finish_bundle())
        assert [(v.value, v.timestamp) for v in at_end] == [("SLOW", Timestamp(1))]
        emitted = [element for batch in fn.batches for element in batch]
        assert sorted(emitted) == ["fast-a", "fast-b", "slow"]  # each element completed exactly once
    finally:
        fn.release.set()
        fn.teardown()


def test_two_equal_elements_are_two_outputs() -> None:
    fn = _Worker(gated=set())
    fn.setup()
    try:
        fn.start_bundle()
        outputs = _process(fn, "same", 1) + _process(fn, "same", 1) + list(fn.finish_bundle())
        assert [v.value for v in outputs] == ["SAME", "SAME"]
    finally:
        fn.teardown()


def test_a_batch_write_stage_writes_one_batch_per_bundle_when_its_elements_come_together() -> None:
    fn = _Writer()
    fn.setup()
    try:
        fn.start_bundle()
        during = [v for i, name in enumerate(("a", "b", "c")) for v in _process(fn, name, i)]
        assert during == []
        assert [v.value for v in fn.finish_bundle()] == ["a", "b", "c"]
        assert fn.batches == [["a", "b", "c"]]
    finally:
        fn.teardown()


def test_a_batch_write_stage_writes_what_it_holds_once_the_oldest_has_waited() -> None:
    fn = _Writer()
    fn.flush_after_s = 0.05
    fn.setup()
    try:
        fn.start_bundle()
        assert _process(fn, "a", 1) == []
        time.sleep(0.1)  # the results of a long bundle arrive spread out: "a" has waited past flush_after_s when "b" comes
        assert [v.value for v in _process(fn, "b", 2)] == ["a", "b"]
        assert _process(fn, "c", 3) == []
        assert [v.value for v in fn.finish_bundle()] == ["c"]
        assert fn.batches == [["a", "b"], ["c"]]
    finally:
        fn.teardown()
