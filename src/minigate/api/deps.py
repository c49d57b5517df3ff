"""Dependencies as ``Annotated`` aliases so routes read as plain signatures.

They are ``async def`` although none of them awaits: FastAPI runs a plain ``def``
dependency in a thread pool, which costs a thread hop per dependency per request.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from minigate.errors import AuthenticationError
from minigate.service.context import ServiceContext

#: ``Authorization: Bearer <api key>``; shown in the OpenAPI as the ``bearer`` scheme.
bearer = HTTPBearer(scheme_name="bearer", auto_error=False,
                    description="The merchant API key (`MINIGATE_API_KEY`)")


async def get_ctx(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.runtime.ctx
    return ctx


Ctx = Annotated[ServiceContext, Depends(get_ctx)]


async def merchant_auth(
    ctx: Ctx, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The merchant API key from ``Authorization: Bearer …``, compared in constant time."""
    expected = ctx.settings.api_key.get_secret_value() if ctx.settings.api_key else ""
    given = credentials.credentials if credentials is not None else ""
    if not expected or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise AuthenticationError("missing or invalid API key (Authorization: Bearer <key>)")
    return expected


MerchantKey = Annotated[str, Depends(merchant_auth)]

#: Limits of ``Idempotency-Key``: 1 to 255 printable ASCII characters (a UUID fits).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


async def idempotency_key(
    idempotency_key: Annotated[str | None, Header(
        alias="Idempotency-Key", min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Makes the call safe to retry: the same key with the same body answers "
                    "the first response for 24 h (a different body: 422 "
                    "`idempotency_key_reused`; still running: 409 `idempotency_key_in_use`). "
                    "1-255 printable ASCII characters; a UUID is a good key.",
        examples=["5f0c6c1e-8a47-4d0c-9b1e-1d2f7f1f9a11"])] = None,
) -> str | None:
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(idempotency_key)]
