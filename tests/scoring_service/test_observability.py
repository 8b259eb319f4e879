"""The request-arrival counter: POST /v1/score requests are counted when their headers arrive, before the app runs (so a
caller's arrival rate can be read from /metrics), and nothing else is counted."""

from __future__ import annotations

import asyncio
from typing import Any

from scoring_service import observability


def _arrivals() -> float:
    return observability.REGISTRY.get_sample_value("ccas_scoring_score_requests_received_total") or 0.0


def _request(method: str, path: str, seen: list[float]) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(_arrivals())  # what the counter says while the request is being handled
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    middleware = observability.RequestTiming(app)
    asyncio.run(middleware({"type": "http", "method": method, "path": path}, receive, send))


def test_score_requests_are_counted_as_they_arrive_and_nothing_else() -> None:
    before = _arrivals()
    seen: list[float] = []
    _request("POST", "/v1/score", seen)
    assert seen == [before + 1], "counted before the route ran"
    _request("GET", "/v1/scorecard", seen)
    _request("POST", "/v1/score/batch", seen)
    _request("GET", "/v1/score", seen)
    assert _arrivals() == before + 1
