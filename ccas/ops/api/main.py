"""The ops API application and `ccas ops-api` (uvicorn, 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging

from fastapi import FastAPI

from ccas.ops.api import dlq
from ccas.ops.settings import OpsSettings
from core.config import add_flags, load_for_command

log = logging.getLogger(__name__)


def create_app(ops_settings: OpsSettings) -> FastAPI:
    app = FastAPI(title="CCAS operations API", version="1",
                  description="Dead-letter inspection and requeue. Every request needs `Authorization: Bearer $CCAS_OPS_TOKEN`.")
    app.state.settings = ops_settings
    app.include_router(dlq.router)

    @app.get("/healthz", tags=["health"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas ops-api", description="DLQ operations over HTTP (OpenAPI docs at /docs)")
    add_flags(parser, OpsSettings)
    return parser


def main(argv: list[str]) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    settings = load_for_command(OpsSettings, args, "ccas ops-api")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    app = create_app(settings)
    log.info("ops API on http://%s:%d (docs at /docs)", settings.ops_api_host, settings.ops_api_port)
    uvicorn.run(app, host=settings.ops_api_host, port=settings.ops_api_port, log_level="info")
    return 0
