"""Stages that batch their database and Kafka writes per bundle and run their I/O concurrently under a per-process bound."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, TypeVar

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.utils.windowed_value import WindowedValue

from pipeline import metrics as prom
from pipeline.io.resilience import UNAVAILABLE, RetryPolicy, call_with_policy, hold
from pipeline.model import DeadLetter

log = logging.getLogger(__name__)
T = TypeVar("T")
_SEMAPHORES: dict[str, threading.BoundedSemaphore] = {}
_SEMAPHORES_LOCK = threading.Lock()


def process_bound(name: str, size: int) -> threading.BoundedSemaphore:
    """One semaphore per stage per worker process: the concurrency bound holds across every DoFn instance and bundle thread."""
    with _SEMAPHORES_LOCK:
        if name not in _SEMAPHORES:
            _SEMAPHORES[name] = threading.BoundedSemaphore(size)
        return _SEMAPHORES[name]


def close_quietly(owner: object, *attributes: str) -> None:
    """Close each of `owner`'s clients that exists. Teardown runs after a setup that may have failed half-way, so an attribute
    can be missing; one close failing must neither hide the others nor fail the teardown."""
    for name in attributes:
        client = getattr(owner, name, None)
        if client is None:
            continue
        try:
            client.close()
        except Exception as error:  # teardown is best effort: the worker is going away either way
            log.warning("closing %s.%s failed: %s", type(owner).__name__, name, error)


def view_write_failed(view: str, what: str, error: BaseException) -> None:
    """A view's write that failed for good (a refusal such as AccessDenied, or an outage past its budget) is logged, counted
    (`view_write_failures_total{view}`) and skipped. A view is derived from scoring_result, which has every call: failing the
    bundle instead would make the runner retry it forever, or fail the job, and stop the scoring of every call with it."""
    prom.VIEW_WRITE_FAILURES.labels(view).inc()
    log.error("%s: writing %s failed for good, skipped (the calls are in scoring_result): %s: %s", view, what,
              type(error).__name__, error)


@dataclass
class Held:
    element: Any
    timestamp: Any
    window: Any
    work: Future | None = None


class BatchingDoFn(beam.DoFn):
    """process() starts each element's I/O (bounded) and emits the elements whose I/O has finished; finish_bundle() waits for
    the rest, writes their batch, then emits them.

    Streaming out of a bundle: a stage with per-element `work` does not hold the whole bundle until its slowest element is
    done. Each process() call passes on the elements finished by then (`complete` on that sub-batch, then emit), and once
    `2 × concurrency` elements are in flight it waits for the first to finish: the stage after it (fused into the same
    bundle) starts on a call while the others are still downloading or scoring. A stage without `work` (a pure batch write)
    writes what it holds when an element arrives and the oldest held one has waited `flush_after_s`, so the results of a
    long bundle are written (and published) as they come instead of at its end. Measured with a burst of 230 calls arriving
    at once (docs/performance.md): before, every call of the burst waited for the last one at each stage.

    Subclasses implement `work(element)` (runs on the pool, each I/O attempt inside `with self.io_slot():`) and
    `complete(held) -> [(tag, value, held)]`, where tag None is the main output. An element is emitted only after `complete`
    returned, i.e. after its batch was written. Subclasses open their clients in setup() and name them in `owned_clients`;
    teardown closes those that exist. They keep their `StageClients` as `self.clients`: its config carries the outage budget.

    A batch write runs inside `held(dependency, action)`: while PostgreSQL or Kafka is unavailable it is retried, and the
    bundle stays open, for up to the outage budget (pipeline/io/resilience.py); only then does the bundle fail.

    A bundle that fails (an I/O error escaping `complete`, a worker lost) is retried by the runner as a whole: every element
    is processed again, its I/O repeated. That is safe because no element is emitted before the batch write that holds it
    returned, and the writes are idempotent: database writes are upserts that never move a call's status backwards, S3 puts
    overwrite the same key. Kafka publishes are not deduplicated: a retried bundle may publish some results again (consumers
    key by call_id and must tolerate repeats), and offsets are committed downstream only for elements emitted after their
    writes.
    """

    concurrency = 1
    flush_after_s = 1.0  # a batch write stage writes what it holds once its oldest element has waited this long
    bound_name = ""
    owned_clients: tuple[str, ...] = ()

    def setup(self) -> None:
        # More threads than the bound: an element waiting out a retry backoff holds a thread, never an I/O slot.
        self._pool = ThreadPoolExecutor(max_workers=4 * max(1, self.concurrency), thread_name_prefix=type(self).__name__)
        self._bound = process_bound(self.bound_name or type(self).__name__, max(1, self.concurrency))

    def teardown(self) -> None:
        # The pool first: no work may still be using a client when it is closed.
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        close_quietly(self, *self.owned_clients)

    def start_bundle(self) -> None:
        self._held: list[Held] = []
        self._held_since = 0.0

    def work(self, element: Any) -> Any:
        return None

    def complete(self, held: list[Held]) -> list[tuple[str | None, Any, Held]]:
        raise NotImplementedError

    def held(self, dependency: str, action: Any) -> Any:
        """`action()` retried through an outage of `dependency` for up to the job's outage budget."""
        config = self.clients.config
        return hold(dependency, action, config.outage_budget_s, config.outage_backoff_cap_s)

    def attempted(self, subject: str, action: Callable[[int], T], attempts: int, backoff: Callable[[int], float],
                  dependencies: tuple[str, ...], letter: Callable[[BaseException, int], DeadLetter]) -> T | DeadLetter:
        """`action(attempt_number)`, each attempt inside an I/O slot, under the stage's per-call policy (attempts, backoff(n))
        and the job's outage budget; every failure logged and counted on `self.failures`. Out of tries or refused: the dead
        letter `letter(error, attempts made)`, which carries the call's reason to the DLQ."""
        config = self.clients.config
        policy = RetryPolicy(attempts=attempts, backoff=backoff, budget_s=config.outage_budget_s,
                             cap_s=config.outage_backoff_cap_s)
        tries = 0

        def attempt() -> T:
            nonlocal tries
            tries += 1
            with self.io_slot():
                return action(tries)

        def on_error(error: BaseException, kind: str, attempt_number: int) -> None:
            self.failures.inc()
            counted = "held" if kind == UNAVAILABLE else f"attempt {attempt_number}/{attempts}"
            log.warning("%s failed (%s, %s): %s", subject, kind, counted, error)

        try:
            return call_with_policy(attempt, policy, dependencies, on_error)
        except Exception as error:  # classified and out of tries
            return letter(error, tries)

    def io_slot(self) -> threading.BoundedSemaphore:
        """Hold this around one I/O attempt (not around a retry's sleep), so failing elements cannot starve healthy ones."""
        return self._bound

    def process(self, element: Any, timestamp: Any = beam.DoFn.TimestampParam,
                window: Any = beam.DoFn.WindowParam) -> Iterator[Any]:
        held = Held(element, timestamp, window)
        if type(self).work is BatchingDoFn.work:
            if not self._held:
                self._held_since = time.monotonic()
            self._held.append(held)
            if time.monotonic() - self._held_since >= self.flush_after_s:
                held_now, self._held = self._held, []
                yield from self._emit(held_now)
            return
        held.work = self._pool.submit(self.work, element)
        self._held.append(held)  # in a stage with work, every held element has its future
        in_flight = [item.work for item in self._held if not item.work.done()]
        if len(in_flight) >= 2 * max(1, self.concurrency):
            wait(in_flight, return_when=FIRST_COMPLETED)
        finished: list[Held] = []
        still: list[Held] = []
        for item in self._held:  # one pass: an element finishing meanwhile is in exactly one of the two lists
            (finished if item.work.done() else still).append(item)
        self._held = still
        if finished:
            yield from self._emit(finished)

    def finish_bundle(self) -> Iterator[Any]:
        held, self._held = self._held, []
        if held:
            yield from self._emit(held)

    def _emit(self, held: list[Held]) -> Iterator[Any]:
        """`complete` the batch (its writes returned), then its outputs, each in its own element's timestamp and window."""
        for tag, value, origin in self.complete(held):
            windowed = WindowedValue(value, origin.timestamp, [origin.window])
            yield windowed if tag is None else pvalue.TaggedOutput(tag, windowed)
