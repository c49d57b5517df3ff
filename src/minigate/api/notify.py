"""Provider callbacks: the raw body is kept for verification; the reply is in the provider's
own ack format (Latipay ``sent``, QFPay ``SUCCESS``, WeChat v2 XML, WeChat v3 204)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from minigate.api.deps import Ctx
from minigate.service.notifications import MAX_BODY, handle_notification

router = APIRouter(prefix="/v1/notify", tags=["provider callbacks"])


@router.post("/{provider}")
async def notify(provider: str, request: Request, ctx: Ctx) -> Response:
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
