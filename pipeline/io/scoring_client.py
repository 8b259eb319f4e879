"""A typed caller of the scoring service: streams a stored recording as the multipart `audio` part, raises typed errors.

4xx → ScoringRejected (permanent: dead letter at once); 5xx, connection errors → ScoringUnavailable; timeouts → ScoringTimeout
(both retryable); 401/403 → ScoringAuthFailed: the service refused the pipeline's token (CCAS_SCORING_TOKEN), a configuration
error of every call, so the call is held like an outage (resilience.classify) and goes on once the token is fixed.
Every request carries `Authorization: Bearer <token>`; an https URL is verified against `ca_file` (None: the system trust store).
The body is streamed from S3 with a known Content-Length, never read whole.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class ScoringError(Exception):
    retryable = False

    def __init__(self, message: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class ScoringRejected(ScoringError):
    """The service refused this recording (4xx): retrying cannot help."""


class ScoringUnavailable(ScoringError):
    retryable = True


class ScoringTimeout(ScoringError):
    retryable = True


class ScoringAuthFailed(ScoringUnavailable):
    """The service refused our credentials (401/403): nothing is wrong with the recording, the token is."""


# Statuses that judge the caller, not the recording.
AUTH_STATUS = frozenset({401, 403})


class MultipartStream:
    """A file-like multipart/form-data body: text fields, then one file part read from `source` in chunks."""

    def __init__(self, fields: dict[str, str], file_field: str, filename: str, source: Any, size: int,
                 content_type: str = "audio/wav") -> None:
        self.boundary = uuid.uuid4().hex
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields.items()
        )
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n").encode()
        self._segments: list[Any] = [head, source, f"\r\n--{self.boundary}--\r\n".encode()]
        self._length = len(head) + size + len(self._segments[2])
        self._offset = 0  # within the current bytes segment

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        size = 64 * 1024 if size is None or size < 0 else size
        while self._segments:
            segment = self._segments[0]
            if isinstance(segment, bytes):
                piece = segment[self._offset:self._offset + size]
                self._offset += len(piece)
                if self._offset >= len(segment):
                    self._segments.pop(0)
                    self._offset = 0
            else:
                piece = segment.read(size)
                if not piece:
                    self._segments.pop(0)
                    continue
            if piece:
                return piece
        return b""


class ScoringClient:
    """One keep-alive session per DoFn instance (setup), sized for the stage's concurrency bound."""

    def __init__(self, base_url: str, *, token: str, ca_file: str | None = None, pool_size: int = 8,
                 connect_timeout: float = 3.0, read_timeout: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}  # none: the service answers 401, held
        # Passed on each request, not set on the session: requests lets REQUESTS_CA_BUNDLE override a session's verify.
        self.verify: str | bool = ca_file or True
        self.session = requests.Session()
        self.session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0))
        self.session.mount("https://", HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0))

    def close(self) -> None:
        self.session.close()

    def model_version(self) -> str:
        """The model_version the service scores with now (its /v1/scorecard: the token is checked on the way)."""
        try:
            response = self.session.get(f"{self.base_url}/v1/scorecard", timeout=self.timeout, verify=self.verify,
                                        headers=self._auth)
        except (requests.Timeout, requests.ConnectionError) as error:
            raise ScoringUnavailable(f"scoring service unreachable: {str(error)[:300]}") from error
        if response.status_code != 200:
            kind = ScoringAuthFailed if response.status_code in AUTH_STATUS else ScoringUnavailable
            raise kind(f"scoring service answered /v1/scorecard with HTTP {response.status_code}", response.status_code,
                       response.text[:2000])
        return str(response.json()["model_version"])

    def score(self, *, call_id: str, agent_id: str | None, audio: Any, size: int, channel_layout: str | None = None,
              language: str | None = None) -> dict:
        fields = {"call_id": call_id}
        if agent_id:
            fields["agent_id"] = agent_id
        if language:
            fields["language"] = language
        if channel_layout:
            fields["channel_layout"] = channel_layout
        body = MultipartStream(fields, "audio", f"{call_id}.wav", audio, size)
        try:
            response = self.session.post(f"{self.base_url}/v1/score", data=body, timeout=self.timeout, verify=self.verify,
                                         headers={**self._auth, "Content-Type": body.content_type,
                                                  "Content-Length": str(len(body))})
        except requests.Timeout as error:
            raise ScoringTimeout(f"scoring service timed out: {error}") from error
        except requests.ConnectionError as error:
            raise ScoringUnavailable(f"scoring service unreachable: {str(error)[:300]}") from error
        text = response.text[:2000]
        if response.status_code in AUTH_STATUS:
            raise ScoringAuthFailed(f"scoring service refused the pipeline's credentials: HTTP {response.status_code} {text} "
                                    "(check CCAS_SCORING_TOKEN against the service's)", response.status_code, text)
        if 400 <= response.status_code < 500:
            raise ScoringRejected(f"scoring service rejected the recording: HTTP {response.status_code} {text}",
                                  response.status_code, text)
        if response.status_code >= 500 or response.status_code != 200:
            raise ScoringUnavailable(f"scoring service error: HTTP {response.status_code} {text}", response.status_code, text)
        try:
            return json.loads(response.text)
        except ValueError as error:
            raise ScoringUnavailable(f"scoring service answered non-JSON: {text[:200]}", 200, text) from error
