"""Error classification, the per-dependency breaker, and the retry policy that combines the stage's attempts with the outage
budget (pipeline/io/resilience.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from core.recorder import AvayaBadResponse, AvayaRejected, AvayaUnavailable
from pipeline.io import resilience
from pipeline.io.resilience import (
    PER_CALL,
    PERMANENT,
    UNAVAILABLE,
    OutageBudgetExceeded,
    RetryPolicy,
    breaker,
    call_with_policy,
    classify,
    dependency_of,
)
from pipeline.io.scoring_client import ScoringAuthFailed, ScoringRejected, ScoringTimeout, ScoringUnavailable


@pytest.fixture(autouse=True)
def fresh_breakers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(resilience, "_BREAKERS", {})
    yield


def _client_error(status: int, code: str) -> Exception:
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def _errors() -> list[tuple[str, Exception, str, str]]:
    import botocore.exceptions
    import kafka.errors
    import psycopg2
    import requests

    return [
        ("replay refused", AvayaUnavailable("refused", None), UNAVAILABLE, "recorder"),
        ("replay 503", AvayaUnavailable("HTTP 503", 503), UNAVAILABLE, "recorder"),
        ("replay 429", AvayaRejected("HTTP 429", 429), UNAVAILABLE, "recorder"),
        ("replay 500", AvayaUnavailable("HTTP 500", 500), PER_CALL, "recorder"),
        ("replay truncated", AvayaBadResponse("truncated", "ended early"), PER_CALL, "recorder"),
        ("replay 404", AvayaRejected("HTTP 404", 404), PERMANENT, "recorder"),
        ("replay 401", AvayaRejected("HTTP 401", 401), PERMANENT, "recorder"),
        ("scoring refused", ScoringUnavailable("unreachable"), UNAVAILABLE, "scoring"),
        ("scoring timeout", ScoringTimeout("timed out"), UNAVAILABLE, "scoring"),
        ("scoring 502", ScoringUnavailable("HTTP 502", 502), UNAVAILABLE, "scoring"),
        ("scoring 500", ScoringUnavailable("HTTP 500", 500), PER_CALL, "scoring"),
        ("scoring 408", ScoringRejected("HTTP 408", 408), UNAVAILABLE, "scoring"),
        ("scoring 422", ScoringRejected("HTTP 422", 422), PERMANENT, "scoring"),
        # The service refusing the pipeline's token: a configuration error of every call, held until the token is fixed.
        ("scoring 401", ScoringAuthFailed("HTTP 401", 401), UNAVAILABLE, "scoring"),
        ("scoring 403", ScoringAuthFailed("HTTP 403", 403), UNAVAILABLE, "scoring"),
        ("scoring 401 as a rejection", ScoringRejected("HTTP 401", 401), UNAVAILABLE, "scoring"),
        ("scoring 403 as a rejection", ScoringRejected("HTTP 403", 403), UNAVAILABLE, "scoring"),
        ("s3 down", botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3"), UNAVAILABLE, "s3"),
        ("s3 read timeout", botocore.exceptions.ReadTimeoutError(endpoint_url="http://s3"), UNAVAILABLE, "s3"),
        ("s3 slow down", _client_error(503, "SlowDown"), UNAVAILABLE, "s3"),
        ("s3 500", _client_error(500, "InternalError"), UNAVAILABLE, "s3"),
        ("s3 access denied", _client_error(403, "AccessDenied"), PERMANENT, "s3"),
        ("s3 no such key", _client_error(404, "NoSuchKey"), PERMANENT, "s3"),
        ("postgres down", psycopg2.OperationalError("connection refused"), UNAVAILABLE, "postgres"),
        ("postgres constraint", psycopg2.IntegrityError("check constraint"), PERMANENT, "postgres"),
        ("kafka timeout", kafka.errors.KafkaTimeoutError("expired"), UNAVAILABLE, "kafka"),
        ("kafka no leader", kafka.errors.NotLeaderForPartitionError(), UNAVAILABLE, "kafka"),
        ("kafka too large", kafka.errors.MessageSizeTooLargeError(), PERMANENT, "kafka"),
        ("raw requests", requests.ConnectionError("reset"), UNAVAILABLE, "other"),
        ("socket refused", ConnectionRefusedError(111, "refused"), UNAVAILABLE, "other"),
        ("bad data", KeyError("model_version"), PERMANENT, "other"),
        ("budget spent", OutageBudgetExceeded("s3", 901, ConnectionError()), PERMANENT, "s3"),
    ]


@pytest.mark.parametrize("name,error,kind,dependency", _errors(), ids=[case[0] for case in _errors()])
def test_every_external_error_is_classified(name: str, error: Exception, kind: str, dependency: str) -> None:
    assert classify(error) == kind
    assert dependency_of(error, "other") == dependency


def test_unavailability_is_held_without_using_the_calls_own_attempts() -> None:
    outcomes = iter([ScoringUnavailable("refused")] * 5 + [ScoringUnavailable("HTTP 500", 500), "scored"])
    seen: list[str] = []

    def attempt() -> str:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(attempts=2, budget_s=30, cap_s=0.01)
    result = call_with_policy(attempt, policy, ("scoring",), on_error=lambda error, kind, n: seen.append(f"{kind}:{n}"))
    assert result == "scored"
    assert seen == ["unavailable:1"] * 5 + ["per_call:1"]
    assert not breaker("scoring").is_open


def test_per_call_errors_use_up_the_attempts_then_raise() -> None:
    calls = []

    def attempt() -> None:
        calls.append(1)
        raise AvayaUnavailable("HTTP 500", 500)

    with pytest.raises(AvayaUnavailable):
        call_with_policy(attempt, RetryPolicy(attempts=3, budget_s=30, cap_s=0.01), ("recorder",))
    assert len(calls) == 3


def test_an_outage_longer_than_the_budget_raises_with_the_dependency() -> None:
    def attempt() -> None:
        raise ScoringTimeout("timed out")

    with pytest.raises(OutageBudgetExceeded) as raised:
        call_with_policy(attempt, RetryPolicy(attempts=3, budget_s=0.3, cap_s=0.05), ("s3", "scoring"))
    assert raised.value.dependency == "scoring" and raised.value.waited_s >= 0.3
    assert breaker("scoring").is_open and not breaker("s3").is_open


def test_while_open_only_one_caller_probes_and_the_others_wait() -> None:
    gate = breaker("recorder")
    gate.failed(ConnectionError("down"), cap_s=0.05)
    in_attempt = 0
    most_at_once = 0
    lock = threading.Lock()
    down_until = time.monotonic() + 0.4

    def attempt() -> str:
        nonlocal in_attempt, most_at_once
        down = time.monotonic() < down_until
        with lock:
            in_attempt += down
            most_at_once = max(most_at_once, in_attempt)
        try:
            time.sleep(0.02)
            if down:
                raise AvayaUnavailable("refused", None)
            return "ok"
        finally:
            with lock:
                in_attempt -= down

    results: list[str] = []

    def worker() -> None:
        results.append(call_with_policy(attempt, RetryPolicy(budget_s=30, cap_s=0.05), ("recorder",)))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == ["ok"] * 8
    assert most_at_once == 1, "while the recorder was down, one probe at a time"
    assert gate.failures == 0 and not gate.is_open


def test_a_probe_taken_on_a_dependency_not_reached_is_given_back() -> None:
    recorder, s3 = breaker("recorder"), breaker("s3")
    s3.failed(ConnectionError("down"), cap_s=0.01)
    time.sleep(0.02)
    tries = iter([AvayaUnavailable("refused", None), "stored"])

    def attempt() -> str:
        outcome = next(tries)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert call_with_policy(attempt, RetryPolicy(budget_s=5, cap_s=0.01), ("recorder", "s3")) == "stored"
    assert not recorder.is_open and not s3.is_open
