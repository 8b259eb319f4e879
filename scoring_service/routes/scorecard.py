"""The scorecard in force: what each criterion checks, its weight, threshold and phrase lists, the ASR engine that produces the
words the phrase criteria read, and the model_version it all yields."""

from __future__ import annotations

from fastapi import APIRouter

from scoring_service.asr import ENGINES, LANGUAGES
from scoring_service.deps import AUTHENTICATED, ScorerDep
from scoring_service.schemas import ScorecardResponse

router = APIRouter(prefix="/v1", tags=["scorecard"], dependencies=AUTHENTICATED)


@router.get("/scorecard", response_model=ScorecardResponse)
def scorecard(scorer: ScorerDep) -> ScorecardResponse:
    transcriber = scorer.transcriber
    asr = {
        "engine": transcriber.name if transcriber else "none",
        "asr_model": transcriber.model_name if transcriber else None,
        "languages": list(LANGUAGES),
        "language": "from the request's `language` field (the recording's metadata) when given, else detected",
        "engines_available": list(ENGINES),
    }
    return ScorecardResponse(model_version=scorer.model_version, scorecard=scorer.card.model_dump(), asr=asr)
