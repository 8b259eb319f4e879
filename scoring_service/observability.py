"""Prometheus metrics of the scoring service, on a registry of its own (so importing twice in tests never clashes)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry()

REQUEST_SECONDS = Histogram(
    "ccas_scoring_request_seconds",
    "Scoring API request latency",
    ["route", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
AUDIO_SECONDS = Counter("ccas_scoring_audio_seconds", "Seconds of audio scored", registry=REGISTRY)
CALLS = Counter("ccas_scoring_calls", "Calls processed", ["scorable"], registry=REGISTRY)
ERRORS = Counter("ccas_scoring_errors", "Requests answered with an error, by type", ["type"], registry=REGISTRY)
# Counted when a request's headers arrive, before its body streams in: the arrival rate callers impose (a re-score's --rate),
# and, less the answered ones, what is in flight.
SCORE_REQUESTS_RECEIVED = Counter("ccas_scoring_score_requests_received", "POST /v1/score requests received (at their headers)",
                                  registry=REGISTRY)


class RequestTiming:
    """Pure ASGI middleware (not BaseHTTPMiddleware: that one wraps errors raised while the body streams in an ExceptionGroup)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        if scope.get("method") == "POST" and scope.get("path") == "/v1/score":
            SCORE_REQUESTS_RECEIVED.inc()
        status = {"code": 500}

        async def send_with_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The route template, never the raw path: label values stay bounded.
            path = getattr(scope.get("route"), "path", "unmatched")
            REQUEST_SECONDS.labels(route=path, status=str(status["code"])).observe(time.perf_counter() - started)
