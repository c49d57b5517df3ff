"""A request id per HTTP request, on every log line of that request.

The id comes from the caller's ``X-Request-Id`` header when it is a sensible token (a
proxy or the merchant's own tracing), or is made here; it is returned in the response's
``X-Request-Id`` and kept in a context variable, so every log line written while the
request runs (the provider calls it makes included) carries it.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-request-id"
#: A caller's id is taken only when it looks like one: it ends up in every log line.
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("minigate_request_id", default=None)


def new_request_id() -> str:
    return "req_" + secrets.token_hex(8)


class RequestIdMiddleware:
    """Pure ASGI (no per-request task or body buffering, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ())
                      if k == b"x-request-id"), "")
        rid = given if _VALID.fullmatch(given) else new_request_id()
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
