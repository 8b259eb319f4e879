"""`ccas scoring-service`: the FastAPI app and its uvicorn entry point."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI

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


def main(argv: list[str] | None = None) -> int:
    env = get_settings()
    parser = argparse.ArgumentParser(prog="ccas scoring-service", description="Run the CCAS scoring HTTP service.")
    parser.add_argument("--host", default=env.host, help="bind address (CCAS_SCORING_HOST, default %(default)s)")
    parser.add_argument("--port", type=int, default=env.port, help="port (CCAS_SCORING_PORT, default %(default)s)")
    parser.add_argument("--scorecard", default=str(env.scorecard), help="scorecard YAML (CCAS_SCORING_SCORECARD)")
    parser.add_argument(
        "--asr",
        choices=["none", "pocketsphinx", "faster-whisper"],
        default=env.asr,
        help="ASR backend for transcript criteria (CCAS_SCORING_ASR, default %(default)s)",
    )
    parser.add_argument(
        "--whisper-model-dir",
        default=env.whisper_model_dir,
        help="local faster-whisper model directory (CCAS_SCORING_WHISPER_MODEL_DIR)",
    )
    parser.add_argument("--workers", type=int, default=env.workers, help="concurrent scorings (CCAS_SCORING_WORKERS)")
    parser.add_argument("--max-upload-mb", type=float, default=env.max_upload_mb, help="CCAS_SCORING_MAX_UPLOAD_MB")
    parser.add_argument("--max-duration-s", type=float, default=env.max_duration_s, help="CCAS_SCORING_MAX_DURATION_S")
    parser.add_argument("--log-level", default=env.log_level, help="CCAS_SCORING_LOG_LEVEL")
    args = parser.parse_args(argv)
    # Init arguments beat the environment in pydantic-settings: flags override CCAS_SCORING_* as DESIGN.md asks.
    settings = ScoringSettings(
        host=args.host,
        port=args.port,
        scorecard=args.scorecard,
        asr=args.asr,
        whisper_model_dir=args.whisper_model_dir,
        workers=args.workers,
        max_upload_mb=args.max_upload_mb,
        max_duration_s=args.max_duration_s,
        log_level=args.log_level,
    )
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    log.info(
        "scoring service %s on http://%s:%d (asr=%s)", app.state.scorer.model_version, settings.host, settings.port, settings.asr
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False)
    return 0
