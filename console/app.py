"""The console application: state, security headers, the CSRF cookie, sign-in and sign-out, language, error pages."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from console.audio import RecordingStore
from console.auth import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    Signer,
    SignInRequired,
    check_csrf,
    cookie_options,
    current_user,
    new_csrf_cookie,
)
from console.db import Database
from console.i18n import LANGUAGE_COOKIE, LANGUAGES, language_of, translate
from console.operations import RecentRecords
from console.settings import ConsoleSettings
from console.users import authenticate

HERE = Path(__file__).resolve().parent
log = logging.getLogger(__name__)
# Scripts and styles come from the console alone (no inline script, no CDN); audio only from its own /calls/…/audio.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
# Paths that answer 401 rather than redirecting a signed-out client to the sign-in form (what they return is not a page).
DATA_PATH_SUFFIXES = ("/audio", "/waveform")


@dataclass
class ConsoleState:
    settings: ConsoleSettings
    database: Database
    signer: Signer
    recordings: RecordingStore
    templates: Jinja2Templates
    secure_cookies: bool
    dead_letters: RecentRecords = field(default_factory=RecentRecords)


def local_time(state: ConsoleState, moment: datetime | None, with_seconds: bool = False) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(state.settings.zone).strftime("%Y-%m-%d %H:%M:%S" if with_seconds else "%Y-%m-%d %H:%M")


def render(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    state: ConsoleState = request.app.state.console
    language = language_of(request.cookies.get(LANGUAGE_COOKIE))
    csrf_cookie = request.cookies.get(CSRF_COOKIE) or request.state.new_csrf_cookie
    return state.templates.TemplateResponse(request, template, {
        "user": current_user(request), "lang": language, "t": lambda key: translate(key, language),
        "csrf_field": CSRF_FIELD, "csrf_token": state.signer.csrf_token(csrf_cookie), "zone": state.settings.console_time_zone,
        "when": lambda moment, seconds=False: local_time(state, moment, seconds), "path": request.url.path,
        "here": str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""), **context,
    }, status_code=status_code)


def _safe_next(target: str | None) -> str:
    """Only a path of this site: an absolute or protocol-relative URL would make sign-in an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/calls"
    return target


def create_app(settings: ConsoleSettings, database: Database | None = None, recordings: RecordingStore | None = None) -> FastAPI:
    from console import pages
    from core.config import secret

    if recordings is None:
        from core.s3 import s3_client

        client = s3_client(settings.s3_endpoint or None, secret(settings.s3_access_key) or None,
                           secret(settings.s3_secret_key) or None, region=settings.s3_region or None,
                           ca_file=settings.s3_ca_file or None)
        recordings = RecordingStore(client, settings.s3_bucket)
    state = ConsoleState(settings, database or Database(secret(settings.database_url)),
                         Signer(secret(settings.console_session_key).encode()), recordings,
                         Jinja2Templates(directory=str(HERE / "templates")), secure_cookies=True)
    app = FastAPI(title="CCAS QA console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = state
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def security(request: Request, call_next: Any) -> Response:
        request.state.new_csrf_cookie = None if request.cookies.get(CSRF_COOKIE) else new_csrf_cookie()
        response = await call_next(request)
        if request.state.new_csrf_cookie:
            response.set_cookie(CSRF_COOKIE, request.state.new_csrf_cookie,
                                **{**cookie_options(state.secure_cookies), "samesite": "strict"})
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        if state.secure_cookies:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.exception_handler(SignInRequired)
    async def sign_in_required(request: Request, _: SignInRequired) -> Response:
        if request.method != "GET" or request.url.path.endswith(DATA_PATH_SUFFIXES):
            return PlainTextResponse("sign in first", status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        if request.method == "GET" and error.status_code in (403, 404) and not request.url.path.endswith(DATA_PATH_SUFFIXES):
            return render(request, "error.html", {"status": error.status_code, "detail": error.detail},
                          status_code=error.status_code)
        return PlainTextResponse(str(error.detail), status_code=error.status_code, headers=error.headers)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/")
    def home() -> RedirectResponse:
        return RedirectResponse("/calls", status_code=303)

    @app.get("/signin")
    def sign_in_form(request: Request, next: str = "/calls") -> HTMLResponse:
        return render(request, "signin.html", {"next": _safe_next(next), "failed": False})

    @app.post("/signin")
    def sign_in(request: Request, name: str = Form(""), password: str = Form(""), next: str = Form("/calls"),
                csrf_token: str = Form("")) -> Response:
        check_csrf(request, csrf_token)
        stored = state.database.row("SELECT name, password_hash, role FROM console_user WHERE name = %s", (name[:64],))
        user = authenticate(stored, password)
        if user is None:
            log.warning("console: failed sign-in for %r from %s", name[:64], request.client.host if request.client else "?")
            return render(request, "signin.html", {"next": _safe_next(next), "failed": True}, status_code=401)
        response = RedirectResponse(_safe_next(next), status_code=303)
        lifetime = state.settings.console_session_hours * 3600
        response.set_cookie(SESSION_COOKIE, state.signer.session_cookie(user.name, lifetime), max_age=int(lifetime),
                            **cookie_options(state.secure_cookies))
        log.info("console: %s (%s) signed in", user.name, user.role)
        return response

    @app.post("/signout")
    def sign_out(request: Request, csrf_token: str = Form("")) -> Response:
        check_csrf(request, csrf_token)
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", secure=state.secure_cookies, httponly=True, samesite="lax")
        return response

    @app.post("/language")
    def set_language(request: Request, lang: str = Form("en"), next: str = Form("/calls"),
                     csrf_token: str = Form("")) -> Response:
        check_csrf(request, csrf_token)
        response = RedirectResponse(_safe_next(next), status_code=303)
        response.set_cookie(LANGUAGE_COOKIE, lang if lang in LANGUAGES else "en", max_age=365 * 86400,
                            **cookie_options(state.secure_cookies))
        return response

    app.include_router(pages.router)
    return app
