"""Request body caps, enforced before and while a body is read (ASGI middleware).

A declared ``Content-Length`` over the route's cap is answered 413 ``payload_too_large`` without
reading a byte; a body without one (chunked) is counted as it streams and cut off at the cap —
no route ever reads a whole body past it. Caps: ``Settings.max_body_bytes`` for the API, the
ingest upload's own (``MAX_INGEST_BYTES``, streamed to disk) for ``/v1/datasets/{name}/ingest``,
and 1 MiB for the web pages' forms.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...errors import PayloadTooLarge

_INGEST = re.compile(r"^/v1/datasets/[^/]+/ingest/?$")
#: the web pages post small forms (a token, a reason, a CSRF token)
WEB_FORM_BYTES = 1024 * 1024
#: multipart framing around an ingest upload
_MULTIPART_SLACK = 1024 * 1024


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a streamed body passes its cap; FastAPI lets HTTPExceptions
    through its body parsing, so the app's handler answers it as ``payload_too_large``."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> dict[str, Any]:
    exc = PayloadTooLarge(f"the request body is larger than {limit} bytes", details={"limit": limit})
    return {"error": exc.to_dict()}


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default: int, ingest: int) -> None:
        self.app = app
        self.default = default
        self.ingest = ingest + _MULTIPART_SLACK

    def cap(self, path: str) -> int:
        if _INGEST.match(path):
            return self.ingest
        if path.startswith("/ui"):
            return min(self.default, WEB_FORM_BYTES)
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.cap(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > limit:
                await _answer(send, 413 if size > limit else 422, too_large(limit) if size > limit else
                              {"error": {"code": "invalid_input", "message": "Content-Length is not a number",
                                         "details": {"field": "content-length"}}})
                return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge:
            if not started:  # read outside FastAPI's parsing (a page's own form read): answer here
                await _answer(send, 413, too_large(limit))


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
