"""Latipay requests and responses as pure functions over HttpRequest/HttpResponse values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from minigate.domain.money import Money, MoneyError, minor_from_decimal
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
from minigate.providers.latipay import signing

PROVIDER = "latipay"
JSON_HEADERS = {"Content-Type": "application/json;charset=UTF-8", "Accept": "application/json"}

#: Latipay statuses (notification and query) mapped exhaustively; anything else is UNKNOWN.
STATUS_MAP: dict[str, ProviderPaymentStatus] = {
    "pending": ProviderPaymentStatus.PENDING,
    "paid": ProviderPaymentStatus.PAID,
    "failed": ProviderPaymentStatus.FAILED,
    "rejected": ProviderPaymentStatus.FAILED,
    "canceled": ProviderPaymentStatus.CLOSED,
    "cancelled": ProviderPaymentStatus.CLOSED,
}

#: Error codes (providers.md §1.9) after which the same call can never succeed.
REFUND_ALREADY_DONE = 562
ORDER_NOT_EXIST = 201


@dataclass(frozen=True, slots=True)
class LatipayAccount:
    """One Latipay wallet. ``app_id`` is the WeChat mini program AppID."""

    user_id: str
    wallet_id: str
    api_key: str
    base_url: str = "https://api.latipay.net"
    app_id: str = ""
    currency: str = "NZD"  # the wallet's: Latipay charges in it whatever the order says

    def __repr__(self) -> str:  # never print the key
        return f"LatipayAccount(user_id={self.user_id!r}, wallet_id={self.wallet_id!r})"


def _signed_json(account: LatipayAccount, path: str, params: dict[str, str]) -> HttpRequest:
    body = dict(params)
    body["signature"] = signing.sign_request(params, account.api_key)
    return HttpRequest(
        "POST", account.base_url.rstrip("/") + path, JSON_HEADERS,
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
    )


def build_create(account: LatipayAccount, req: PaymentRequest) -> HttpRequest:
    """``/v2/miniapppay`` (WeChat) or ``/v2/minialipay`` (Alipay)."""
    common = {
        "user_id": account.user_id,
        "wallet_id": account.wallet_id,
        "amount": req.amount.decimal_str(),
        "merchant_reference": req.provider_order_no,
        "product_name": req.description,
    }
    if req.channel is Channel.WECHAT:
        if not req.openid:
            raise ValueError("WeChat mini app payments need the shopper's openid")
        params = {**common, "notify_url": req.notify_url, "app_id": account.app_id,
                  "open_id": req.openid}
        return _signed_json(account, "/v2/miniapppay", params)
    # The doc's example adds payment_method, its table and signature example do not: omit it.
    params = {**common, "callback_url": req.notify_url, "ip": req.client_ip, "version": "2.0"}
    return _signed_json(account, "/v2/minialipay", params)


def _json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    # Numbers become Decimals: the query's ``amount`` is a JSON number, and it may come as
    # ``120.00``, ``120.0`` or ``120`` (a serialiser that drops a zero fraction).
    try:
        data = json.loads(response.body, parse_float=Decimal, parse_int=Decimal)
    except ValueError as exc:
        raise ProviderError(f"Latipay {what}: answer is not JSON (HTTP {response.status})",
                            provider=PROVIDER, retryable=response.status >= 500) from exc
    if not isinstance(data, dict):
        raise ProviderError(f"Latipay {what}: answer is not an object", provider=PROVIDER)
    return data


def _raise_for_code(data: Mapping[str, Any], response: HttpResponse, what: str) -> None:
    code = data.get("code", 0)
    if response.status >= 500:
        raise ProviderError(f"Latipay {what}: HTTP {response.status}", provider=PROVIDER,
                            retryable=True)
    if code not in (0, "0", None):
        message = str(data.get("message", ""))[:200]
        raise ProviderError(f"Latipay {what} refused: {code} {message}".strip(),
                            provider=PROVIDER, provider_code=str(code),
                            retryable=str(code) == "1")


def parse_create(req: PaymentRequest, response: HttpResponse) -> CreatedPayment:
    """Client params: ``packageStr`` renamed ``package``; ``gatewaydata`` joined in order."""
    data = _json_object(response, "create")
    _raise_for_code(data, response, "create")
    paydata = data.get("paydata") or {}
    if req.channel is Channel.WECHAT:
        payment = data.get("payment")
        if not isinstance(payment, dict):
            raise ProviderError("Latipay create: no payment params", provider=PROVIDER)
        try:
            wechat = {
                "timeStamp": str(payment["timeStamp"]),
                "nonceStr": str(payment["nonceStr"]),
                "package": str(payment["packageStr"]),
                "signType": str(payment.get("signType") or "MD5"),
                "paySign": str(payment["paySign"]),
            }
        except KeyError as exc:
            raise ProviderError(f"Latipay create: payment lacks {exc}", provider=PROVIDER) from exc
        return CreatedPayment(provider_txn_id=_str_or_none(paydata.get("order_id")),
                              wechat=wechat)
    gateway = data.get("gatewaydata")
    if not isinstance(gateway, dict) or not gateway:
        raise ProviderError("Latipay create: no gatewaydata", provider=PROVIDER)
    order_str = "&".join(f"{k}={v}" for k, v in gateway.items())  # received order, raw values
    return CreatedPayment(provider_txn_id=_str_or_none(paydata.get("orderId")),
                          alipay={"orderStr": order_str})


def build_query(account: LatipayAccount, ref: PaymentRef) -> HttpRequest:
    params = {"merchant_reference": ref.provider_order_no, "user_id": account.user_id}
    signature = signing.sign_request(params, account.api_key)
    query = urlencode({"user_id": account.user_id, "signature": signature})
    path = "/v2/transaction/" + quote(ref.provider_order_no, safe="")
    return HttpRequest("GET", f"{account.base_url.rstrip('/')}{path}?{query}",
                       {"Accept": "application/json"})


def parse_query(account: LatipayAccount, ref: PaymentRef, response: HttpResponse) -> PaymentState:
    """Verify the response signature, then map the status. ``amount`` is a JSON number."""
    data = _json_object(response, "query")
    if str(data.get("code", 0)) == str(ORDER_NOT_EXIST):
        return PaymentState(ref.provider_order_no, ProviderPaymentStatus.NOT_FOUND)
    _raise_for_code(data, response, "query")
    fields = _result_fields(data)
    if fields["merchant_reference"] != ref.provider_order_no:
        raise ProviderError("Latipay query answered for another order", provider=PROVIDER)
    if not _result_signature_ok(account, fields, data.get("amount"), data.get("signature")):
        raise ProviderError("Latipay query response signature is wrong", provider=PROVIDER,
                            code="provider_bad_signature")
    return _payment_state(fields, data.get("amount"), _str_or_none(data.get("order_id")))


def _result_fields(data: Mapping[str, Any]) -> dict[str, str]:
    names = ("merchant_reference", "payment_method", "status", "currency")
    return {name: str(data.get(name) or "") for name in names}


def _amount_texts(amount: object) -> list[str]:
    """The textual forms Latipay may have signed: as sent, and with two decimals."""
    if isinstance(amount, Decimal):
        texts = [str(amount)]
        try:
            texts.append(f"{amount.quantize(Decimal('0.01'))}")
        except InvalidOperation:
            pass
        return list(dict.fromkeys(texts))
    return [str(amount)] if isinstance(amount, str | int) else []


def _result_signature_ok(
    account: LatipayAccount, fields: Mapping[str, str], amount: object, signature: object
) -> bool:
    if not isinstance(signature, str) or not signature:
        return False
    ok = False
    for text in _amount_texts(amount):
        expected = signing.result_signature(
            account.api_key, fields["merchant_reference"], fields["payment_method"],
            fields["status"], fields["currency"], text,
        )
        ok |= signing.signatures_match(expected, signature)
    return ok


def _payment_state(
    fields: Mapping[str, str], amount: object, txn_id: str | None
) -> PaymentState:
    status = STATUS_MAP.get(fields["status"].lower(), ProviderPaymentStatus.UNKNOWN)
    money: Money | None = None
    try:
        if isinstance(amount, Decimal):
            money = Money(minor_from_decimal(amount, fields["currency"]), fields["currency"])
        elif isinstance(amount, str):
            money = Money.parse(amount, fields["currency"])
    except MoneyError:
        money = None  # an unparseable amount never matches the order: flagged downstream
    return PaymentState(
        provider_order_no=fields["merchant_reference"], status=status, amount=money,
        provider_txn_id=txn_id, detail=fields["status"],
    )


def verify_notification(
    account: LatipayAccount, notification: IncomingNotification
) -> VerifiedNotification:
    """Form-encoded POST; HMAC over the concatenated fields, checked before anything else."""
    try:
        text = notification.body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotificationRejected("body is not a UTF-8 form") from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise NotificationRejected(f"field {key} repeated")
        form[key] = value
    fields = _result_fields(form)
    if not fields["merchant_reference"] or not fields["status"]:
        raise NotificationRejected("merchant_reference and status are required")
    if not _result_signature_ok(account, fields, form.get("amount", ""), form.get("signature")):
        raise NotificationRejected("signature mismatch")
    state = _payment_state(fields, form.get("amount", ""), form.get("order_id") or None)
    return VerifiedNotification(
        event_key=f"{fields['merchant_reference']}:{fields['status'].lower()}",
        payment=state, raw={k: v for k, v in form.items() if k != "signature"},
    )


def notification_hint(notification: IncomingNotification) -> str | None:
    """The ``merchant_reference`` an unverified notification names (untrusted)."""
    try:
        form = dict(parse_qsl(notification.body.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        return None
    reference = form.get("merchant_reference", "")
    return reference[:64] or None


def build_refund(account: LatipayAccount, req: RefundRequest) -> HttpRequest:
    """``POST /refund``. Latipay has no refund number of its own: ours goes first in
    ``reference`` so a retried refund is recognised (562 "already done")."""
    if not req.payment.provider_txn_id:
        raise ValueError("Latipay refunds need the Latipay order_id")
    reference = f"{req.provider_refund_no} {req.reason}".strip()[:100]
    params = {
        "user_id": account.user_id,
        "order_id": req.payment.provider_txn_id,
        "refund_amount": req.amount.decimal_str(),
        "reference": reference,
    }
    return _signed_json(account, "/refund", params)


def parse_refund(req: RefundRequest, response: HttpResponse) -> RefundState:
    data = _json_object(response, "refund")
    code = str(data.get("code", 0))
    if response.status < 500 and code in ("0", str(REFUND_ALREADY_DONE)):
        return RefundState(req.provider_refund_no, ProviderRefundStatus.SUCCEEDED, req.amount)
    if response.status >= 500 or code == "1":
        return RefundState(req.provider_refund_no, ProviderRefundStatus.UNKNOWN,
                           detail=f"HTTP {response.status} code {code}")
    message = str(data.get("message", ""))[:200]
    return RefundState(req.provider_refund_no, ProviderRefundStatus.FAILED,
                       detail=f"{code} {message}".strip())


def build_cancel(account: LatipayAccount, ref: PaymentRef) -> HttpRequest:
    params = {"user_id": account.user_id, "merchant_reference": ref.provider_order_no}
    return _signed_json(account, "/cancel", params)


def parse_cancel(response: HttpResponse) -> None:
    data = _json_object(response, "cancel")
    _raise_for_code(data, response, "cancel")


def ack(ok: bool) -> tuple[int, bytes]:
    """Latipay stops re-sending only on HTTP 200 with the body ``sent``."""
    return (200, b"sent") if ok else (400, b"rejected")


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
