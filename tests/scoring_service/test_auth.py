"""The bearer token of the scoring API (scoring_service/deps.py): 401 without one, 403 with a wrong one, health and metrics open.

In process with FastAPI's TestClient; the token is the conftest's CCAS_SCORING_TOKEN.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from audio.wav import wav_bytes
from callgen import plan_call, render_call
from scoring_service.main import create_app
from scoring_service.settings import ScoringSettings

# Routes a probe or a scrape reaches without a token.
OPEN = {"/healthz", "/metrics"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CCAS_SCORING_TOKEN", "module-token-for-auth-tests")
        app = create_app(ScoringSettings())
    with TestClient(app) as test_client:
        yield test_client


GOOD = {"Authorization": "Bearer module-token-for-auth-tests"}


def _call() -> dict:
    audio = wav_bytes(render_call(plan_call(401, duration_s=6, language="en")), 8000, "ulaw")
    return {"files": {"audio": ("call.wav", audio, "audio/wav")}, "data": {"call_id": "auth-1"}}


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Bearer   "},
    {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "module-token-for-auth-tests"},
], ids=["none", "empty", "scheme-only", "blank", "basic", "no-scheme"])
def test_no_bearer_token_is_401_with_a_challenge(client: TestClient, headers: dict[str, str]) -> None:
    for response in (client.get("/v1/scorecard", headers=headers), client.post("/v1/score", headers=headers, **_call())):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"error": "unauthorized", "detail": "bearer token required", "status": 401}


@pytest.mark.parametrize("token", ["wrong-token-of-some-length", "module-token-for-auth-test", "module-token-for-auth-testsx",
                                   "MODULE-TOKEN-FOR-AUTH-TESTS"], ids=["wrong", "prefix", "longer", "case"])
def test_a_wrong_token_is_403(client: TestClient, token: str) -> None:
    response = client.get("/v1/scorecard", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "forbidden" and "www-authenticate" not in response.headers


def test_the_right_token_scores(client: TestClient) -> None:
    assert client.get("/v1/scorecard", headers=GOOD).status_code == 200
    # The scheme is case-insensitive (RFC 7235); the token is not.
    assert client.get("/v1/scorecard", headers={"Authorization": "bearer module-token-for-auth-tests"}).status_code == 200
    scored = client.post("/v1/score", headers=GOOD, **_call())
    assert scored.status_code == 200, scored.text
    assert scored.json()["call_id"] == "auth-1"
    batch = client.post("/v1/score/batch", headers=GOOD, **_call())
    assert batch.status_code == 200 and batch.json()["results"][0]["result"]["call_id"] == "auth-1"
    assert client.post("/v1/score/batch", **_call()).status_code == 401


def test_health_and_metrics_stay_open(client: TestClient) -> None:
    # Its own refusals: under pytest-xdist the tests above may run in another worker, with another registry.
    assert client.get("/v1/scorecard").status_code == 401
    assert client.get("/v1/scorecard", headers={"Authorization": "Bearer not-the-token"}).status_code == 403
    assert client.get("/healthz").status_code == 200
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    # Refusals are counted by type, like every other error.
    assert 'ccas_scoring_errors_total{type="unauthorized"}' in metrics.text
    assert 'ccas_scoring_errors_total{type="forbidden"}' in metrics.text


def test_every_route_but_health_and_metrics_requires_the_token(client: TestClient) -> None:
    # The OpenAPI document lists every API route, so a router added without AUTHENTICATED fails here.
    paths = client.app.openapi()["paths"]
    assert set(paths) >= {"/v1/score", "/v1/score/batch", "/v1/scorecard", "/healthz", "/metrics"}
    for path, operations in paths.items():
        for method in operations:
            answer = client.request(method.upper(), path)
            if path in OPEN:
                assert answer.status_code == 200, f"{method} {path} must stay open"
            else:
                assert answer.status_code == 401, f"{method} {path} answered {answer.status_code} without a token"
