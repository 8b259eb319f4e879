"""Liveness and Prometheus metrics: open, without the bearer token of the /v1 routes.

A Kubernetes probe, the Compose healthcheck and a Prometheus scrape carry no token; neither route scores or returns call data.
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from scoring_service import observability
from scoring_service.deps import ScorerDep
from scoring_service.schemas import HealthResponse

router = APIRouter(tags=["ops"])


@router.get("/healthz", response_model=HealthResponse)
def healthz(scorer: ScorerDep) -> HealthResponse:
    return HealthResponse(
        status="ok", model_version=scorer.model_version, asr=scorer.transcriber.name if scorer.transcriber else "none"
    )


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(observability.REGISTRY), media_type=CONTENT_TYPE_LATEST)
