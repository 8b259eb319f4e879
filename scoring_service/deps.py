"""FastAPI dependencies as `Annotated` aliases, and the bearer-token check of the /v1 routes."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from core.config import secret
from scoring_service.scorer import Scorer

# auto_error=False: require_token answers every failure itself, so no/blank/non-bearer headers all get the same 401.
_bearer = HTTPBearer(auto_error=False)


def get_scorer(request: Request) -> Scorer:
    return request.app.state.scorer


def require_token(request: Request,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """401 without a bearer token, 403 with a wrong one (CCAS_SCORING_TOKEN)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"})
    expected = secret(get_scorer(request).settings.token)
    # Constant time: how much of a guess matched must not show in the response time.
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid token")


ScorerDep = Annotated[Scorer, Depends(get_scorer)]
# On every router that scores or returns data; health and metrics routes stay open (routes/health.py says why).
AUTHENTICATED = (Depends(require_token),)
