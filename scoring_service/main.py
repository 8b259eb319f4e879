"""`ccas scoring-service`: the FastAPI app and its uvicorn entry point."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI

from core.config import add_flags, load_for_command
from scoring_service import errors, observability
from scoring_service.limits import BodySizeLimit
from scoring_service.routes import health, score, scorecard
from scoring_service.scorer import Scorer
from scoring_service.settings import ScoringSettings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: ScoringSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="CCAS scoring service", version="1.0.0")
    app.state.scorer = Scorer(settings)  # loads the scorecard and the ASR backend now: bad config fails at start-up
    app.include_router(score.router)
    app.include_router(scorecard.router)
    app.include_router(health.router)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=lambda: settings.max_upload_bytes)
    app.add_middleware(observability.RequestTiming)  # outermost: times the whole request, 413s included
    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas scoring-service", description="Run the CCAS scoring HTTP service.")
    add_flags(parser, ScoringSettings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_for_command(ScoringSettings, args, "ccas scoring-service")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    log.info(
        "scoring service %s on http://%s:%d (asr=%s)",
        app.state.scorer.model_version,
        settings.host,
        settings.port,
        settings.asr_engine,
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False)
    return 0
