"""QFPay over the transport: each call is build → send → parse."""

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
from minigate.providers.qfpay import messages
from minigate.providers.qfpay.messages import QfpayAccount


class QfpayClient:
    """QFPay (qfapi) for WeChat mini programs, pay_type 800213."""

    name = "qfpay"
    channels = frozenset({Channel.WECHAT})
    #: QFPay's ``txcurrcd`` list (providers.md §QFPay, payment request table: "HKD, SGD,
    #: CNY, USD, AUD, CAD, EUR, JPY, MYR, THB, IDR, MMK, AED"); the account's region decides
    #: which of them it really settles, which QFPay answers at pay time.
    currencies = frozenset({"HKD", "SGD", "CNY", "USD", "AUD", "CAD", "EUR", "JPY", "MYR",
                            "THB", "IDR", "MMK", "AED"})
    supports_close = True
    min_close_age = 0

    def __init__(self, account: QfpayAccount, transport: Transport) -> None:
        self.account = account
        self._transport = transport
        #: Checked against notifications and queries by the service (mismatch → flagged).
        self.identity = {"merchant_id": account.mchid} if account.mchid else {}

    def needs_openid(self, channel: Channel) -> bool:
        return channel is Channel.WECHAT

    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        response = await self._transport.send(messages.build_create(self.account, request))
        return messages.parse_create(request, response)

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        response = await self._transport.send(
            messages.build_query(self.account, ref.provider_order_no))
        return messages.parse_query(ref, response)

    async def close_payment(self, ref: PaymentRef) -> None:
        messages.parse_close(await self._transport.send(messages.build_close(self.account, ref)))

    async def refund(self, request: RefundRequest) -> RefundState:
        response = await self._transport.send(messages.build_refund(self.account, request))
        return messages.parse_refund(request, response)

    async def query_refund(self, request: RefundRequest) -> RefundState:
        # The refund's own out_trade_no finds it. Not there means it never arrived: send it
        # again with the same number (QFPay keeps out_trade_no unique, so this cannot double).
        response = await self._transport.send(
            messages.build_query(self.account, request.provider_refund_no))
        state = messages.parse_refund_query(request, response)
        return state if state is not None else await self.refund(request)

    def verify_notification(self, notification: IncomingNotification) -> VerifiedNotification:
        return messages.verify_notification(self.account, notification)

    def ack(self, ok: bool, reason: str = "") -> Ack:
        status, body = messages.ack(ok)
        return Ack(status, body, "text/plain")
