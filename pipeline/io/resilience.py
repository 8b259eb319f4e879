"""Transient versus permanent failures, and holding a call while a dependency is down.

Every error an I/O stage meets is classified (`classify`):

- UNAVAILABLE — the dependency did not answer, or answered "not now": connection refused/reset, timeouts,
  HTTP 408/429/502/503/504, S3 throttling or 5xx, PostgreSQL connection errors, Kafka's retriable errors, and the scoring
  service refusing the pipeline's token (401/403: a configuration error of every call, healed by fixing the token). The call
  is *held*: retried with capped exponential backoff and jitter for as long as the outage budget (`outage_budget_s`, default 15
  minutes). These tries are not counted against the call's own attempts and never dead-letter it before the budget is spent.
- PER_CALL — the dependency answered, but not well, for this call: HTTP 500 or another 5xx not listed above, a truncated body, a
  non-JSON answer. Retried with the stage's own policy (download 1, 2, 4, 8 s x5; scoring 3 with jitter), then dead-lettered.
- PERMANENT — retrying cannot help: any other 4xx (a replay 404 once the recorder answered), bad data, a schema violation.
  Dead-lettered at once.

One `Breaker` per dependency per worker process is shared by every DoFn instance and thread there: the first UNAVAILABLE error
opens it, and while it is open only one call at a time probes the dependency (after a backoff that doubles up to
`outage_backoff_cap_s`); the others wait without sending anything. The first success closes it and every waiting call goes on.
A stage that waits keeps its bundle open, which is how the hold turns into backpressure upstream (docs/pipeline.md).
"""

from __future__ import annotations

import errno
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from core.recorder import AvayaError, AvayaRejected, AvayaUnavailable
from pipeline import metrics as prom
from pipeline.io.scoring_client import AUTH_STATUS, ScoringError, ScoringRejected

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE = "unavailable"
PER_CALL = "per_call"
PERMANENT = "permanent"

RECORDER, S3, SCORING, POSTGRES, KAFKA = "recorder", "s3", "scoring", "postgres", "kafka"

# "Not now" answers: the server (or a proxy in front of it) is there but cannot serve anyone at the moment.
UNAVAILABLE_STATUS = frozenset({408, 429, 502, 503, 504})
_S3_UNAVAILABLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                                   "ServiceUnavailable", "InternalError", "RequestLimitExceeded"})
_NETWORK_ERRNOS = frozenset({errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
                             errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})


class OutageBudgetExceeded(Exception):
    """A dependency stayed unavailable for longer than the outage budget; `cause` is its last error."""

    def __init__(self, dependency: str, waited_s: float, cause: BaseException) -> None:
        super().__init__(f"{dependency} unavailable for {waited_s:.0f} s (outage budget spent); last error: "
                         f"{type(cause).__name__}: {str(cause)[:300]}")
        self.dependency = dependency
        self.waited_s = waited_s
        self.cause = cause


def _http_kind(status: int | None, rejected: bool) -> str:
    if status is None or status in UNAVAILABLE_STATUS:
        return UNAVAILABLE
    return PERMANENT if rejected else PER_CALL


def classify(error: BaseException) -> str:
    """UNAVAILABLE, PER_CALL or PERMANENT (module docstring)."""
    if isinstance(error, OutageBudgetExceeded):
        return PERMANENT
    if isinstance(error, ScoringError) and error.status in AUTH_STATUS:
        # A wrong or missing token fails every call alike: dead-lettering them as bad recordings would empty the stream into
        # the DLQ; held, they are scored as soon as the token is fixed (or dead-lettered when the outage budget is spent).
        return UNAVAILABLE
    if isinstance(error, (AvayaRejected, ScoringRejected)):
        return _http_kind(error.status, rejected=True)
    if isinstance(error, (AvayaUnavailable, ScoringError)):
        return _http_kind(error.status, rejected=False)
    if isinstance(error, AvayaError):  # a body we could not use (truncated, malformed): this call's problem
        return PER_CALL
    kind = _library_kind(error)
    if kind is not None:
        return kind
    if isinstance(error, (ConnectionError, TimeoutError)):
        return UNAVAILABLE
    if isinstance(error, OSError) and error.errno in _NETWORK_ERRNOS:
        return UNAVAILABLE
    return PERMANENT


def _library_kind(error: BaseException) -> str | None:
    """The classification of psycopg2, botocore, kafka-python and requests errors; None for anything else."""
    import botocore.exceptions
    import kafka.errors
    import psycopg2
    import requests

    if isinstance(error, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        return UNAVAILABLE
    if isinstance(error, psycopg2.Error):
        return PERMANENT
    if isinstance(error, (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return UNAVAILABLE
    if isinstance(error, botocore.exceptions.ClientError):
        response = getattr(error, "response", None) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = response.get("Error", {}).get("Code", "")
        if code in _S3_UNAVAILABLE_CODES or (status is not None and (status >= 500 or status in UNAVAILABLE_STATUS)):
            return UNAVAILABLE
        return PERMANENT
    if isinstance(error, kafka.errors.KafkaError):
        return UNAVAILABLE if getattr(error, "retriable", False) else PERMANENT
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return UNAVAILABLE
    return None


def dependency_of(error: BaseException, default: str) -> str:
    """Which dependency an error came from, when its type says so; else `default`."""
    import botocore.exceptions
    import kafka.errors
    import psycopg2

    if isinstance(error, OutageBudgetExceeded):
        return error.dependency
    if isinstance(error, AvayaError):
        return RECORDER
    if isinstance(error, ScoringError):
        return SCORING
    if isinstance(error, botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError):
        return S3
    if isinstance(error, psycopg2.Error):
        return POSTGRES
    if isinstance(error, kafka.errors.KafkaError):
        return KAFKA
    return default


class Breaker:
    """The state of one dependency in this worker process: closed (up) or open (down since `down_since`)."""

    def __init__(self, name: str, base_s: float = 1.0, cap_s: float = 30.0) -> None:
        self.name = name
        self.base_s = base_s
        self.cap_s = cap_s
        self._cond = threading.Condition()
        self.down_since: float | None = None
        self.failures = 0
        self._next_probe = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.down_since is not None

    def wait_turn(self, deadline: float) -> bool:
        """Return at once while closed; while open, wait until this caller may probe (one at a time) or `deadline`.
        True when the caller took the probe: it must end in succeeded(), failed() or release()."""
        with self._cond:
            while self.down_since is not None:
                now = time.monotonic()
                if now >= deadline:
                    return False
                if not self._probing and now >= self._next_probe:
                    self._probing = True
                    return True
                wake = min(deadline, self._next_probe if not self._probing else now + 1.0)
                self._cond.wait(timeout=max(0.01, wake - now))
            return False

    def release(self) -> None:
        """Give the probe back untried (the attempt failed on another dependency before reaching this one)."""
        with self._cond:
            self._probing = False
            self._cond.notify_all()

    def succeeded(self) -> None:
        with self._cond:
            if self.down_since is not None:
                log.warning("%s is available again after %.1f s (%d failed tries)", self.name,
                            time.monotonic() - self.down_since, self.failures)
            self.down_since = None
            self.failures = 0
            self._probing = False
            self._cond.notify_all()
        prom.DEPENDENCY_UP.labels(self.name).set(1)

    def failed(self, error: BaseException, cap_s: float | None = None) -> None:
        with self._cond:
            now = time.monotonic()
            if self.down_since is None:
                self.down_since = now
                log.warning("%s is unavailable (%s: %s); holding calls that need it and retrying", self.name,
                            type(error).__name__, str(error)[:200])
            self.failures += 1
            delay = min(cap_s or self.cap_s, self.base_s * 2 ** min(self.failures - 1, 16))
            # Equal jitter: never much sooner than the backoff, and workers restarted together do not probe in step.
            self._next_probe = max(self._next_probe, now + delay / 2 + random.uniform(0, delay / 2))
            self._probing = False
            self._cond.notify_all()
        prom.DEPENDENCY_UP.labels(self.name).set(0)
        prom.DEPENDENCY_FAILURES.labels(self.name).inc()


_BREAKERS: dict[str, Breaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker(name: str) -> Breaker:
    """The process-wide breaker of one dependency."""
    with _BREAKERS_LOCK:
        if name not in _BREAKERS:
            _BREAKERS[name] = Breaker(name)
        return _BREAKERS[name]


@dataclass(frozen=True)
class RetryPolicy:
    """How one call is tried.

    attempts/backoff: the stage's own policy for PER_CALL errors (backoff(n) = the wait after the n-th failed attempt).
    budget_s/cap_s: how long UNAVAILABLE errors are held and the longest wait between two probes.
    """

    attempts: int = 1
    backoff: Callable[[int], float] = lambda attempt: 0.0
    budget_s: float = 900.0
    cap_s: float = 30.0


def call_with_policy(attempt: Callable[[], T], policy: RetryPolicy, dependencies: Sequence[str],
                     on_error: Callable[[BaseException, str, int], None] | None = None) -> T:
    """Run `attempt()` until it succeeds, holding it through outages of `dependencies` (the first is the default culprit).

    Raises the last error (PERMANENT, or PER_CALL with the attempts used up) or OutageBudgetExceeded. `on_error(error, kind,
    attempt_number)` sees every failure (for logs and counters).
    """
    used = 0
    outage_started: float | None = None
    held_on: str | None = None  # the dependency this call is counted as held on (the gauge calls_held)
    try:
        while True:
            deadline = (outage_started or time.monotonic()) + policy.budget_s
            probing = {name for name in dependencies if breaker(name).wait_turn(deadline)}
            try:
                result = attempt()
            except Exception as error:
                kind = classify(error)
                culprit = dependency_of(error, dependencies[0])
                _settle(dependencies, probing, culprit)
                if on_error is not None:
                    on_error(error, kind, used + 1)
                if kind == UNAVAILABLE:
                    breaker(culprit).failed(error, policy.cap_s)
                    now = time.monotonic()
                    outage_started = outage_started or now
                    if held_on is None:
                        held_on = culprit
                        prom.CALLS_HELD.labels(culprit).inc()
                    if now - outage_started >= policy.budget_s:
                        raise OutageBudgetExceeded(culprit, now - outage_started, error) from error
                    continue
                if culprit in probing or breaker(culprit).is_open:
                    breaker(culprit).succeeded()  # it answered: up, whatever it said about this call
                outage_started = None
                used += 1
                if kind == PERMANENT or used >= policy.attempts:
                    raise
                time.sleep(policy.backoff(used))
                continue
            for name in dependencies:
                if name in probing or breaker(name).is_open:
                    breaker(name).succeeded()
            return result
    finally:
        if held_on is not None:
            prom.CALLS_HELD.labels(held_on).dec()


def _settle(dependencies: Sequence[str], probing: set[str], culprit: str) -> None:
    """After a failure on `culprit`: the dependencies used before it answered (up); the probes of those after it, never
    reached, are given back. `dependencies` is in the order an attempt uses them."""
    reached = True
    for name in dependencies:
        if name == culprit:
            reached = False
            continue
        if reached and (name in probing or breaker(name).is_open):
            breaker(name).succeeded()
        elif not reached and name in probing:
            breaker(name).release()


def hold(dependency: str, action: Callable[[], T], budget_s: float, cap_s: float) -> T:
    """`action()` retried through outages of `dependency`; any other error is raised at once (a sink's writes)."""
    return call_with_policy(action, RetryPolicy(attempts=1, budget_s=budget_s, cap_s=cap_s), (dependency,))
