"""The API's bodies, requests and answers: the one source of ``/openapi.json`` and of the
typed client (:mod:`minigate.client`).

Amounts are strings (``"12.30"``): a JSON number is refused, never rounded. Every string,
list and map is bounded; ``metadata`` is limited in size, depth and key count.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
)

from minigate.domain.events import EventType
from minigate.domain.money import CURRENCY_EXPONENTS
from minigate.domain.states import OrderStatus, RefundStatus
from minigate.providers.base import Channel

__all__ = [
    "Channel", "OrderStatus", "RefundStatus", "EventType", "ProviderId", "CURRENCIES",
    "CreateOrder", "CreateRefund", "ClientPay", "Order", "CreatedOrder", "OrderSummary",
    "OrderList", "Refund", "Event", "EventList", "PayParams", "ClientOrderStatus",
    "ErrorBody", "ErrorDetail", "ERROR_CODES",
]


class ProviderId(StrEnum):
    """The provider connectors minigate has (``providers/registry.py``)."""

    LATIPAY = "latipay"
    QFPAY = "qfpay"
    CBTIS = "cbtis"
    WECHATPAY = "wechatpay"
    WECHATPAY_V2 = "wechatpay-v2"


#: ISO 4217 codes minigate knows the minor units of (``domain/money.py``).
CURRENCIES: tuple[str, ...] = tuple(sorted(CURRENCY_EXPONENTS))


def _known_currency(value: str) -> str:
    if value not in CURRENCY_EXPONENTS:
        raise ValueError(f"unsupported currency {value!r}")
    return value


Currency = Annotated[
    str, Field(strict=True, min_length=3, max_length=3), AfterValidator(_known_currency),
    WithJsonSchema({"type": "string", "enum": list(CURRENCIES),
                    "description": "ISO 4217 code; the provider's own list is checked too"}),
]



def amount_pattern(exponent: int) -> str:
    """A positive decimal string with at most ``exponent`` decimals, below 10^15 minor units."""
    whole = 15 - exponent
    if exponent == 0:
        return rf"^[1-9][0-9]{{0,{whole - 1}}}$"
    fraction = f"[0-9]{{1,{exponent}}}"
    # "0.xx" must not be zero: some digit after the point is 1-9.
    small = "|".join(f"0{{{n}}}[1-9][0-9]{{0,{exponent - n - 1}}}" for n in range(exponent))
    return rf"^([1-9][0-9]{{0,{whole - 1}}}(\.{fraction})?|0\.({small}))$"


#: More than zero, at most 2 decimals (``"12.30"``, ``"1000"``); the currency may allow
#: fewer (JPY: none), which the create-order schema states per currency.
AMOUNT_PATTERN = amount_pattern(2)
AMOUNT_TEXT = ('Decimal string in the currency\'s units, e.g. "12.30"; more than zero and '
               "no more decimals than the currency has")
Amount = Annotated[str, Field(strict=True, min_length=1, max_length=20, pattern=AMOUNT_PATTERN,
                              description=AMOUNT_TEXT, examples=["12.30"])]

#: Ids minigate hands out are short (``ord_…``, ``re_…``, ``evt_…``); anything longer is not ours.
ID_MAX = 64
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

def _whole_number(value: Any) -> Any:
    """JSON integers only; ``60.0`` is one (JSON Schema says so), ``"60"`` and ``true`` not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


# -- metadata -----------------------------------------------------------------------------

METADATA_MAX_KEYS = 50
METADATA_KEY_MAX = 40
METADATA_VALUE_MAX = 200

def _check_metadata(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > METADATA_MAX_KEYS:
        raise ValueError(f"metadata has more than {METADATA_MAX_KEYS} keys")
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise ValueError(f"metadata keys are at most {METADATA_KEY_MAX} characters")
        if isinstance(item, str):
            if len(item) > METADATA_VALUE_MAX:
                raise ValueError(f"metadata.{key}: strings are at most "
                                 f"{METADATA_VALUE_MAX} characters")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"metadata.{key}: numbers must be finite")
        elif item is not None and not isinstance(item, int):  # bool is an int
            raise ValueError(f"metadata.{key}: values are strings, numbers, booleans or "
                             "null (metadata is flat)")
    return value


#: Flat (one level deep), at most 50 keys of 40 characters, string values of 200 characters
#: (about 12,000 characters in all). The schema states every bound the check enforces, so
#: the document and the server agree on what is acceptable.
Metadata = Annotated[
    dict[str, Any], AfterValidator(_check_metadata),
    WithJsonSchema({
        "type": "object", "maxProperties": METADATA_MAX_KEYS,
        "propertyNames": {"maxLength": METADATA_KEY_MAX},
        "additionalProperties": {"anyOf": [
            {"type": "string", "maxLength": METADATA_VALUE_MAX}, {"type": "number"},
            {"type": "boolean"}, {"type": "null"}]},
        "description": f"Your own values, returned as given: flat, at most "
                       f"{METADATA_MAX_KEYS} keys of {METADATA_KEY_MAX} characters; values "
                       f"are strings of {METADATA_VALUE_MAX} characters, numbers, booleans "
                       "or null",
        "examples": [{"cart": "c_81", "table": 4}],
    }, mode="validation"),
]


# -- requests -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class CreateOrder(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "merchant_reference": "cart-81", "amount": "12.30", "currency": "NZD",
        "description": "Flat white", "channel": "wechat"}]})

    merchant_reference: str = Field(min_length=1, max_length=64,
                                    description="Your own reference for this order")
    #: Checked against the currency's digits (domain.money); the deployment's OpenAPI
    #: states the exact pattern per currency (api.openapi).
    amount: str = Field(strict=True, min_length=1, max_length=20,
                        description=AMOUNT_TEXT, examples=["12.30"])
    currency: Currency
    description: str = Field(min_length=1, max_length=127,
                             description="Shown to the shopper by WeChat / Alipay")
    channel: Channel
    provider: ProviderId | None = Field(
        default=None, description="Which provider; default: the one configured for the channel")
    expires_in: Annotated[int, Field(ge=60, le=7 * 24 * 3600),
                          BeforeValidator(_whole_number)] | None = Field(
        default=None, description="Seconds the order stays payable (60 s to 7 days)")
    metadata: Metadata = Field(default_factory=dict)


class CreateRefund(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"amount": "5.00", "reason": "one cup returned"}]})

    amount: Amount | None = Field(default=None,
                                  description="All that is left to refund when absent")
    reason: str = Field(default="", max_length=255)


class ClientPay(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"client_token": "ct_3kq9…", "login_code": "0a1b2c3d"}]})

    client_token: str = Field(
        min_length=1, max_length=128,
        description="The order's `client_token` (from `POST /v1/orders`), handed to the mini "
                    "program by the merchant's server: it authorises the client routes")
    login_code: str | None = Field(default=None, min_length=1, max_length=128,
                                   description="The code from `wx.login()` (WeChat channel)")


# -- answers ------------------------------------------------------------------------------

_ANSWER = ConfigDict(extra="forbid")

PaymentStatus = Literal["created", "pending", "unknown", "succeeded", "failed", "closed"]
Timestamp = Annotated[str, Field(description="ISO 8601, UTC", examples=["2026-11-28T08:30:00Z"])]


class Payment(BaseModel):
    model_config = _ANSWER
    id: str
    status: PaymentStatus
    provider: ProviderId
    provider_order_no: str
    provider_txn_id: str | None
    created_at: Timestamp


class Refund(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "id": "re_8Xq2", "object": "refund", "order_id": "ord_5Tg1", "status": "pending",
        "amount": "5.00", "currency": "NZD", "reason": "", "failure_reason": None,
        "provider_refund_no": "R2611280830001", "created_at": "2026-11-28T08:31:00Z",
        "updated_at": "2026-11-28T08:31:00Z"}]})
    id: str
    object: Literal["refund"]
    order_id: str
    status: RefundStatus
    amount: str
    currency: str = Field(json_schema_extra={"enum": list(CURRENCIES)})
    reason: str
    failure_reason: str | None
    provider_refund_no: str
    created_at: Timestamp
    updated_at: Timestamp


class TimelineEntry(BaseModel):
    model_config = _ANSWER
    id: str
    type: EventType
    created_at: Timestamp
    data: dict[str, Any]


class OrderSummary(BaseModel):
    """An order as lists show it."""

    model_config = _ANSWER
    id: str
    object: Literal["order"]
    status: OrderStatus
    paid: bool
    merchant_reference: str
    amount: str
    amount_refunded: str
    currency: str = Field(json_schema_extra={"enum": list(CURRENCIES)})
    description: str
    provider: ProviderId
    channel: Channel
    metadata: dict[str, Any]
    flagged: bool = Field(description="A notification disagreed with the order: look at it")
    expires_at: Timestamp
    paid_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


_ORDER_EXAMPLE: dict[str, Any] = {
    "id": "ord_5Tg1", "object": "order", "status": "created", "paid": False,
    "merchant_reference": "cart-81", "amount": "12.30", "amount_refunded": "0.00",
    "currency": "NZD", "description": "Flat white", "provider": "latipay", "channel": "wechat",
    "metadata": {}, "flagged": False, "expires_at": "2026-11-28T09:00:00Z", "paid_at": None,
    "created_at": "2026-11-28T08:30:00Z", "updated_at": "2026-11-28T08:30:00Z",
    "payments": [], "refunds": [],
    "timeline": [{"id": "evt_1", "type": "order.created", "created_at": "2026-11-28T08:30:00Z",
                  "data": {"amount": "12.30"}}],
}


class Order(OrderSummary):
    """An order with its payment, refunds and timeline."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_ORDER_EXAMPLE]})
    payments: list[Payment]
    refunds: list[Refund]
    timeline: list[TimelineEntry]


class CreatedOrder(Order):
    """The new order, with the one-time ``client_token`` for the mini program."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{**_ORDER_EXAMPLE, "client_token": "ct_3kq9…"}]})
    client_token: str = Field(description="Hand it to the mini program: it authorises "
                                          "`/v1/client/…` for this order only. Shown once.")


class OrderList(BaseModel):
    model_config = _ANSWER
    object: Literal["list"]
    data: list[OrderSummary]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")


class Delivery(BaseModel):
    model_config = _ANSWER
    status: Literal["none", "pending", "delivered", "parked"]
    attempts: int
    last_error: str | None


class Event(BaseModel):
    model_config = _ANSWER
    id: str
    object: Literal["event"]
    type: EventType
    order_id: str | None
    sequence: int = Field(description="Increasing; pass the last one seen as `after`")
    created_at: Timestamp
    data: dict[str, Any]
    delivery: Delivery


class EventList(BaseModel):
    model_config = _ANSWER
    object: Literal["list"]
    data: list[Event]
    has_more: bool


class PayParams(BaseModel):
    """What the mini program passes on: ``wx.requestPayment(wechat)`` or
    ``my.tradePay(alipay)``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "order_id": "ord_5Tg1", "provider": "latipay", "channel": "wechat",
        "wechat": {"timeStamp": "1795854600", "nonceStr": "5K8264ILTKCH16CQ",
                   "package": "prepay_id=wx2017033010242291fcfe0db70013231072",
                   "signType": "MD5", "paySign": "22D9B4E54AB1950F51E0649E8810ACD6"}}]})
    order_id: str
    provider: ProviderId
    channel: Channel
    wechat: dict[str, str] | None = Field(default=None,
                                          description="`wx.requestPayment` arguments")
    alipay: dict[str, str] | None = Field(default=None,
                                          description="`my.tradePay` arguments")


class ClientOrderStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"id": "ord_5Tg1", "status": "paid", "paid": True}]})
    id: str
    status: OrderStatus
    paid: bool


# -- the one error shape ------------------------------------------------------------------

#: Every ``error.code`` minigate sends, with when.
ERROR_CODES: dict[str, str] = {
    "invalid_request": "the request is not acceptable (see message and param)",
    "invalid_field": "a field, parameter or header has a value outside its schema",
    "missing_field": "a required field, parameter or header is missing",
    "invalid_amount": "the amount is not a decimal string the currency allows",
    "invalid_currency": "the currency is not one minigate knows",
    "invalid_body": "the body cannot be decoded (not UTF-8 JSON)",
    "currency_not_supported": "the chosen provider does not charge in this currency",
    "channel_not_supported": "the chosen provider does not serve this channel",
    "provider_not_configured": "no provider is configured for this channel / id",
    "invalid_refund_amount": "the refund amount is zero or not a valid amount",
    "missing_login_code": "the channel needs the `wx.login()` code",
    "invalid_login_code": "WeChat did not accept the login code",
    "login_not_configured": "WeChat login (jscode2session) is not configured",
    "webhooks_not_configured": "no webhook URL is configured",
    "unauthorized": "missing or wrong API key",
    "invalid_client_token": "the client_token does not belong to this order",
    "not_found": "no such order, refund, event or route",
    "method_not_allowed": "the route exists, not with this method",
    "http_error": "another HTTP-level refusal",
    "login_blocked": "WeChat blocked this shopper's login (high-risk user)",
    "conflict": "the order's state does not allow it",
    "order_not_closable": "only unpaid orders can be closed",
    "close_too_early": "the provider does not allow closing the order yet (WeChat: 5 minutes)",
    "order_already_paid": "the order is paid",
    "order_closed": "the order is closed",
    "order_failed": "the order failed",
    "order_expired": "the order has expired",
    "order_not_refundable": "the order is not paid",
    "payer_mismatch": "another shopper is already paying this order",
    "duplicate_merchant_reference": "an order with this merchant_reference exists",
    "idempotency_key_in_use": "a request with this Idempotency-Key is still running",
    "idempotency_key_reused": "the Idempotency-Key was used with another request",
    "refund_exceeds_paid": "more than is left to refund",
    "request_timeout": "the body did not arrive in time",
    "body_too_large": "the body is larger than the limit",
    "rate_limited": "too many requests",
    "provider_error": "the provider refused or answered nonsense",
    "provider_auth_failed": "the provider refused our credentials",
    "provider_bad_signature": "the provider's answer failed verification",
    "provider_timeout": "the provider did not answer in time: outcome unknown until a query",
    "provider_unavailable": "the provider could not be reached: nothing was sent, retry",
    "database_unavailable": "the database could not be reached: nothing was changed, retry",
    "internal_error": "a bug: nothing was changed by this request",
}

ErrorType = Literal["invalid_request_error", "authentication_error", "rate_limit_error",
                    "provider_error", "api_error"]


class ErrorDetail(BaseModel):
    model_config = _ANSWER
    type: ErrorType
    code: str = Field(json_schema_extra={"enum": list(ERROR_CODES)},
                      description="Stable, for programs: "
                                  + "; ".join(f"`{k}`: {v}" for k, v in ERROR_CODES.items()))
    message: str = Field(description="For people; may change")
    param: str | None = Field(default=None, description="The field, parameter or header at fault")


class ErrorBody(BaseModel):
    """Every error minigate answers, whatever the status."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"error": {
        "type": "invalid_request_error", "code": "invalid_amount",
        "message": "amount '12.345' has more than 2 decimal places for NZD",
        "param": "amount"}}]})
    error: ErrorDetail
