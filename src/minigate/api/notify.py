"""Provider callbacks: the raw body is kept for verification; the reply is in the provider's
own ack format (Latipay ``sent``, QFPay ``SUCCESS``, WeChat v2 XML, WeChat v3 204).

The route is a plain Starlette endpoint, not a FastAPI one: it reads the raw body itself
and needs no parameter parsing or dependency injection, which cost about a tenth of a
notification's CPU. The server hands it callbacks on a :class:`Lane` of their own, past
the framework's routing; the app also lists it as its first route. :data:`OPENAPI_PATHS`
describes it in ``/openapi.json`` all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from minigate.api.openapi import PROVIDER_IDS
from minigate.service.context import ServiceContext
from minigate.service.notifications import handle_notification

PATH = "/v1/notify/{provider}"


async def notify(request: Request) -> Response:
    provider: str = request.path_params["provider"]
    ctx: ServiceContext = request.app.state.runtime.ctx
    ctx.provider(provider)  # 400 for an unknown provider
    # minigate.http_limits.BodyLimit has read the body already (at most MAX_BODY bytes,
    # within the body timeout): this is a copy in memory.
    body = await request.body()
    ack = await handle_notification(ctx, provider, dict(request.headers), body)
    return Response(ack.body, ack.status, media_type=ack.content_type)


#: :data:`PATH` as Starlette compiles it for its own route, so the lane matches the same paths.
_ROUTE = compile_path(PATH)[0]


class Lane:
    """``POST /v1/notify/{provider}`` straight to :func:`notify`, through the app's own
    guards and nothing else.

    A provider callback is the request minigate answers most often, and a plain endpoint:
    it needs the request id, the body limit, the last-resort guard and the error mapping
    (the app's ``user_middleware`` and its exception handlers, the same objects in the same
    order as on the full stack), but not FastAPI's routing, its telemetry and body-limit
    layers, the exit stack or Starlette's server-error layer, which cost about a fifth of
    a notification's CPU. Every other request, and a callback behind a ``root_path``, takes
    the full stack."""

    def __init__(self, app: FastAPI, full: ASGIApp) -> None:
        self.app, self.full = app, full
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        lane: ASGIApp = ExceptionMiddleware(_endpoint, handlers=handlers)
        for cls, args, kwargs in reversed(app.user_middleware):
            lane = cls(lane, *args, **kwargs)
        self.lane = lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = _ROUTE.match(scope["path"])
            if match is not None:
                scope["app"] = self.app
                scope["path_params"] = match.groupdict()
                await self.lane(scope, receive, send)
                return
        await self.full(scope, receive, send)


async def _endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    response = await notify(Request(scope, receive))
    await response(scope, receive, send)


_TEXT = {"schema": {"type": "string"}}
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}

#: The route, described by hand (FastAPI does not see plain Starlette routes).
OPENAPI_PATHS: dict[str, Any] = {PATH: {"post": {
    "tags": ["provider callbacks"],
    "summary": "Notify",
    "description": "A provider's asynchronous notification. The raw body is verified before "
                   "anything is parsed; the reply is in the provider's own format (Latipay "
                   "`sent`, QFPay `SUCCESS`, CBTIS `text/plain`, WeChat Pay v2 XML "
                   "`<xml><return_code>SUCCESS</return_code>…`, WeChat Pay v3 204 / JSON). "
                   "A refusal is 400 in the same format, so the provider sends it again. "
                   "No bearer key: the provider's signature authenticates the body.",
    "operationId": "notify",
    "security": [],
    "parameters": [{"name": "provider", "in": "path", "required": True,
                    "schema": {"type": "string", "enum": PROVIDER_IDS}}],
    "requestBody": {"required": True, "content": {
        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        "application/json": {"schema": {"type": "object"}},
        "text/xml": _TEXT}},
    "responses": {
        "200": {"description": "Accepted, in the provider's ack format",
                "content": {"text/plain": _TEXT, "text/xml": _TEXT}},
        "204": {"description": "Accepted (WeChat Pay API v3)"},
        "400": {"description": "Refused (not verified or malformed), in the provider's "
                               "format; or an unknown provider, in the error shape",
                "content": {"text/plain": _TEXT, "text/xml": _TEXT, "application/json": {
                    "schema": {"type": "object", "description": "WeChat Pay v3's "
                               "`{code, message}`, or the error shape (unknown provider)"}}}},
        "401": {"description": "Refused (CBTIS: webhook signature not verified)",
                "content": {"text/plain": _TEXT}},
        "408": {"description": "The body did not arrive in time", "content": _ERROR},
        "413": {"description": "Body larger than 64 KiB",
                "content": _ERROR},
    },
}}}
