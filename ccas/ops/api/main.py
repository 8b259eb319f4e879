"""The ops API application and `ccas ops-api` (uvicorn, 127.0.0.1 by default)."""

from __future__ import annotations

import argparse
import logging

from fastapi import FastAPI

from ccas.ops.api import dlq
from ccas.ops.settings import OPS_API_ENVIRONMENT_ONLY, OpsSettings
from core.config import add_flags, load_for_command

log = logging.getLogger(__name__)


def create_app(ops_settings: OpsSettings) -> FastAPI:
    app = FastAPI(title="CCAS operations API", version="1",
                  description="Dead-letter inspection and requeue. Every request needs `Authorization: Bearer <token>`, a token "
                              "of CCAS_OPS_TOKENS (name:role:token; roles viewer, operator, admin) or CCAS_OPS_TOKEN (operator "
                              "`ops`). Payloads are masked unless an admin asks for `full=true`; reads and requeues are audited "
                              "in audit_log.")
    app.state.settings = ops_settings
    app.include_router(dlq.router)

    @app.get("/healthz", tags=["health"], include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ccas ops-api", description="DLQ operations over HTTP (OpenAPI docs at /docs)")
    # Tokens from the environment only: a command line shows in `ps` to every user of the machine.
    add_flags(parser, OpsSettings, skip=OPS_API_ENVIRONMENT_ONLY)
    return parser


def main(argv: list[str]) -> int:
    import uvicorn

    args = build_parser().parse_args(argv)
    settings = load_for_command(OpsSettings, args, "ccas ops-api")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    app = create_app(settings)
    tls = settings.uvicorn_tls()  # with a certificate the port speaks TLS only: no token crosses the network in clear
    log.info("ops API on %s://%s:%d (docs at /docs)", "https" if tls else "http", settings.ops_api_host, settings.ops_api_port)
    uvicorn.run(app, host=settings.ops_api_host, port=settings.ops_api_port, log_level="info", **tls)
    return 0
