"""Settings, the bearer-token check shared by every route, the role check and the audit rows of the routes."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import psycopg2
from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ccas.ops import audit
from ccas.ops.settings import OpsSettings
from ccas.ops.tokens import OpsCaller, identify
from core.config import secret

_bearer = HTTPBearer(auto_error=False)
log = logging.getLogger(__name__)


def get_settings(request: Request) -> OpsSettings:
    return request.app.state.settings


def _source(request: Request) -> str | None:
    return request.client.host if request.client else None


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> OpsCaller:
    """401 without a bearer token, 403 with one no entry of CCAS_OPS_TOKENS / CCAS_OPS_TOKEN holds; the caller otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    token = identify(credentials.credentials, get_settings(request).tokens())
    if token is None:
        # No identity to put in audit_log; the address alone is logged (never the presented token: it may be a near miss).
        log.warning("ops API: invalid bearer token from %s for %s %s", _source(request) or "unknown address",
                    request.method, request.url.path)
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")
    return OpsCaller(token.name, token.role, _source(request))


Settings = Annotated[OpsSettings, Depends(get_settings)]
Caller = Annotated[OpsCaller, Depends(require_token)]


async def write_audit(settings: OpsSettings, caller: OpsCaller, action: str, object_type: str, object_id: str,
                      outcome: str, detail: dict[str, Any] | None = None) -> None:
    """The audit row of one request; raises psycopg2.Error when it cannot be written (the caller decides what that means)."""
    await run_in_threadpool(audit.record, secret(settings.database_url), caller.name, caller.role, action, object_type,
                            object_id, caller.source, outcome, detail)


async def audit_or_fail(settings: OpsSettings, caller: OpsCaller, action: str, object_type: str, object_id: str,
                        outcome: str, detail: dict[str, Any] | None = None, failure: str = "") -> None:
    """The audit row, or a 500: what must not happen unaudited (handing out a payload) does not happen at all."""
    try:
        await write_audit(settings, caller, action, object_type, object_id, outcome, detail)
    except psycopg2.Error as error:
        log.error("ops API: audit row for %s %s %s by %s could not be written (%s)", action, object_type, object_id,
                  caller.name, str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR,
                            failure or "the audit trail cannot be written, so nothing is returned") from None


async def audit_best_effort(settings: OpsSettings, caller: OpsCaller, action: str, object_type: str, object_id: str,
                            outcome: str, detail: dict[str, Any] | None = None) -> None:
    """The audit row when nothing is handed out whether or not it is written (a refusal): a failure is logged only."""
    try:
        await write_audit(settings, caller, action, object_type, object_id, outcome, detail)
    except psycopg2.Error as error:
        log.error("ops API: audit row for %s %s %s by %s (%s) could not be written: %s", action, object_type, object_id,
                  caller.name, outcome, type(error).__name__)


async def authorize(settings: OpsSettings, caller: OpsCaller, minimum: str, action: str, object_type: str, object_id: str,
                    what: str) -> None:
    """403 "role X may not <what>" unless the caller's role is at least `minimum`; the refusal is audited as `denied`."""
    if caller.may(minimum):
        return
    await audit_best_effort(settings, caller, action, object_type, object_id, "denied", {"needs_role": minimum})
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {caller.role} may not {what}")
