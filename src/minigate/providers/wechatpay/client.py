"""WeChat Pay direct over the transport, one client per API version.

Both are thin: build (pure) → send → verify → parse (pure). The v3 client also keeps the
:class:`~minigate.providers.wechatpay.v3sign.KeyRing` (WeChat Pay public key and platform
certificates fetched from ``/v3/certificates``, cached, refreshed once on an unknown serial).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping

from minigate.clock import Clock, SystemClock
from minigate.errors import NotificationRejected, ProviderError
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
    RefundRequest,
    RefundState,
    Transport,
    VerifiedNotification,
)
from minigate.providers.wechatpay import v2_messages as v2
from minigate.providers.wechatpay import v3_messages as v3
from minigate.providers.wechatpay import v3sign

log = logging.getLogger("minigate.wechatpay")

#: WeChat accepts a close only this long after the order was created (seconds).
MIN_CLOSE_AGE = 300
#: Never fetch /v3/certificates more often than this, whatever serials callers send.
CERT_REFRESH_INTERVAL = 60.0


def new_nonce() -> str:
    return secrets.token_hex(16).upper()


#: WeChat Pay direct (domestic JSAPI) charges in CNY only: v3 ``amount.currency`` "CNY",
#: v2 ``fee_type`` "CNY" (providers.md, WeChat Pay §JSAPI order).
CURRENCIES = frozenset({"CNY"})


class WechatpayV3Client:
    """WeChat Pay API v3 (JSON, SHA256withRSA, AES-256-GCM) for mini programs."""

    channels = frozenset({Channel.WECHAT})
    currencies = CURRENCIES
    supports_close = True

    def __init__(self, account: v3.V3Account, transport: Transport, *, ring: v3sign.KeyRing,
                 fetch_certificates: bool = True, clock: Clock | None = None,
                 nonce: Callable[[], str] = new_nonce, name: str = "wechatpay",
                 min_close_age: int = MIN_CLOSE_AGE) -> None:
        self.account = account
        self.name = name
        self.min_close_age = min_close_age
        self.ring = ring
        self.identity = {"app_id": account.appid, "merchant_id": account.mchid}
        self._transport = transport
        self._fetch_certificates = fetch_certificates
        self._clock = clock or SystemClock()
        self._nonce = nonce
        self._last_refresh: float | None = None

    def needs_openid(self, channel: Channel) -> bool:
        return True

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    # -- signatures on answers ---------------------------------------------------------
    async def refresh_certificates(self) -> int:
        """Fetch, decrypt and cache the platform certificates; returns how many we hold."""
        self._last_refresh = self._clock.now().timestamp()
        response = await self._transport.send(
            v3.build_certificates(self.account, self._now(), self._nonce()))
        certs = v3.parse_certificates(self.account, response, self._clock.now())
        # The list is signed by one of the certificates it carries: add, then verify.
        candidate = v3sign.KeyRing(dict(self.ring.keys))
        candidate.add_all((c.serial_no, c.public_key) for c in certs)
        try:
            v3sign.verify_signed(response.headers, response.body, candidate, self._now())
        except v3sign.SignatureRejected as exc:
            raise ProviderError(f"WeChat Pay certificates: {exc.reason}", provider=self.name,
                                code="provider_bad_signature") from exc
        self.ring.add_all((c.serial_no, c.public_key) for c in certs)
        return len(certs)

    def _may_refresh(self) -> bool:
        if not self._fetch_certificates:
            return False
        last = self._last_refresh
        return last is None or self._clock.now().timestamp() - last >= CERT_REFRESH_INTERVAL

    async def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        try:
            v3sign.verify_signed(headers, body, self.ring, self._now())
        except v3sign.SignatureRejected as exc:
            if not (exc.unknown_serial and self._may_refresh()):
                raise
            await self.refresh_certificates()
            v3sign.verify_signed(headers, body, self.ring, self._now())

    async def _send(self, request: HttpRequest, what: str) -> HttpResponse:
        response = await self._transport.send(request)
        if response.status >= 500:
            return response  # gateways answer 5xx unsigned; parse_* treats it as retryable
        try:
            await self._verify(response.headers, response.body)
        except v3sign.SignatureRejected as exc:
            raise ProviderError(f"WeChat Pay {what}: {exc.reason}", provider=self.name,
                                code="provider_bad_signature") from exc
        return response

    # -- operations --------------------------------------------------------------------
    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        sent = v3.build_create(self.account, request, self._now(), self._nonce())
        response = await self._send(sent, "create")
        return v3.parse_create(self.account, response, self._now(), self._nonce())

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        response = await self._send(v3.build_query(self.account, ref, self._now(), self._nonce()),
                                    "query")
        return v3.parse_query(ref, response)

    async def close_payment(self, ref: PaymentRef) -> None:
        response = await self._send(v3.build_close(self.account, ref, self._now(), self._nonce()),
                                    "close")
        v3.parse_close(response)

    async def refund(self, request: RefundRequest) -> RefundState:
        sent = v3.build_refund(self.account, request, self._now(), self._nonce())
        return v3.parse_refund(request, await self._send(sent, "refund"))

    async def query_refund(self, request: RefundRequest) -> RefundState:
        sent = v3.build_refund_query(self.account, request, self._now(), self._nonce())
        state = v3.parse_refund_query(request, await self._send(sent, "refund query"))
        if state.detail == v3.REFUND_NOT_FOUND:
            # Never arrived (its sender died between claiming and sending it): send it now.
            # WeChat Pay keeps out_refund_no unique per merchant, so this cannot double.
            return await self.refund(request)
        return state

    async def verify_notification(self, notification: IncomingNotification
                                  ) -> VerifiedNotification:
        try:
            await self._verify(notification.headers, notification.body)
        except v3sign.SignatureRejected as exc:
            raise NotificationRejected(exc.reason) from exc
        except ProviderError as exc:  # the certificate refresh itself failed
            raise NotificationRejected(f"cannot refresh platform certificates: {exc.message}") \
                from exc
        return v3.parse_notification(self.account, notification.body)

    def ack(self, ok: bool, reason: str = "") -> Ack:
        status, body = v3.ack(ok, reason)
        return Ack(status, body, "application/json")


class WechatpayV2Client:
    """WeChat Pay API v2 (XML, MD5 / HMAC-SHA256) for mini programs."""

    channels = frozenset({Channel.WECHAT})
    currencies = CURRENCIES
    supports_close = True

    def __init__(self, account: v2.V2Account, transport: Transport, *,
                 clock: Clock | None = None, nonce: Callable[[], str] = new_nonce,
                 name: str = "wechatpay-v2", min_close_age: int = MIN_CLOSE_AGE) -> None:
        self.account = account
        self.name = name
        self.min_close_age = min_close_age
        self.identity = {"app_id": account.appid, "merchant_id": account.mchid}
        self._transport = transport
        self._clock = clock or SystemClock()
        self._nonce = nonce

    def needs_openid(self, channel: Channel) -> bool:
        return True

    async def create_payment(self, request: PaymentRequest) -> CreatedPayment:
        response = await self._transport.send(
            v2.build_unifiedorder(self.account, request, self._nonce()))
        return v2.parse_unifiedorder(self.account, response,
                                     int(self._clock.now().timestamp()), self._nonce())

    async def query_payment(self, ref: PaymentRef) -> PaymentState:
        response = await self._transport.send(v2.build_orderquery(self.account, ref, self._nonce()))
        return v2.parse_orderquery(self.account, ref, response)

    async def close_payment(self, ref: PaymentRef) -> None:
        response = await self._transport.send(v2.build_closeorder(self.account, ref, self._nonce()))
        v2.parse_closeorder(self.account, response)

    async def refund(self, request: RefundRequest) -> RefundState:
        response = await self._transport.send(v2.build_refund(self.account, request, self._nonce()))
        return v2.parse_refund(self.account, request, response)

    async def query_refund(self, request: RefundRequest) -> RefundState:
        response = await self._transport.send(
            v2.build_refundquery(self.account, request, self._nonce()))
        state = v2.parse_refundquery(self.account, request, response)
        if state.detail == v2.REFUND_NOT_FOUND:  # never arrived: send it (same out_refund_no)
            return await self.refund(request)
        return state

    def verify_notification(self, notification: IncomingNotification) -> VerifiedNotification:
        return v2.verify_notification(self.account, notification.body)

    def ack(self, ok: bool, reason: str = "") -> Ack:
        status, body = v2.ack(ok, reason)
        return Ack(status, body, "text/xml")
