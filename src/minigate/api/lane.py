"""The lane: the hottest requests straight to their endpoints, through the app's own guards.

Three requests make up nearly all of minigate's traffic: a provider callback
(``POST /v1/notify/{provider}``), the merchant creating an order (``POST /v1/orders``) and
the mini program paying it (``POST /v1/client/orders/{id}/pay``). Each needs the request
id, the body limit, the last-resort guard and the error mapping — the app's
``user_middleware`` and its exception handlers, the same objects in the same order as on
the full stack — but not FastAPI's routing (a regex per route until one matches), its
telemetry and body-limit layers, the exit stack, Starlette's server-error layer, and, for
the two JSON requests, FastAPI's per-request dependency solving and validation: together
about a third of such a request's CPU.

**One contract.** The FastAPI routes stay (they are what ``/openapi.json`` describes and
what every other request shape reaches). A lane endpoint answers only the plain case — a
JSON body its model accepts, headers and path FastAPI would accept, a valid key — and
computes that answer with the same service call as its FastAPI route. For anything else it
answers nothing and says so (returns ``None``); the lane then hands the very same request,
body included, to the full stack, which answers it exactly as it answers any request. So
every refusal — a malformed body, a missing field, a bad key — is FastAPI's own, and the
lane's checks only need to be *no looser* than FastAPI's (``tests/api/test_lane.py`` holds
each lane endpoint to its route, answer for answer).

A request behind a ``root_path``, or of any other method or path, takes the full stack.
A middleware added to the app applies on the lane too (it is built from
``app.user_middleware``); one that must not see a request handed over should check
``scope["minigate.lane"]``: on the full stack's second pass it is ``"fallback"``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from minigate.http_limits import replay

if TYPE_CHECKING:
    from fastapi import FastAPI

#: A lane endpoint: the answer, or None for "not the plain case: the full stack answers".
Endpoint = Callable[[Request], Awaitable[Response | None]]

#: Marks a lane request in its scope: "lane" while the lane runs it, "fallback" once it
#: was handed to the full stack.
SCOPE_KEY = "minigate.lane"
_BODY = "minigate.lane.body"


class _NotPlain:
    """The answer of :func:`json_body` for a body the lane leaves to FastAPI."""


NOT_PLAIN = _NotPlain()


async def json_body(request: Request) -> Any:
    """The JSON body, parsed as FastAPI parses it (``json.loads``: orjson would turn an
    integer beyond 64 bits into a float), or :data:`NOT_PLAIN` for what the lane leaves to
    FastAPI: a content type other than ``application/json`` (parameters allowed), an empty
    body, or one ``json.loads`` refuses."""
    content_type = request.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return NOT_PLAIN
    raw = await request.body()
    if not raw:
        return NOT_PLAIN
    try:
        return json.loads(raw)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not text
        return NOT_PLAIN


class Lane:
    """Serves ``routes`` (method, path template, lane endpoint) through the app's guards;
    hands everything else, and what a lane endpoint declines, to ``full``. ``prefixed``
    (path prefix, app): every request whose path starts with that prefix goes to that app
    instead, before anything else is looked at (in sandbox mode, the simulators)."""

    def __init__(self, app: FastAPI, full: ASGIApp,
                 routes: list[tuple[str, str, Endpoint]],
                 prefixed: tuple[str, ASGIApp] | None = None) -> None:
        self.app, self.full = app, full
        self.prefixed = prefixed
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        self._routes = [(method, compile_path(path)[0],
                         _guarded(ExceptionMiddleware(_asgi(endpoint), handlers=handlers), app))
                        for method, path, endpoint in routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            if self.prefixed is not None and path.startswith(self.prefixed[0]):
                await self.prefixed[1](scope, receive, send)
                return
            for route_method, pattern, lane in self._routes:
                if method == route_method and (match := pattern.match(path)) is not None:
                    scope["app"] = self.app
                    scope["path_params"] = match.groupdict()
                    scope[SCOPE_KEY] = "lane"
                    await lane(scope, receive, send)
                    body = scope.pop(_BODY, None)
                    if body is None:
                        return
                    scope[SCOPE_KEY] = "fallback"
                    await self.full(scope, replay(body, receive), send)
                    return
        await self.full(scope, receive, send)


def _guarded(app: ASGIApp, fastapi: FastAPI) -> ASGIApp:
    for cls, args, kwargs in reversed(fastapi.user_middleware):
        app = cls(app, *args, **kwargs)
    return app


def _asgi(endpoint: Endpoint) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await endpoint(request)
        if response is None:  # nothing sent: the full stack answers, with the same body
            scope[_BODY] = await request.body()
            return
        await response(scope, receive, send)

    return app
