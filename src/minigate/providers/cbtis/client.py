"""CBTIS over the transport: a cached access token, then build → send → parse.

The token is fetched on first use, refreshed shortly before it expires, and once more when
a call is answered 401 (the call is then retried once with the fresh token).
"""

from __future__ import annotations

import asyncio

from minigate.clock import Clock, SystemClock
from minigate.errors import ProviderError
from minigate.providers.base import (
    Ack,
    Channel,
    CreatedPayment,
    HttpRequest,
    HttpResponse,
    IncomingNotification,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    ProviderRefundStatus,
    RefundRequest,
    RefundState,
    Transport,
    VerifiedNotification,
)
from minigate.providers.cbtis import assumptions as A
from minigate.providers.cbtis import messages
from minigate.providers.cbtis.messages import AccessToken, CbtisAccount


class CbtisClient:
    """CBTIS payment intents for WeChat mini programs (flow ``mini_program``)."""

    name = "cbtis"
    channels = frozenset({Channel.WECHAT})
    currencies = A.CURRENCIES
    supports_close = True
    min_close_age = 0

    def __init__(self, account: CbtisAccount, transport: Transport,
                 clock: Clock | None = None) -> None:
        self.account = account
        self._transport = transport
        self._clock = clock or SystemClock()
        self._token: AccessToken | None = None
        self._lock = asyncio.Lock()
        self.identity = {"app_id": account.sub_appid} if account.sub_appid else {}

    def needs_openid(self, channel: Channel) -> bool:
        return channel is Channel.WECHAT

    # -- authentication -----------------------------------------------------------------
    async def _access_token(self, stale: AccessToken | None = None) -> AccessToken:
        """A fresh token; ``stale`` is the one a 401 refused (replaced unless already done)."""
        async with self._lock:  # one login at a time, however many calls need a token
            token = self._token
            if token is None or token is stale or not token.fresh(self._clock.now()):
                response = await self._transport.send(messages.build_login(self.account))
                token = messages.parse_login(response, self._clock.now())
                self._token = token
            return token

    async def _send(self, request: HttpRequest) -> HttpResponse:
        token = await self._access_token()
        response = await self._transport.send(messages.authorised(request, token))
        if response.status == 401:
            token = await self._access_token(stale=token)
            response = await self._transport.send(messages.authorised(request, token))
            if response.status == 401:
                raise ProviderError("CBTIS refused a freshly issued access token",
                                    provider="cbtis", provider_code="401",
                                    code="provider_auth_failed")
        return response

    # -- payments -----------------------------------------------------------------------
    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        response = await self._send(messages.build_create(self.account, request))
        return messages.parse_create(request, response)

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        response = await self._send(messages.build_query(self.account, ref))
        return messages.parse_query(ref, response)

    async def close_payment(self, ref: PaymentRef) -> None:
        messages.parse_cancel(await self._send(messages.build_cancel(self.account, ref)))

    async def refund(self, request: RefundRequest) -> RefundState:
        response = await self._send(messages.build_refund(self.account, request))
        state = messages.parse_refund(request, response)
        if state is None:  # the original payment is unknown to CBTIS
            return RefundState(request.provider_refund_no, ProviderRefundStatus.FAILED,
                               detail="payment not found at CBTIS")
        return state

    async def query_refund(self, request: RefundRequest) -> RefundState:
        # Not found means the refund never arrived: send it again under the same
        # merchant_refund_id (idempotent, assumption A7).
        response = await self._send(messages.build_refund_query(self.account, request))
        state = messages.parse_refund(request, response)
        return state if state is not None else await self.refund(request)

    # -- webhooks -----------------------------------------------------------------------
    def verify_notification(self, notification: IncomingNotification) -> VerifiedNotification:
        return messages.verify_notification(self.account, notification)

    def ack(self, ok: bool, reason: str = "") -> Ack:
        status, body = messages.ack(ok)
        return Ack(status, body, "text/plain")
