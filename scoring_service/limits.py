"""Request-body size cap as ASGI middleware: works for Content-Length and for chunked (streamed) uploads alike.

An oversize body is drained, not buffered, before the 413 goes out: answering while the client is still sending makes many
clients report a broken pipe instead of the status, and the pipeline must see the 413 to dead-letter the call.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from scoring_service import observability
from scoring_service.errors import PayloadTooLarge, error_body


async def _drain(receive: Receive, message: Message | None = None) -> None:
    while message is None or (message["type"] == "http.request" and message.get("more_body", False)):
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: Callable[[], int]) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes()
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _drain(receive)
            observability.ERRORS.labels(type="payload_too_large").inc()
            body = json.dumps(
                error_body(413, "payload_too_large", f"request body of {int(declared)} bytes exceeds {limit}")
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    await _drain(receive, message)
                    raise PayloadTooLarge(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, limited, send)
