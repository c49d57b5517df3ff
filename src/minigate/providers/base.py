"""What every provider connector speaks: plain request/response values and outcome records.

A connector is split in two:

* ``messages`` (pure): builds :class:`HttpRequest` values, signs them, parses
  :class:`HttpResponse` values and notifications into the outcome records below. No I/O,
  time and randomness passed in, so vectors and property tests cover it.
* ``client`` (thin, async): strings those pure steps together over a :class:`Transport`
  (e.g. CBTIS fetches an access token first). The transport is the only place that does I/O.

Provider wire types never leave the provider's folder: the service layer only sees the
records here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from minigate.domain.money import Money


class Channel(StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A TLS client certificate some provider calls need (mutual TLS), as PEM file paths."""

    cert_path: str
    key_path: str


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One HTTP request to a provider, with the exact body bytes that were signed.

    ``client_cert``: send this request with that TLS client certificate (e.g. WeChat Pay
    v2 refunds); the transport keeps one connection pool per certificate.
    """

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_cert: ClientCertificate | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One HTTP response; header names are lower-case."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class Transport(Protocol):
    """The single I/O seam for provider calls (see :mod:`minigate.transport`)."""

    async def send(self, request: HttpRequest) -> HttpResponse: ...


class ProviderPaymentStatus(StrEnum):
    """A provider's view of a payment, mapped exhaustively by each connector."""

    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    CLOSED = "closed"
    REFUNDED = "refunded"  # paid, then (partly) refunded: money was taken
    NOT_FOUND = "not_found"
    UNKNOWN = "unknown"


class ProviderRefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What the service asks a connector to create. ``provider_order_no`` is stored first."""

    provider_order_no: str
    amount: Money
    channel: Channel
    description: str
    notify_url: str
    expires_at: datetime
    created_at: datetime
    openid: str | None = None
    client_ip: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class CreatedPayment:
    """The provider accepted the payment: client params for the mini program.

    ``wechat`` holds exactly what ``wx.requestPayment`` takes (timeStamp, nonceStr, package,
    signType, paySign), plus ``appId`` when the PSP sends it (the wallet ignores it);
    ``alipay`` holds ``{"orderStr": …}`` or ``{"tradeNO": …}``.
    """

    provider_txn_id: str | None = None
    wechat: dict[str, str] | None = None
    alipay: dict[str, str] | None = None
    status: ProviderPaymentStatus = ProviderPaymentStatus.PENDING


@dataclass(frozen=True, slots=True)
class PaymentRef:
    """How to find a payment again at the provider."""

    provider_order_no: str
    amount: Money
    created_at: datetime
    provider_txn_id: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentState:
    """The provider's word on a payment (from a query or a verified notification)."""

    provider_order_no: str
    status: ProviderPaymentStatus
    amount: Money | None = None
    provider_txn_id: str | None = None
    app_id: str | None = None
    merchant_id: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RefundRequest:
    payment: PaymentRef
    provider_refund_no: str
    amount: Money
    reason: str = ""
    notify_url: str = ""
    requested_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefundState:
    provider_refund_no: str
    status: ProviderRefundStatus
    amount: Money | None = None
    provider_refund_id: str | None = None
    provider_order_no: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class IncomingNotification:
    """A provider callback exactly as received: verify ``body`` before parsing it."""

    headers: Mapping[str, str]  # lower-case names
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class VerifiedNotification:
    """A notification that passed verification.

    ``event_key`` is unique per provider event: duplicates share it and change nothing.
    ``trusted`` is False for providers whose callbacks are only a hint (CBTIS): the service
    then confirms by query before any transition.
    """

    event_key: str
    payment: PaymentState | None = None
    refund: RefundState | None = None
    trusted: bool = True
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ack:
    """What to answer the provider, in its own format."""

    status: int
    body: bytes = b""
    content_type: str = "text/plain"


class ProviderClient(Protocol):
    """The operations the service layer needs from every provider."""

    name: str
    channels: frozenset[Channel]
    #: The only currencies the account can charge in (each connector states its source);
    #: an order in any other is refused at creation (service.orders) and the OpenAPI of the
    #: deployment lists them (api.openapi).
    currencies: frozenset[str]
    supports_close: bool
    #: Seconds after creation before the provider accepts a close (WeChat: 300).
    min_close_age: int
    # Optional: ``identity: dict[str, str]`` with "app_id"/"merchant_id"; the service flags
    # a notification or query whose PaymentState names other ids (see service.payments).

    def needs_openid(self, channel: Channel) -> bool: ...

    async def create_payment(self, request: PaymentRequest) -> CreatedPayment: ...

    async def query_payment(self, ref: PaymentRef) -> PaymentState: ...

    async def close_payment(self, ref: PaymentRef) -> None: ...

    async def refund(self, request: RefundRequest) -> RefundState: ...

    async def query_refund(self, request: RefundRequest) -> RefundState: ...

    def verify_notification(
        self, notification: IncomingNotification
    ) -> VerifiedNotification | Awaitable[VerifiedNotification]:
        """Verify and parse a callback; raise NotificationRejected when it does not hold.

        May be a coroutine for connectors that sometimes need I/O to verify (WeChat Pay v3
        fetches its platform certificates when it meets an unknown serial).
        """
        ...

    def ack(self, ok: bool, reason: str = "") -> Ack: ...


class NotificationHints(Protocol):
    """Optional: where an unverifiable notification *claims* to belong.

    Nothing in it is trusted; the service only uses it to query that payment sooner
    (rate-limited), so a lost-but-real notification is not lost and a forged one changes
    nothing.
    """

    def notification_hint(self, notification: IncomingNotification) -> str | None: ...


def clip_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, on a character boundary.

    For fields a provider bounds as ``string(N)`` without saying whether it counts
    characters or bytes (WeChat Pay's ``description`` and ``body``): within N bytes is
    within both readings. ASCII passes unchanged up to N characters."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", "ignore")  # drops only a split last character
