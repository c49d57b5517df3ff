"""WeChat Pay API v3 requests and responses as pure functions over HttpRequest/HttpResponse.

Every function takes the timestamp and nonce it needs, so the exact bytes are testable.
Responses are verified by the client (:mod:`.client`) before they reach a ``parse_*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from minigate.domain.money import Money, MoneyError
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    CreatedPayment,
    HttpRequest,
    HttpResponse,
    PaymentRef,
    PaymentRequest,
    PaymentState,
    ProviderPaymentStatus,
    ProviderRefundStatus,
    RefundRequest,
    RefundState,
    VerifiedNotification,
    clip_utf8,
)
from minigate.providers.wechatpay import keys, v3sign

P, R = ProviderPaymentStatus, ProviderRefundStatus

#: ``trade_state`` mapped exhaustively; anything else is UNKNOWN (and queried again later).
TRADE_STATES: dict[str, ProviderPaymentStatus] = {
    "SUCCESS": P.PAID,
    "REFUND": P.REFUNDED,  # paid, then (partly) refunded: the money was taken
    "NOTPAY": P.PENDING,
    "USERPAYING": P.PENDING,
    "CLOSED": P.CLOSED,
    "REVOKED": P.CLOSED,
    "PAYERROR": P.FAILED,
}

#: Refund ``status`` / ``refund_status``. ABNORMAL is not final (the merchant can re-route
#: it with apply-abnormal-refund), so it stays pending and is polled.
REFUND_STATES: dict[str, ProviderRefundStatus] = {
    "SUCCESS": R.SUCCEEDED,
    "CLOSED": R.FAILED,
    "PROCESSING": R.PENDING,
    "ABNORMAL": R.PENDING,
}

CHINA = timezone(timedelta(hours=8))
USER_AGENT = "minigate-wechatpay/1"


@dataclass(frozen=True, slots=True)
class V3Account:
    """One WeChat Pay merchant on API v3 (the mini program's AppID is bound to it)."""

    mchid: str
    appid: str
    apiv3_key: str
    private_key: RSAPrivateKey
    merchant_serial: str
    base_url: str = "https://api.mch.weixin.qq.com"
    public_key_id: str = ""

    def __repr__(self) -> str:  # never print keys
        return f"V3Account(mchid={self.mchid!r}, appid={self.appid!r})"


def _json(data: dict[str, Any]) -> bytes:
    # Compact and unescaped, like WeChat's own examples; the signature covers these bytes.
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def signed_request(account: V3Account, method: str, path: str, body: bytes, timestamp: int,
                   nonce: str) -> HttpRequest:
    """Sign ``METHOD\\nPATH\\nTS\\nNONCE\\nBODY\\n`` and build the request around it.

    The signed URL is WeChat's canonical path (``/v3/…`` plus the query string), whatever
    path prefix ``base_url`` carries (a proxy, the sandbox's ``/sandbox/wechatpay``): that
    is what WeChat and every stock SDK sign, and what the sandbox verifies.
    """
    url = account.base_url.rstrip("/") + path
    message = v3sign.request_message(method, path, str(timestamp), nonce, body)
    signature = v3sign.rsa_sign(account.private_key, message)
    headers = {
        "Authorization": v3sign.authorization(account.mchid, account.merchant_serial, nonce,
                                              str(timestamp), signature),
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
    }
    if body:
        headers["Content-Type"] = "application/json"
    if account.public_key_id:
        # Ask WeChat to sign the answer with its public key (it follows this header).
        headers["Wechatpay-Serial"] = account.public_key_id
    return HttpRequest(method, url, headers, body)


def rfc3339(moment: datetime) -> str:
    """``yyyy-MM-DDTHH:mm:ss+08:00``, WeChat's own time zone, no fractions."""
    return moment.astimezone(CHINA).replace(microsecond=0).isoformat()


def build_create(account: V3Account, req: PaymentRequest, timestamp: int,
                 nonce: str) -> HttpRequest:
    """``POST /v3/pay/transactions/jsapi`` (mini programs use the JSAPI order)."""
    if not req.openid:
        raise ValueError("WeChat Pay JSAPI orders need the shopper's openid")
    body = _json({
        "appid": account.appid, "mchid": account.mchid, "description": clip_utf8(req.description, 127),
        "out_trade_no": req.provider_order_no, "time_expire": rfc3339(req.expires_at),
        "notify_url": req.notify_url,
        "amount": {"total": req.amount.minor, "currency": req.amount.currency},
        "payer": {"openid": req.openid},
    })
    return signed_request(account, "POST", "/v3/pay/transactions/jsapi", body, timestamp, nonce)


def json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    try:
        data = json.loads(response.body or b"{}")
    except ValueError as exc:
        raise ProviderError(f"WeChat Pay {what}: answer is not JSON (HTTP {response.status})",
                            provider="wechatpay", retryable=response.status >= 500) from exc
    if not isinstance(data, dict):
        raise ProviderError(f"WeChat Pay {what}: answer is not an object", provider="wechatpay")
    return data


def raise_for_error(response: HttpResponse, what: str) -> None:
    """4xx/5xx answers carry ``{"code", "message"}``; 5xx, 429 and SYSTEM_ERROR are retryable."""
    if response.status < 300:
        return
    data = json_object(response, what) if response.body else {}
    code = str(data.get("code") or f"HTTP_{response.status}")
    message = str(data.get("message") or "")[:200]
    retryable = response.status >= 500 or response.status == 429 or code == "SYSTEM_ERROR"
    raise ProviderError(f"WeChat Pay {what} refused: {code} {message}".strip(),
                        provider="wechatpay", provider_code=code, retryable=retryable)


def client_params(account: V3Account, prepay_id: str, timestamp: int,
                  nonce: str) -> dict[str, str]:
    """What ``wx.requestPayment`` takes; ``signType`` is not signed but must be sent."""
    package = f"prepay_id={prepay_id}"
    message = v3sign.pay_sign_message(account.appid, str(timestamp), nonce, package)
    return {"timeStamp": str(timestamp), "nonceStr": nonce, "package": package,
            "signType": "RSA", "paySign": v3sign.rsa_sign(account.private_key, message)}


def parse_create(account: V3Account, response: HttpResponse, timestamp: int,
                 nonce: str) -> CreatedPayment:
    raise_for_error(response, "create")
    prepay_id = json_object(response, "create").get("prepay_id")
    if not isinstance(prepay_id, str) or not prepay_id:
        raise ProviderError("WeChat Pay create: no prepay_id", provider="wechatpay")
    return CreatedPayment(wechat=client_params(account, prepay_id, timestamp, nonce))


def _order_path(out_trade_no: str) -> str:
    return "/v3/pay/transactions/out-trade-no/" + quote(out_trade_no, safe="")


def build_query(account: V3Account, ref: PaymentRef, timestamp: int, nonce: str) -> HttpRequest:
    """The query string is part of what is signed."""
    path = f"{_order_path(ref.provider_order_no)}?mchid={quote(account.mchid, safe='')}"
    return signed_request(account, "GET", path, b"", timestamp, nonce)


def _money(amount: object, key: str = "total") -> Money | None:
    if not isinstance(amount, dict):
        return None
    value, currency = amount.get(key), amount.get("currency") or "CNY"
    if not isinstance(value, int) or isinstance(value, bool):
        return None  # fen are integers; anything else never matches an order
    try:
        return Money(value, str(currency))
    except MoneyError:
        return None


def transaction_state(data: dict[str, Any]) -> PaymentState:
    """A transaction (query answer or decrypted notification) as a PaymentState."""
    trade_state = str(data.get("trade_state") or "")
    return PaymentState(
        provider_order_no=str(data.get("out_trade_no") or ""),
        status=TRADE_STATES.get(trade_state, P.UNKNOWN),
        amount=_money(data.get("amount")),
        provider_txn_id=str(data["transaction_id"]) if data.get("transaction_id") else None,
        app_id=str(data["appid"]) if "appid" in data else None,
        merchant_id=str(data["mchid"]) if "mchid" in data else None,
        detail=trade_state,
    )


def parse_query(ref: PaymentRef, response: HttpResponse) -> PaymentState:
    if response.status == 404:
        return PaymentState(ref.provider_order_no, P.NOT_FOUND, detail="ORDER_NOT_EXIST")
    raise_for_error(response, "query")
    state = transaction_state(json_object(response, "query"))
    if state.provider_order_no != ref.provider_order_no:
        raise ProviderError("WeChat Pay query answered for another order", provider="wechatpay")
    return state


def build_close(account: V3Account, ref: PaymentRef, timestamp: int, nonce: str) -> HttpRequest:
    body = _json({"mchid": account.mchid})
    return signed_request(account, "POST", _order_path(ref.provider_order_no) + "/close", body,
                          timestamp, nonce)


def parse_close(response: HttpResponse) -> None:
    """204 closed; closing an order that is already closed is not an error for us."""
    if response.status == 400 and b"ORDER_CLOSED" in response.body:
        return
    raise_for_error(response, "close")


def build_refund(account: V3Account, req: RefundRequest, timestamp: int,
                 nonce: str) -> HttpRequest:
    """``out_refund_no`` is our refund number: re-sending it is the same refund."""
    data: dict[str, Any] = {
        "out_trade_no": req.payment.provider_order_no, "out_refund_no": req.provider_refund_no,
        "amount": {"refund": req.amount.minor, "total": req.payment.amount.minor,
                   "currency": req.amount.currency},
    }
    if req.reason:
        data["reason"] = req.reason[:80]
    if req.notify_url:
        data["notify_url"] = req.notify_url
    return signed_request(account, "POST", "/v3/refund/domestic/refunds", _json(data),
                          timestamp, nonce)


def refund_state(data: dict[str, Any], fallback_no: str = "") -> RefundState:
    status = str(data.get("status") or data.get("refund_status") or "")
    return RefundState(
        provider_refund_no=str(data.get("out_refund_no") or fallback_no),
        status=REFUND_STATES.get(status, R.UNKNOWN),
        amount=_money(data.get("amount"), "refund"),
        provider_refund_id=str(data["refund_id"]) if data.get("refund_id") else None,
        provider_order_no=str(data["out_trade_no"]) if data.get("out_trade_no") else None,
        detail=status,
    )


def parse_refund(req: RefundRequest, response: HttpResponse) -> RefundState:
    """Accepted (PROCESSING) or already final; a business refusal is a failed refund."""
    if 400 <= response.status < 500 and response.status != 429:
        data = json_object(response, "refund")
        code = str(data.get("code") or response.status)
        if code not in ("SYSTEM_ERROR", "FREQUENCY_LIMITED"):
            return RefundState(req.provider_refund_no, R.FAILED,
                               detail=f"{code} {str(data.get('message') or '')[:160]}".strip())
    raise_for_error(response, "refund")
    return refund_state(json_object(response, "refund"), req.provider_refund_no)


#: ``RefundState.detail`` of a refund WeChat Pay has never seen.
REFUND_NOT_FOUND = "RESOURCE_NOT_EXISTS"


def build_refund_query(account: V3Account, req: RefundRequest, timestamp: int,
                       nonce: str) -> HttpRequest:
    path = "/v3/refund/domestic/refunds/" + quote(req.provider_refund_no, safe="")
    return signed_request(account, "GET", path, b"", timestamp, nonce)


def parse_refund_query(req: RefundRequest, response: HttpResponse) -> RefundState:
    if response.status == 404:
        # Never accepted: sending the same out_refund_no again is safe.
        return RefundState(req.provider_refund_no, R.UNKNOWN, detail=REFUND_NOT_FOUND)
    raise_for_error(response, "refund query")
    return refund_state(json_object(response, "refund query"), req.provider_refund_no)


def build_certificates(account: V3Account, timestamp: int, nonce: str) -> HttpRequest:
    return signed_request(account, "GET", "/v3/certificates", b"", timestamp, nonce)


def parse_certificates(account: V3Account, response: HttpResponse,
                       now: datetime | None = None) -> list[keys.PlatformCertificate]:
    """Each ``encrypt_certificate`` is decrypted with the APIv3 key (AAD "certificate").
    Certificates expired at ``now`` are left out: a signature by an expired platform key
    proves nothing."""
    raise_for_error(response, "certificates")
    found: list[keys.PlatformCertificate] = []
    for item in json_object(response, "certificates").get("data") or []:
        enc = item.get("encrypt_certificate") if isinstance(item, dict) else None
        if not isinstance(enc, dict):
            raise ProviderError("WeChat Pay certificates: malformed entry", provider="wechatpay")
        try:
            pem = v3sign.aes_gcm_decrypt(account.apiv3_key, str(enc.get("nonce", "")),
                                         str(enc.get("associated_data", "")),
                                         str(enc.get("ciphertext", "")))
            cert = keys.load_certificate(pem)
        except ValueError as exc:
            raise ProviderError("WeChat Pay certificates: entry does not decrypt",
                                provider="wechatpay") from exc
        if not v3sign.same_text(cert.serial_no, str(item.get("serial_no", "")).upper()):
            raise ProviderError("WeChat Pay certificates: serial does not match its certificate",
                                provider="wechatpay")
        if now is None or not cert.expired_at(now):
            found.append(cert)
    return found


def parse_notification(account: V3Account, body: bytes) -> VerifiedNotification:
    """A notification whose signature already holds: decrypt ``resource`` and map it."""
    try:
        envelope = json.loads(body)
        resource = envelope["resource"]
        plaintext = v3sign.aes_gcm_decrypt(
            account.apiv3_key, str(resource["nonce"]), str(resource.get("associated_data", "")),
            str(resource["ciphertext"]))
        data = json.loads(plaintext)
    except (ValueError, KeyError, TypeError) as exc:
        raise NotificationRejected("notification resource is malformed or does not decrypt") \
            from exc
    event_id, event_type = str(envelope.get("id") or ""), str(envelope.get("event_type") or "")
    if not event_id or not isinstance(data, dict):
        raise NotificationRejected("notification has no id")
    if event_type.startswith("REFUND."):
        return VerifiedNotification(event_key=event_id, refund=refund_state(data), raw=data)
    if event_type.startswith("TRANSACTION."):
        return VerifiedNotification(event_key=event_id, payment=transaction_state(data),
                                    raw=data)
    raise NotificationRejected(f"unexpected event_type {event_type!r}")


def ack(ok: bool, reason: str = "") -> tuple[int, bytes]:
    """204 with no body stops the retries; failures are 4xx with ``{"code":"FAIL"}``."""
    if ok:
        return 204, b""
    return 400, _json({"code": "FAIL", "message": reason[:120] or "verification failed"})
