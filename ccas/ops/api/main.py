"""The ops API application and `ccas ops-api` (uvicorn, 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging

from fastapi import FastAPI

from ccas import settings
from ccas.ops.api import dlq
from ccas.ops.api.deps import OpsSettings

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


def settings_from_env(database_url: str | None = None, bootstrap: str | None = None) -> OpsSettings:
    return OpsSettings(kafka_bootstrap=bootstrap or settings.setting("CCAS_KAFKA_BOOTSTRAP"),
                       database_url=database_url or settings.setting("CCAS_DATABASE_URL"),
                       token=settings.setting("CCAS_OPS_TOKEN"))


def main(argv: list[str]) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="ccas ops-api", description="DLQ operations over HTTP (OpenAPI docs at /docs)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=settings.ports().ops_api)
    parser.add_argument("--database-url", default=None, help="default: CCAS_DATABASE_URL")
    parser.add_argument("--kafka-bootstrap", default=None, help="default: CCAS_KAFKA_BOOTSTRAP")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    app = create_app(settings_from_env(args.database_url, args.kafka_bootstrap))
    log.info("ops API on http://%s:%d (docs at /docs)", args.host, args.port)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
