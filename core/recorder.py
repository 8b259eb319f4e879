"""HTTP transport to an ACR-compatible recorder: keep-alive, timeouts, bounded retries, capped bodies, streamed replays.

The poller's Search API client (avaya_source.client) and the pipeline's download stage both build on it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

import schemas

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 8 * 1024 * 1024


class AvayaError(Exception):
    """Base of the client's errors; `reason` is a short metric label, `status` the HTTP status (None: no answer at all)."""

    reason = "error"

    def __init__(self, message: str = "", status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AvayaUnavailable(AvayaError):
    """Retryable: connection refused/reset, timeout (status None), 5xx — still failing after the bounded retries."""

    reason = "unavailable"


class AvayaRejected(AvayaError):
    """Permanent for this request: 4xx (bad credentials, bad parameters)."""

    reason = "rejected"


class AvayaBadResponse(AvayaError):
    """The body cannot be used (hostile, malformed, too large, truncated)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str

    def __repr__(self) -> str:  # never let a password reach a log line through a repr
        return f"Credentials(user={self.user!r}, password=***)"

    @classmethod
    def of(cls, user: str, password: str | None, password_file: str = "") -> Credentials:
        """The password given, else the content of `password_file` (a mounted secret); a clear error when neither exists."""
        if password_file:
            password = Path(password_file).read_text().strip()
        if not password:
            raise ValueError("the recorder password is not set (CCAS_AVAYA_PASSWORD or CCAS_AVAYA_PASSWORD_FILE)")
        return cls(user, password)


class RecorderHttp:
    """Requests to `base_url` (e.g. http://127.0.0.1:19024); one keep-alive session per client."""

    def __init__(
        self,
        base_url: str,
        credentials: Credentials,
        *,
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        backoff_max_s: float = 8.0,
        max_response_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = 64 * 1024,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_response_bytes = max_response_bytes
        self.chunk_size = chunk_size
        self.session = requests.Session()
        self.session.auth = (credentials.user, credentials.password)
        # Retries are ours (below) so every attempt is logged and bounded; the adapter only pools connections.
        self.session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0))
        self.session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=8, max_retries=0))

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> RecorderHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------------------------------------

    def _sleep_before_retry(self, attempt: int) -> None:
        delay = min(self.backoff_max_s, self.backoff_s * (2**attempt))
        time.sleep(delay * (0.5 + random.random() / 2))  # jitter so restarted pollers do not retry in lockstep

    def _get(self, params: dict[str, str], *, stream: bool) -> requests.Response:
        url = f"{self.base_url}/searchapi"
        last: str = ""
        last_status: int | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep_before_retry(attempt - 1)
            try:
                response = self.session.get(url, params=params, timeout=self.timeout, stream=stream)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last, last_status = f"{type(exc).__name__}: {str(exc)[:160]}", None
                log.warning("avaya %s attempt %d/%d failed: %s", params.get("command"), attempt + 1, self.retries + 1, last)
                continue
            if response.status_code >= 500:
                last, last_status = f"HTTP {response.status_code}", response.status_code
                response.close()
                log.warning("avaya %s attempt %d/%d failed: %s", params.get("command"), attempt + 1, self.retries + 1, last)
                continue
            if response.status_code >= 400:
                response.close()
                raise AvayaRejected(f"HTTP {response.status_code} for command={params.get('command')}", response.status_code)
            return response
        raise AvayaUnavailable(f"{params.get('command')} failed after {self.retries + 1} attempts: {last}", last_status)

    def _read_capped(self, response: requests.Response) -> bytes:
        """The body, refusing more than max_response_bytes and noticing a body shorter than its Content-Length."""
        parts: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(self.chunk_size):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise AvayaBadResponse("too_large", f"search answer exceeds {self.max_response_bytes} bytes")
                parts.append(chunk)
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
            raise AvayaBadResponse("truncated", f"body ended early: {str(exc)[:160]}") from None
        finally:
            response.close()
        return b"".join(parts)

    # -- API -------------------------------------------------------------------------------------------------------------

    def replay(self, inum: str) -> ReplayStream:
        """The recording's WAV as a stream of chunks; nothing is buffered beyond one chunk."""
        if not schemas.is_valid_call_id(inum):
            raise ValueError(f"bad_call_id: {str(inum)[:40]!r} (pattern {schemas.CALL_ID_PATTERN.pattern})")
        call_id = inum
        response = self._get({"command": "replay", "id": call_id}, stream=True)
        return ReplayStream(response, self.chunk_size)


class ReplayStream:
    """Iterator of WAV byte chunks plus the response headers; use as a context manager so the connection is released."""

    def __init__(self, response: requests.Response, chunk_size: int) -> None:
        self.response = response
        self.chunk_size = chunk_size
        self.content_type = response.headers.get("Content-Type", "")
        length = response.headers.get("Content-Length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.bytes_read = 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.response.iter_content(self.chunk_size):
                self.bytes_read += len(chunk)
                yield chunk
        except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError) as exc:
            raise AvayaBadResponse("truncated", f"replay ended after {self.bytes_read} bytes: {str(exc)[:120]}") from None
        if self.content_length is not None and self.bytes_read != self.content_length:
            raise AvayaBadResponse("truncated", f"replay gave {self.bytes_read} of {self.content_length} bytes")

    def close(self) -> None:
        self.response.close()

    def __enter__(self) -> ReplayStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
