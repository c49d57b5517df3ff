"""Latipay over the transport: each call is build → send → parse."""

from __future__ import annotations

from minigate.providers.base import (
    Ack,
    Channel,
    CreatedPayment,
    IncomingNotification,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    RefundRequest,
    RefundState,
    Transport,
    VerifiedNotification,
)
from minigate.providers.latipay import messages
from minigate.providers.latipay.messages import LatipayAccount


class LatipayClient:
    """Latipay v2 for WeChat and Alipay mini apps."""

    name = "latipay"
    channels = frozenset({Channel.WECHAT, Channel.ALIPAY})
    supports_close = True
    min_close_age = 0

    def __init__(self, account: LatipayAccount, transport: Transport) -> None:
        self.account = account
        self._transport = transport
        # Latipay's create calls carry no currency: the wallet's is charged (providers.md
        # §Latipay: "the wallet determines the currency"), so it is the only one.
        self.currencies = frozenset({account.currency})

    def needs_openid(self, channel: Channel) -> bool:
        return channel is Channel.WECHAT

    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        response = await self._transport.send(messages.build_create(self.account, request))
        return messages.parse_create(request, response)

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        response = await self._transport.send(messages.build_query(self.account, ref))
        return messages.parse_query(self.account, ref, response)

    async def close_payment(self, ref: PaymentRef) -> None:
        messages.parse_cancel(await self._transport.send(messages.build_cancel(self.account, ref)))

    async def refund(self, request: RefundRequest) -> RefundState:
        response = await self._transport.send(messages.build_refund(self.account, request))
        return messages.parse_refund(request, response)

    async def query_refund(self, request: RefundRequest) -> RefundState:
        # No refund query at Latipay: re-sending the same refund is answered 562 ("done")
        # when it went through, and performs it when it did not.
        return await self.refund(request)

    def verify_notification(self, notification: IncomingNotification) -> VerifiedNotification:
        return messages.verify_notification(self.account, notification)

    def notification_hint(self, notification: IncomingNotification) -> str | None:
        return messages.notification_hint(notification)

    def ack(self, ok: bool, reason: str = "") -> Ack:
        status, body = messages.ack(ok)
        return Ack(status, body, "text/plain")
