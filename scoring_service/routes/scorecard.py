"""The scorecard in force: what each criterion checks, its weight and threshold, and the model_version it yields."""

from __future__ import annotations

from fastapi import APIRouter

from scoring_service.deps import ScorerDep
from scoring_service.schemas import ScorecardResponse

router = APIRouter(prefix="/v1", tags=["scorecard"])


@router.get("/scorecard", response_model=ScorecardResponse)
def scorecard(scorer: ScorerDep) -> ScorecardResponse:
    return ScorecardResponse(model_version=scorer.model_version, scorecard=scorer.card.model_dump())
