"""Settings and the bearer-token check shared by every route."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ccas.ops.settings import OpsSettings
from core.config import secret

_bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> OpsSettings:
    return request.app.state.settings


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """401 without a bearer token, 403 with a wrong one; the caller's identity (a token fingerprint) otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    expected = secret(get_settings(request).ops_token)
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")
    return "ops-api"


Settings = Annotated[OpsSettings, Depends(get_settings)]
Caller = Annotated[str, Depends(require_token)]
