"""`ccas scoring-service`: the FastAPI app and its uvicorn entry point."""

from __future__ import annotations

import argparse
import logging

import uvicorn
from fastapi import FastAPI

from core.config import add_flags, load_for_command, server_tls
from scoring_service import errors, observability
from scoring_service.limits import BodySizeLimit
from scoring_service.routes import health, score, scorecard
from scoring_service.scorer import Scorer
from scoring_service.settings import ENVIRONMENT_ONLY, ScoringSettings, get_settings

log = logging.getLogger(__name__)
GRACEFUL_SHUTDOWN_S = 15  # in-flight scores get this long after SIGTERM; the pipeline retries whatever is cut off


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
    add_flags(parser, ScoringSettings, skip=ENVIRONMENT_ONLY)  # the token: CCAS_SCORING_TOKEN only
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_for_command(ScoringSettings, args, "ccas scoring-service")
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    log.info(
        "scoring service %s on %s://%s:%d (asr=%s)",
        app.state.scorer.model_version,
        "https" if settings.tls else "http",
        settings.host,
        settings.port,
        settings.asr_engine,
    )
    # With a certificate, the port speaks TLS only: a plain-HTTP client fails the handshake instead of sending its token in clear.
    tls = server_tls(settings.tls_cert_file, settings.tls_key_file, "CCAS_SCORING_TLS_CERT_FILE", "CCAS_SCORING_TLS_KEY_FILE")
    # A scoring request finishes within the pipeline's timeout; a client that never closes its connection must not hold a
    # SIGTERM (a deploy, `stack down`) for ever.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(), access_log=False,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, **tls)
    return 0
