"""Dependencies as ``Annotated`` aliases so routes read as plain signatures.

They are ``async def`` although none of them awaits: FastAPI runs a plain ``def``
dependency in a thread pool, which costs a thread hop per dependency per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from minigate.errors import AuthenticationError, InvalidRequest
from minigate.service.context import ServiceContext


async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.runtime.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


async def merchant_auth(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> str:
    """The merchant API key from ``Authorization: Bearer …``, compared in constant time."""
    expected = ctx.settings.api_key.get_secret_value() if ctx.settings.api_key else ""
    scheme, _, given = (authorization or "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise AuthenticationError("missing or invalid API key (Authorization: Bearer <key>)")
    return expected


MerchantKey = Annotated[str, Depends(merchant_auth)]


async def idempotency_key(
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> str | None:
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise InvalidRequest("Idempotency-Key must be 1 to 255 characters",
                             param="Idempotency-Key")
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
