"""Provider callbacks: the raw body is kept for verification; the reply is in the provider's
own ack format (Latipay ``sent``, QFPay ``SUCCESS``, WeChat v2 XML, WeChat v3 204).

The route is a plain Starlette endpoint, not a FastAPI one: it reads the raw body itself
and needs no parameter parsing or dependency injection, which cost about a tenth of a
notification's CPU. :data:`OPENAPI_PATHS` describes it in ``/openapi.json`` all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from minigate.service.context import ServiceContext
from minigate.service.notifications import MAX_BODY, handle_notification

PATH = "/v1/notify/{provider}"


async def notify(request: Request) -> Response:
    provider: str = request.path_params["provider"]
    ctx: ServiceContext = request.app.state.runtime.ctx
    ctx.provider(provider)  # 400 for an unknown provider, before reading anything
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return Response(b"body too large", 413, media_type="text/plain")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return Response(b"body too large", 413, media_type="text/plain")
        chunks.append(chunk)
    body = b"".join(chunks)
    ack = await handle_notification(ctx, provider, dict(request.headers), body)
    return Response(ack.body, ack.status, media_type=ack.content_type)


router = APIRouter()
router.add_route(PATH, notify, methods=["POST"])

OPENAPI_PATHS: dict[str, Any] = {PATH: {"post": {
    "tags": ["provider callbacks"],
    "summary": "Notify",
    "description": "A provider's asynchronous notification. The raw body is verified before "
                   "anything is parsed; the reply is in the provider's own format.",
    "operationId": "notify_v1_notify__provider__post",
    "parameters": [{"name": "provider", "in": "path", "required": True,
                    "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"*/*": {"schema": {}}}},
    "responses": {"200": {"description": "accepted, in the provider's ack format"},
                  "204": {"description": "accepted (WeChat Pay API v3)"},
                  "400": {"description": "refused: not verified or malformed"},
                  "413": {"description": "body larger than 64 KiB"}},
}}}
