"""Limits that protect the server from hostile or broken HTTP clients.

* :class:`BodyLimit`, a pure ASGI middleware in front of everything (authentication and
  parsing included): a declared ``Content-Length`` above the limit is refused at once; an
  undeclared (chunked) body is counted while it streams and refused as soon as it passes
  the limit, so at most ``limit`` bytes are ever held. The body must also arrive within
  ``body_timeout`` seconds (a slow-body client is answered 408 and cut off). Both answers
  are in the one error shape and close the connection, so the rest of a 100 MB body is
  never read. A client that goes away in the middle of its body costs one INFO line.
* :class:`HeaderTimeoutProtocol`, uvicorn's httptools protocol with a deadline for the
  request line and headers: uvicorn has none of its own (its keep-alive timeout only runs
  between requests), so a slow-header client would hold a connection for ever. The
  deadline starts when the connection opens (or when the next request's first byte
  arrives on a kept-alive one) and the connection is closed when it passes.
* :func:`uvicorn_options`: the rest are uvicorn's own settings (keep-alive timeout,
  concurrency limit, the h11 incomplete-event size).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from minigate.config import HttpSettings

log = logging.getLogger("minigate.http")

#: Methods whose requests carry no body unless they say so.
_BODILESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})


def _error(status: int, code: str, message: str) -> tuple[int, bytes]:
    error = {"type": "invalid_request_error", "code": code, "message": message}
    return status, json.dumps({"error": error}).encode()


class BodyLimit:
    """Read (at most ``limit`` bytes of) the body before the app sees the request."""

    def __init__(self, app: ASGIApp, *, max_body: int, notify_max_body: int,
                 body_timeout: float, notify_prefix: str = "/v1/notify/") -> None:
        self.app = app
        self.max_body = max_body
        self.notify_max_body = notify_max_body
        self.body_timeout = body_timeout
        self.notify_prefix = notify_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.notify_max_body if path.startswith(self.notify_prefix) else self.max_body
        declared: str | None = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                declared = value.decode("latin-1")
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, *_error(400, "invalid_request",
                                            "Content-Length is not a number"))
                return
            if int(declared) > limit:
                await _answer(send, *_too_large(limit))
                return
            if int(declared) == 0 and not chunked:
                await self.app(scope, replay(b"", receive), send)
                return
        elif not chunked and scope.get("method") in _BODILESS:
            await self.app(scope, receive, send)
            return
        body = await self._read(scope, receive, send, limit)
        if body is not None:
            await self.app(scope, replay(body, receive), send)

    async def _read(self, scope: Scope, receive: Receive, send: Send,
                    limit: int) -> bytes | None:
        """The whole body, or None when an answer was already sent (or nobody listens)."""
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        log.info("client went away before its body was complete: %s %s "
                                 "(%d bytes read)", scope.get("method"), scope.get("path"),
                                 size)
                        return None
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > limit:
                        await _answer(send, *_too_large(limit))
                        return None
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            log.info("request body not complete after %s s, connection closed: %s %s",
                     self.body_timeout, scope.get("method"), scope.get("path"))
            await _answer(send, *_error(408, "request_timeout",
                                        f"the body did not arrive within {self.body_timeout} s"))
            return None


def _too_large(limit: int) -> tuple[int, bytes]:
    return _error(413, "body_too_large", f"the request body is larger than {limit} bytes")


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then the real channel
    (which reports the client's disconnect)."""
    sent = False

    async def first_the_body() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return first_the_body


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, plus a deadline and a size cap for the request line
    and headers (httptools itself bounds neither).

    The deadline is :attr:`header_timeout` seconds from the start of each request (its
    first byte; for the first request, the connection). One timer per connection enforces
    it, not one per request: a request only notes when it began, and the timer, when it
    fires, closes the connection if the request still in its headers began too long ago,
    waits for the rest of that request's time if it began later, or stops if no request is
    in its headers (the next one to begin sets it again). On a kept-alive connection a
    request then costs no timer of its own (a timer set and cancelled per request was
    measurable on the hot path: round 19 of issue 16, ``docs/performance.md``)."""

    #: Set by :func:`uvicorn_options` (uvicorn builds the protocol with its own arguments).
    header_timeout: float = 10.0
    max_header_bytes: int = 16 * 1024

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_deadline: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = True
        self._headers_began = self.loop.time()
        super().connection_made(transport)
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_at(
                self._headers_began + self.header_timeout, self._check_headers)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _check_headers(self) -> None:
        self._header_deadline = None
        if not self._in_headers or self.transport.is_closing():
            return  # the next request to begin sets the timer again
        if self.loop.time() < self._headers_began + self.header_timeout:
            self._arm_header_deadline()  # a later request: the rest of its time
            return
        log.info("request headers not complete after %s s, connection closed",
                 self.header_timeout)
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Count what arrived while the headers are still incomplete after parsing it (a
        # read that completes them may carry body bytes too: those are the body's).
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.max_header_bytes:
                log.info("request headers larger than %d bytes, connection closed",
                         self.max_header_bytes)
                self._disarm_header_deadline()
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._headers_began = self.loop.time()
        self._arm_header_deadline()  # unless the timer is set already

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def uvicorn_options(settings: HttpSettings) -> dict[str, Any]:
    """``uvicorn.run`` keyword arguments for the HTTP limits."""
    protocol = type("MinigateHttpProtocol", (HeaderTimeoutProtocol,),
                    {"header_timeout": settings.header_timeout,
                     "max_header_bytes": settings.max_header_bytes})
    return {
        "http": protocol,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "limit_concurrency": settings.max_concurrency,
        "backlog": settings.backlog,
    }
