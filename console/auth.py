"""Sign-in sessions, CSRF tokens and role checks.

The session cookie holds the user's name, an expiry and a random id, signed with HMAC-SHA256 under
CCAS_CONSOLE_SESSION_KEY; the role is read from `console_user` on every request, so a changed role or a deleted user takes
effect at once. The cookie is HttpOnly (no script reads it), Secure (HTTPS only) and SameSite=Lax.

CSRF: a signed double-submit token. Every visitor gets a random `ccas_csrf` cookie (HttpOnly, SameSite=Strict); each form
carries HMAC(key, that value) in a hidden field, and every POST is refused with 403 unless the field matches the cookie. A
page on another site can make the browser send the cookie, but can neither read it nor compute the field.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request, status

from console.users import ROLE_RANK, User

SESSION_COOKIE = "ccas_session"
CSRF_COOKIE = "ccas_csrf"
CSRF_FIELD = "csrf_token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Signer:
    key: bytes

    def sign(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self.key, f"{purpose}|{payload}".encode(), hashlib.sha256).digest())

    def session_cookie(self, name: str, lifetime_s: float, now: float | None = None) -> str:
        body = _b64(json.dumps({"u": name, "exp": int((now or time.time()) + lifetime_s),
                                "sid": secrets.token_urlsafe(12)}).encode())
        return f"{body}.{self.sign('session', body)}"

    def session_name(self, cookie: str | None, now: float | None = None) -> str | None:
        """The signed-in name a session cookie carries; None when absent, forged or expired."""
        if not cookie or cookie.count(".") != 1:
            return None
        body, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self.sign("session", body)):
            return None
        try:
            claims: dict[str, Any] = json.loads(_unb64(body))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= (now or time.time()):
            return None
        name = claims.get("u")
        return name if isinstance(name, str) else None

    def csrf_token(self, csrf_cookie: str) -> str:
        return self.sign("csrf", csrf_cookie)

    def csrf_ok(self, csrf_cookie: str | None, submitted: str | None) -> bool:
        if not csrf_cookie or not submitted:
            return False
        return hmac.compare_digest(submitted, self.csrf_token(csrf_cookie))


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


class SignInRequired(Exception):
    """No valid session: a page redirects to the sign-in form, anything else (audio, data) answers 401."""


def cookie_options(secure: bool = True) -> dict[str, Any]:
    return {"httponly": True, "secure": secure, "samesite": "lax", "path": "/"}


def current_user(request: Request) -> User | None:
    """The signed-in user of this request (cached on it), or None."""
    if hasattr(request.state, "user"):
        return request.state.user
    console = request.app.state.console
    name = console.signer.session_name(request.cookies.get(SESSION_COOKIE))
    user = None
    if name is not None:
        row = console.database.row("SELECT name, role FROM console_user WHERE name = %s", (name,))
        if row is not None and row["role"] in ROLE_RANK:
            user = User(row["name"], row["role"])
    request.state.user = user
    return user


def require_user(request: Request) -> User:
    user = current_user(request)
    if user is None:
        raise SignInRequired()
    return user


def require_role(request: Request, minimum: str) -> User:
    user = require_user(request)
    if not user.may(minimum):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {user.role} role may not open this page")
    return user


def check_csrf(request: Request, submitted: str | None) -> None:
    """403 unless the submitted form token matches this browser's CSRF cookie."""
    if not request.app.state.console.signer.csrf_ok(request.cookies.get(CSRF_COOKIE), submitted):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token: reload the page and try again")
