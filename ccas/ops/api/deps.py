"""Settings and the bearer-token check shared by every route."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


@dataclass(frozen=True)
class OpsSettings:
    kafka_bootstrap: str
    database_url: str
    token: str

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ValueError("CCAS_OPS_TOKEN must be at least 16 characters")

    def __repr__(self) -> str:  # never log the token or the database password
        return f"OpsSettings(kafka_bootstrap={self.kafka_bootstrap!r})"


_bearer = HTTPBearer(auto_error=False)


def get_settings(request: Request) -> OpsSettings:
    return request.app.state.settings


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """401 without a bearer token, 403 with a wrong one; the caller's identity (a token fingerprint) otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    expected: str = get_settings(request).token
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")
    return "ops-api"


Settings = Annotated[OpsSettings, Depends(get_settings)]
Caller = Annotated[str, Depends(require_token)]
