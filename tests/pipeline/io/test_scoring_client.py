"""The pipeline's scoring client (pipeline/io/scoring_client.py): it sends the bearer token, verifies https with the CA file,
and a 401/403 from the service is a configuration error that holds calls (UNAVAILABLE), never a dead letter."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline.clients import StageClients
from pipeline.io import resilience
from pipeline.io.resilience import UNAVAILABLE, RetryPolicy, breaker, call_with_policy, classify
from pipeline.io.scoring_client import ScoringAuthFailed, ScoringClient, ScoringRejected
from pipeline.options import JobConfig

TOKEN = "pipeline-token-0123456789abcdef"


class FakeService:
    """A scoring service on 127.0.0.1 that records each request's Authorization header and answers `status`."""

    def __init__(self) -> None:
        self.statuses: list[int] = []  # answered in order; 200 when empty
        self.authorizations: list[str | None] = []
        self.bodies: list[int] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                service.authorizations.append(self.headers.get("Authorization"))
                service.bodies.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
                status = service.statuses.pop(0) if service.statuses else 200
                body = json.dumps({"call_id": "c", "model_version": "m"} if status == 200 else
                                  {"error": "forbidden", "detail": "invalid token", "status": status}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service() -> Iterator[FakeService]:
    fake = FakeService()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def fresh_breakers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resilience, "_BREAKERS", {})


def _score(client: ScoringClient) -> dict:
    return client.score(call_id="c", agent_id=None, audio=io.BytesIO(b"RIFF" + b"\0" * 96), size=100)


def test_every_request_carries_the_bearer_token(service: FakeService) -> None:
    client = ScoringClient(service.url, token=TOKEN)
    assert _score(client) == {"call_id": "c", "model_version": "m"}
    assert _score(client)["model_version"] == "m"
    assert service.authorizations == [f"Bearer {TOKEN}"] * 2


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_token_is_an_auth_failure_that_is_held_not_dead_lettered(service: FakeService, status: int) -> None:
    service.statuses = [status]
    with pytest.raises(ScoringAuthFailed) as refused:
        _score(ScoringClient(service.url, token="a-wrong-token-of-16+"))
    assert refused.value.status == status and "CCAS_SCORING_TOKEN" in str(refused.value)
    assert not isinstance(refused.value, ScoringRejected), "a rejection would dead-letter the call at once"
    assert refused.value.retryable and classify(refused.value) == UNAVAILABLE


def test_a_call_refused_for_its_token_is_held_and_scored_once_the_token_is_fixed(service: FakeService) -> None:
    # The operator fixes the token while calls are held: the next probe goes through, no attempt of the call was used.
    service.statuses = [401, 403, 403]
    client = ScoringClient(service.url, token=TOKEN)
    kinds: list[str] = []
    policy = RetryPolicy(attempts=1, budget_s=30, cap_s=0.01)
    result = call_with_policy(lambda: _score(client), policy, ("scoring",), on_error=lambda e, kind, n: kinds.append(kind))
    assert result["model_version"] == "m"
    assert kinds == [UNAVAILABLE] * 3 and len(service.bodies) == 4
    assert not breaker("scoring").is_open


def test_other_4xx_are_still_rejections(service: FakeService) -> None:
    service.statuses = [422]
    with pytest.raises(ScoringRejected) as rejected:
        _score(ScoringClient(service.url, token=TOKEN))
    assert rejected.value.status == 422 and not isinstance(rejected.value, ScoringAuthFailed)


def test_the_ca_file_is_requests_verify_on_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def post(url: str, **kwargs: Any) -> Any:
        seen.append({"url": url, "verify": kwargs["verify"], "auth": kwargs["headers"].get("Authorization")})
        raise ConnectionError("not sent")

    system = ScoringClient("https://scoring.example", token=TOKEN)
    pinned = ScoringClient("https://scoring.example/", token=TOKEN, ca_file="/etc/ccas/ca.pem")
    for client in (system, pinned):
        monkeypatch.setattr(client.session, "post", post)
        with pytest.raises(ConnectionError):
            _score(client)
    assert seen == [{"url": "https://scoring.example/v1/score", "verify": True, "auth": f"Bearer {TOKEN}"},
                    {"url": "https://scoring.example/v1/score", "verify": "/etc/ccas/ca.pem", "auth": f"Bearer {TOKEN}"}]


def test_the_stage_clients_build_the_scoring_client_from_the_job_config() -> None:
    config = JobConfig(
        kafka_bootstrap="127.0.0.1:9", kafka_io="python", expansion_service=None, consumer_group="g", input_topic="calls.raw",
        database_url="postgresql://nobody@127.0.0.1:9/none", s3_endpoint=None, s3_bucket="b", s3_region=None,
        s3_access_key=None, s3_secret_key=None, s3_ca_file=None,
        avaya_url="http://127.0.0.1:9", avaya_user="u", avaya_password="p",
        scoring_url="https://scoring:8000", download_concurrency=1, scoring_concurrency=1, download_attempts=1,
        download_backoff_s=0, scoring_attempts=1, scoring_backoff_s=0, dedup_ttl_s=60, metrics_host="127.0.0.1",
        metrics_port=0, scoring_token=TOKEN, scoring_ca_file="/etc/ccas/ca.pem")
    client = StageClients(config).scoring(pool_size=2)
    try:
        assert client.base_url == "https://scoring:8000" and client.verify == "/etc/ccas/ca.pem"
        assert client._auth == {"Authorization": f"Bearer {TOKEN}"}
    finally:
        client.close()
    assert TOKEN not in repr(config)
