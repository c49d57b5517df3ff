"""CBTIS payment intents as pure functions over HttpRequest/HttpResponse values.

Confirmed parts and assumptions are separated: every assumed path, header, field or
status comes from :mod:`.assumptions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from minigate.domain.money import Money, MoneyError
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    Channel,
    CreatedPayment,
    HttpRequest,
    HttpResponse,
    IncomingNotification,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    ProviderPaymentStatus,
    ProviderRefundStatus,
    RefundRequest,
    RefundState,
    VerifiedNotification,
)
from minigate.providers.cbtis import assumptions as A
from minigate.providers.cbtis import signing

PROVIDER = "cbtis"
MAX_ORDER_ID = 32  # merchant_order_id: "Maximum length is 32"

#: Payment intent statuses mapped exhaustively; anything else is UNKNOWN.
STATUS_MAP: dict[str, ProviderPaymentStatus] = {
    "PENDING": ProviderPaymentStatus.PENDING,
    "SUCCEEDED": ProviderPaymentStatus.PAID,
    "CANCELLED": ProviderPaymentStatus.CLOSED,
}


@dataclass(frozen=True, slots=True)
class CbtisAccount:
    """One CBTIS merchant. ``sub_appid`` is the WeChat mini program AppID."""

    client_id: str
    api_key: str
    base_url: str
    sub_appid: str
    webhook_secret: str = ""

    def __repr__(self) -> str:  # never print the keys
        return f"CbtisAccount(client_id={self.client_id!r}, base_url={self.base_url!r})"


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_at: datetime

    def fresh(self, now: datetime) -> bool:
        """Usable for a call starting now (with a margin so it never expires in flight)."""
        return now + A.TOKEN_REFRESH_MARGIN < self.expires_at

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at.isoformat()})"


def _url(account: CbtisAccount, path: str) -> str:
    return account.base_url.rstrip("/") + path


def _json_body(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# -- authentication ---------------------------------------------------------------------
def build_login(account: CbtisAccount) -> HttpRequest:
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               A.CLIENT_ID_HEADER: account.client_id, A.API_KEY_HEADER: account.api_key}
    return HttpRequest("POST", _url(account, A.LOGIN_PATH), headers, b"{}")


def parse_login(response: HttpResponse, now: datetime) -> AccessToken:
    data = _json_object(response, "login")
    if response.status not in (200, 201):
        raise ProviderError(f"CBTIS login refused: HTTP {response.status}", provider=PROVIDER,
                            provider_code=str(data.get("code", "")) or None,
                            retryable=response.status >= 500, code="provider_auth_failed")
    inner = data.get("data")
    body: dict[str, Any] = inner if isinstance(inner, dict) else data
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise ProviderError("CBTIS login: no token", provider=PROVIDER)
    return AccessToken(token, _expiry(body.get("expires_at"), now))


def _expiry(value: object, now: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return now + A.DEFAULT_TOKEN_TTL


def authorised(request: HttpRequest, token: AccessToken) -> HttpRequest:
    """The same request with the bearer token; built last so a refresh can re-use it."""
    headers = {**request.headers, A.AUTH_HEADER: f"Bearer {token.token}"}
    return HttpRequest(request.method, request.url, headers, request.body)


def _call(account: CbtisAccount, path: str, payload: Mapping[str, Any]) -> HttpRequest:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    return HttpRequest("POST", _url(account, path), headers, _json_body(payload))


# -- envelopes ------------------------------------------------------------------------------
def _json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    if response.status >= 500:
        raise ProviderError(f"CBTIS {what}: HTTP {response.status}", provider=PROVIDER,
                            retryable=True)
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise ProviderError(f"CBTIS {what}: answer is not JSON (HTTP {response.status})",
                            provider=PROVIDER) from exc
    if not isinstance(data, dict):
        raise ProviderError(f"CBTIS {what}: answer is not an object", provider=PROVIDER)
    return data


def _code(data: Mapping[str, Any]) -> str:
    return str(data.get("code", "")).strip()


def not_found(response: HttpResponse, data: Mapping[str, Any]) -> bool:
    return response.status == 404 or _code(data) in A.NOT_FOUND_CODES


def _envelope(response: HttpResponse, what: str) -> dict[str, Any]:
    """``data`` of a ``{code: 0, data}`` envelope, or a ProviderError keeping the code."""
    data = _json_object(response, what)
    code = _code(data)
    if response.status >= 400 or code != "0":
        message = str(data.get("message") or "")[:160]
        raise ProviderError(f"CBTIS {what} refused: {code or response.status} {message}".strip(),
                            provider=PROVIDER, provider_code=code or str(response.status))
    inner = data.get("data")
    if not isinstance(inner, dict):
        raise ProviderError(f"CBTIS {what}: no data", provider=PROVIDER)
    return inner


# -- amounts --------------------------------------------------------------------------------
def amount_text(money: Money) -> str:
    """ASSUMPTION A1: major units as a decimal string."""
    return money.decimal_str() if A.AMOUNT_IN_MAJOR_UNITS else str(money.minor)


def parse_amount(value: object, currency: object) -> Money | None:
    if not isinstance(value, str) or not isinstance(currency, str):
        return None  # a JSON number would be a float: refused, the order gets flagged
    try:
        return Money.parse(value, currency) if A.AMOUNT_IN_MAJOR_UNITS else Money(
            int(value), currency)
    except (MoneyError, ValueError):
        return None


# -- payments -------------------------------------------------------------------------------
def build_create(account: CbtisAccount, req: PaymentRequest) -> HttpRequest:
    if req.channel is not Channel.WECHAT:
        raise ValueError("CBTIS is wired for WeChat mini programs only")
    if not req.openid:
        raise ValueError("WeChat mini program payments need the shopper's openid")
    if len(req.provider_order_no) > MAX_ORDER_ID:
        raise ValueError("CBTIS merchant_order_id is at most 32 characters")
    payload = {
        "amount": amount_text(req.amount),
        "currency": req.amount.currency,
        "merchant_order_id": req.provider_order_no,
        "description": req.description or "order",
        "notify_url": req.notify_url,
        "payment_method": {"type": "wechat", "wechat": {
            "flow": "mini_program", "sub_appid": account.sub_appid, "sub_openid": req.openid}},
    }
    return _call(account, A.CREATE_PATH, payload)


def parse_create(req: PaymentRequest, response: HttpResponse) -> CreatedPayment:
    data = _envelope(response, "create")
    if str(data.get("merchant_order_id") or req.provider_order_no) != req.provider_order_no:
        raise ProviderError("CBTIS create answered for another order", provider=PROVIDER)
    action = data.get("next_action")
    params = action.get("data") if isinstance(action, dict) else None
    if not isinstance(params, dict):
        raise ProviderError("CBTIS create: no next_action.data", provider=PROVIDER)
    try:
        wechat = {name: str(params[name])
                  for name in ("timeStamp", "nonceStr", "package", "signType", "paySign")}
    except KeyError as exc:
        raise ProviderError(f"CBTIS create: next_action.data lacks {exc}",
                            provider=PROVIDER) from exc
    if params.get("appId"):
        wechat["appId"] = str(params["appId"])
    return CreatedPayment(provider_txn_id=_str_or_none(data.get("order_id")), wechat=wechat,
                          status=STATUS_MAP.get(str(data.get("status")),
                                                ProviderPaymentStatus.UNKNOWN))


def build_query(account: CbtisAccount, ref: PaymentRef) -> HttpRequest:
    payload = {"merchant_order_id": ref.provider_order_no}
    if ref.provider_txn_id:
        payload["order_id"] = ref.provider_txn_id
    return _call(account, A.QUERY_PATH, payload)


def parse_query(ref: PaymentRef, response: HttpResponse) -> PaymentState:
    raw = _json_object(response, "query")
    if not_found(response, raw):
        return PaymentState(ref.provider_order_no, ProviderPaymentStatus.NOT_FOUND)
    data = _envelope(response, "query")
    if str(data.get("merchant_order_id") or "") != ref.provider_order_no:
        raise ProviderError("CBTIS query answered for another order", provider=PROVIDER)
    status_text = str(data.get("status") or "")
    return PaymentState(
        provider_order_no=ref.provider_order_no,
        status=STATUS_MAP.get(status_text, ProviderPaymentStatus.UNKNOWN),
        amount=parse_amount(data.get("amount"), data.get("currency")),
        provider_txn_id=_str_or_none(data.get("order_id")), detail=status_text,
    )


def build_cancel(account: CbtisAccount, ref: PaymentRef) -> HttpRequest:
    payload = {"merchant_order_id": ref.provider_order_no}
    if ref.provider_txn_id:
        payload["order_id"] = ref.provider_txn_id
    return _call(account, A.CANCEL_PATH, payload)


def parse_cancel(response: HttpResponse) -> None:
    data = _envelope(response, "cancel")
    if str(data.get("status")) != "CANCELLED":
        raise ProviderError(f"CBTIS cancel: intent is {data.get('status')}", provider=PROVIDER)


# -- refunds --------------------------------------------------------------------------------
def build_refund(account: CbtisAccount, req: RefundRequest) -> HttpRequest:
    payload = {"merchant_order_id": req.payment.provider_order_no,
               "merchant_refund_id": req.provider_refund_no,
               "amount": amount_text(req.amount), "reason": req.reason or "refund"}
    if req.payment.provider_txn_id:
        payload["order_id"] = req.payment.provider_txn_id
    return _call(account, A.REFUND_PATH, payload)


def build_refund_query(account: CbtisAccount, req: RefundRequest) -> HttpRequest:
    return _call(account, A.REFUND_QUERY_PATH, {"merchant_refund_id": req.provider_refund_no})


def refund_status(text: str) -> ProviderRefundStatus:
    if text in A.REFUND_SUCCEEDED:
        return ProviderRefundStatus.SUCCEEDED
    if text in A.REFUND_PENDING:
        return ProviderRefundStatus.PENDING
    if text in A.REFUND_FAILED:
        return ProviderRefundStatus.FAILED
    return ProviderRefundStatus.UNKNOWN


def parse_refund(req: RefundRequest, response: HttpResponse) -> RefundState | None:
    """The refund's state; None when CBTIS does not know it (a lookup that missed)."""
    try:
        raw = _json_object(response, "refund")
    except ProviderError as exc:  # 5xx or garbage: it may have gone through
        return RefundState(req.provider_refund_no, ProviderRefundStatus.UNKNOWN,
                           detail=exc.message)
    if not_found(response, raw):
        return None
    try:
        data = _envelope(response, "refund")
    except ProviderError as exc:
        return RefundState(req.provider_refund_no, ProviderRefundStatus.FAILED,
                           detail=exc.message)
    status_text = str(data.get("status") or "")
    return RefundState(req.provider_refund_no, refund_status(status_text),
                       amount=parse_amount(data.get("amount"), data.get("currency")),
                       provider_refund_id=_str_or_none(data.get("refund_id")),
                       provider_order_no=req.payment.provider_order_no, detail=status_text)


# -- webhooks -------------------------------------------------------------------------------
def verify_notification(
    account: CbtisAccount, notification: IncomingNotification
) -> VerifiedNotification:
    """Signature and timestamp window first; the result is only a hint (``trusted=False``)."""
    if not account.webhook_secret:
        raise NotificationRejected("no webhook secret configured")
    timestamp = notification.headers.get(A.TIMESTAMP_HEADER, "")
    if not timestamp.isdigit():
        raise NotificationRejected("x-timestamp missing or not Unix milliseconds")
    sent_at = datetime.fromtimestamp(int(timestamp) / 1000, tz=notification.received_at.tzinfo)
    if abs(notification.received_at - sent_at) > A.WEBHOOK_WINDOW:
        raise NotificationRejected("x-timestamp outside the accepted window")
    expected = signing.webhook_signature(account.webhook_secret, timestamp, notification.body)
    if not signing.signatures_match(expected, notification.headers.get(A.SIGNATURE_HEADER)):
        raise NotificationRejected("x-signature does not match")
    try:
        body = json.loads(notification.body)
    except ValueError as exc:
        raise NotificationRejected("body is not JSON") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise NotificationRejected("no data object")
    return _hint(str(body.get("notify_type") or ""), data, body)


def _hint(kind: str, data: Mapping[str, Any], body: dict[str, Any]) -> VerifiedNotification:
    """One event per kind and order (or refund): re-deliveries are duplicates. A hint that
    was recorded but whose query failed is still covered: the reconciler keeps querying."""
    refund_no = str(data.get("merchant_refund_id") or "")
    if refund_no:
        refund = RefundState(refund_no, ProviderRefundStatus.UNKNOWN, detail=kind)
        return VerifiedNotification(f"{kind}:{refund_no}", refund=refund,
                                    trusted=False, raw=body)
    order_no = str(data.get("merchant_order_id") or "")
    if not order_no:
        raise NotificationRejected("merchant_order_id is required")
    state = PaymentState(order_no, ProviderPaymentStatus.UNKNOWN,
                         provider_txn_id=_str_or_none(data.get("order_id")), detail=kind)
    return VerifiedNotification(f"{kind}:{order_no}", payment=state,
                                trusted=False, raw=body)


def ack(ok: bool) -> tuple[int, bytes]:
    return A.ACK_OK if ok else A.ACK_REJECTED


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None

