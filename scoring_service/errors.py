"""Typed API errors. The pipeline relies on the split: 4xx → the input is bad, dead-letter it at once; 5xx → our fault, retry.

Every error body is `{"error": <type>, "detail": <text>, "status": <code>}`; `error` is stable and counted in /metrics.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from audio.wav import CorruptWav, NotWav, UnsupportedFormat, WavError
from scoring_service import observability

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 500
    error = "internal_error"

    def __init__(self, detail: str, error: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if error:
            self.error = error


class BadRequest(ApiError):
    status, error = 400, "bad_request"


class PayloadTooLarge(ApiError):
    status, error = 413, "payload_too_large"


class UnsupportedMedia(ApiError):
    status, error = 415, "unsupported_media"


class Unprocessable(ApiError):
    status, error = 422, "unreadable_audio"


def from_wav_error(exc: WavError) -> ApiError:
    if isinstance(exc, NotWav):
        return UnsupportedMedia(str(exc), "not_audio")
    if isinstance(exc, UnsupportedFormat):
        return UnsupportedMedia(str(exc), "unsupported_codec")
    if isinstance(exc, CorruptWav):
        return Unprocessable(str(exc), "corrupt_wav")
    return Unprocessable(str(exc), exc.kind)


def error_body(status: int, error: str, detail: str) -> dict[str, object]:
    return {"error": error, "detail": detail, "status": status}


def _respond(status: int, error: str, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    observability.ERRORS.labels(type=error).inc()
    return JSONResponse(error_body(status, error, detail), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if exc.status >= 500:
            log.error("scoring failed: %s", exc.detail)
        return _respond(exc.status, exc.error, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422 by default; 422 is reserved for unreadable audio, so field errors are 400.
        return _respond(400, "bad_request", str(exc.errors())[:500])

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Starlette raises 400 for a malformed multipart body or too many parts; deps.require_token 401 and 403, whose
        # WWW-Authenticate header must reach the client.
        kind = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _respond(exc.status_code, kind, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error while scoring")
        return _respond(500, "internal_error", f"{type(exc).__name__}: internal error")
