"""Provider callbacks: the raw body is kept for verification; the reply is in the provider's
own ack format (Latipay ``sent``, QFPay ``SUCCESS``, WeChat v2 XML, WeChat v3 204).

The route is a plain Starlette endpoint, not a FastAPI one: it reads the raw body itself
and needs no parameter parsing or dependency injection, which cost about a tenth of a
notification's CPU. The server hands it callbacks on the lane (``api/lane.py``), past the
framework's routing; the app also lists it as its first route. :data:`OPENAPI_PATHS`
describes it in ``/openapi.json`` all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

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
