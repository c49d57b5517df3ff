"""WeChat Pay API v2 (XML, MD5 / HMAC-SHA256) as pure functions over HttpRequest/HttpResponse.

Every answer is parsed with :mod:`.xml` (defusedxml, size-capped) and its ``sign`` checked
before any field is believed. Nonces are passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from minigate.domain.money import Money, MoneyError
from minigate.errors import NotificationRejected, ProviderError
from minigate.providers.base import (
    ClientCertificate,
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
from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay.xml import XmlRejected, parse_xml, to_xml

P, R = ProviderPaymentStatus, ProviderRefundStatus
PROVIDER = "wechatpay-v2"
CHINA = timezone(timedelta(hours=8))
XML_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "Accept": "text/xml"}

#: ``trade_state`` mapped exhaustively (ACCEPT: a 付款码 payment being processed).
TRADE_STATES: dict[str, ProviderPaymentStatus] = {
    "SUCCESS": P.PAID,
    "REFUND": P.REFUNDED,
    "NOTPAY": P.PENDING,
    "USERPAYING": P.PENDING,
    "ACCEPT": P.PENDING,
    "CLOSED": P.CLOSED,
    "REVOKED": P.CLOSED,
    "PAYERROR": P.FAILED,
}

#: ``refund_status``: CHANGE (money could not reach the card) is not final, like v3 ABNORMAL.
REFUND_STATES: dict[str, ProviderRefundStatus] = {
    "SUCCESS": R.SUCCEEDED,
    "REFUNDCLOSE": R.FAILED,
    "PROCESSING": R.PENDING,
    "CHANGE": R.PENDING,
}

ACK_OK = to_xml({"return_code": "SUCCESS", "return_msg": "OK"})


@dataclass(frozen=True, slots=True)
class V2Account:
    """One WeChat Pay merchant on API v2. ``client_cert`` is needed for refunds only."""

    mchid: str
    appid: str
    api_key: str
    sign_type: str = v2sign.MD5
    base_url: str = "https://api.mch.weixin.qq.com"
    client_cert: ClientCertificate | None = None

    def __repr__(self) -> str:  # never print the key
        return f"V2Account(mchid={self.mchid!r}, appid={self.appid!r})"


def _signed(account: V2Account, path: str, fields: dict[str, str], nonce: str,
            cert: ClientCertificate | None = None) -> HttpRequest:
    params = {"appid": account.appid, "mch_id": account.mchid, "nonce_str": nonce, **fields,
              "sign_type": account.sign_type}
    params["sign"] = v2sign.sign(params, account.api_key, account.sign_type)
    return HttpRequest("POST", account.base_url.rstrip("/") + path, XML_HEADERS,
                       to_xml(params), client_cert=cert)


def china_time(moment: datetime) -> str:
    """``yyyyMMddHHmmss`` in WeChat's time zone."""
    return moment.astimezone(CHINA).strftime("%Y%m%d%H%M%S")


def build_unifiedorder(account: V2Account, req: PaymentRequest, nonce: str) -> HttpRequest:
    """``POST /pay/unifiedorder`` with ``trade_type=JSAPI`` (mini programs)."""
    if not req.openid:
        raise ValueError("WeChat Pay JSAPI orders need the shopper's openid")
    return _signed(account, "/pay/unifiedorder", {
        "body": clip_utf8(req.description, 127), "out_trade_no": req.provider_order_no,
        "total_fee": str(req.amount.minor), "fee_type": req.amount.currency,
        "spbill_create_ip": req.client_ip, "notify_url": req.notify_url,
        "trade_type": "JSAPI", "openid": req.openid, "time_expire": china_time(req.expires_at),
    }, nonce)


def verified_fields(account: V2Account, response: HttpResponse, what: str) -> dict[str, str]:
    """Parse an answer; when ``return_code`` is SUCCESS its ``sign`` must hold."""
    if response.status >= 500:
        raise ProviderError(f"WeChat Pay {what}: HTTP {response.status}", provider=PROVIDER,
                            retryable=True)
    try:
        fields = parse_xml(response.body)
    except XmlRejected as exc:
        raise ProviderError(f"WeChat Pay {what}: {exc}", provider=PROVIDER) from exc
    if fields.get("return_code") != "SUCCESS":
        raise ProviderError(f"WeChat Pay {what} refused: {fields.get('return_msg', '')[:160]}",
                            provider=PROVIDER, provider_code=fields.get("return_code", ""))
    sign_type = fields.get("sign_type") or account.sign_type
    if not v2sign.signatures_match(fields, account.api_key, sign_type):
        raise ProviderError(f"WeChat Pay {what}: response sign does not verify",
                            provider=PROVIDER, code="provider_bad_signature")
    return fields


def _raise_for_result(fields: dict[str, str], what: str) -> None:
    if fields.get("result_code") != "SUCCESS":
        code = fields.get("err_code", "FAIL")
        raise ProviderError(
            f"WeChat Pay {what} refused: {code} {fields.get('err_code_des', '')[:160]}".strip(),
            provider=PROVIDER, provider_code=code, retryable=code == "SYSTEMERROR")


def client_params(account: V2Account, prepay_id: str, timestamp: int,
                  nonce: str) -> dict[str, str]:
    """``paySign`` with the same algorithm as the unified order (WeChat checks they match)."""
    params = v2sign.pay_sign_params(account.appid, str(timestamp), nonce,
                                    f"prepay_id={prepay_id}", account.sign_type)
    return {**params, "paySign": v2sign.sign(params, account.api_key, account.sign_type)}


def parse_unifiedorder(account: V2Account, response: HttpResponse, timestamp: int,
                       nonce: str) -> CreatedPayment:
    fields = verified_fields(account, response, "unifiedorder")
    _raise_for_result(fields, "unifiedorder")
    prepay_id = fields.get("prepay_id", "")
    if not prepay_id:
        raise ProviderError("WeChat Pay unifiedorder: no prepay_id", provider=PROVIDER)
    params = client_params(account, prepay_id, timestamp, nonce)
    params.pop("appId")  # wx.requestPayment takes the AppID from the mini program itself
    return CreatedPayment(wechat=params)


def build_orderquery(account: V2Account, ref: PaymentRef, nonce: str) -> HttpRequest:
    return _signed(account, "/pay/orderquery", {"out_trade_no": ref.provider_order_no}, nonce)


def _fen(text: str, currency: str) -> Money | None:
    if not text.isdigit():
        return None
    try:
        return Money(int(text), currency or "CNY")
    except MoneyError:
        return None


def payment_state(fields: dict[str, str]) -> PaymentState:
    """Paid only when result_code and trade_state are SUCCESS (return_code is checked first)."""
    trade_state = fields.get("trade_state", "")
    if fields.get("result_code") != "SUCCESS":
        status = P.UNKNOWN
    else:
        status = TRADE_STATES.get(trade_state, P.UNKNOWN)
    return PaymentState(
        provider_order_no=fields.get("out_trade_no", ""), status=status,
        amount=_fen(fields.get("total_fee", ""), fields.get("fee_type", "")),
        provider_txn_id=fields.get("transaction_id") or None,
        app_id=fields.get("appid"), merchant_id=fields.get("mch_id"),
        detail=trade_state or fields.get("err_code", ""),
    )


def parse_orderquery(account: V2Account, ref: PaymentRef, response: HttpResponse) -> PaymentState:
    fields = verified_fields(account, response, "orderquery")
    if fields.get("result_code") != "SUCCESS" and fields.get("err_code") == "ORDERNOTEXIST":
        return PaymentState(ref.provider_order_no, P.NOT_FOUND, detail="ORDERNOTEXIST")
    _raise_for_result(fields, "orderquery")
    state = payment_state(fields)
    if state.provider_order_no != ref.provider_order_no:
        raise ProviderError("WeChat Pay orderquery answered for another order", provider=PROVIDER)
    return state


def build_closeorder(account: V2Account, ref: PaymentRef, nonce: str) -> HttpRequest:
    return _signed(account, "/pay/closeorder", {"out_trade_no": ref.provider_order_no}, nonce)


def parse_closeorder(account: V2Account, response: HttpResponse) -> None:
    fields = verified_fields(account, response, "closeorder")
    if fields.get("err_code") == "ORDERCLOSED":
        return
    _raise_for_result(fields, "closeorder")


def build_refund(account: V2Account, req: RefundRequest, nonce: str) -> HttpRequest:
    """``/secapi/pay/refund`` needs the merchant's client certificate (mutual TLS)."""
    fields = {"out_trade_no": req.payment.provider_order_no,
              "out_refund_no": req.provider_refund_no,
              "total_fee": str(req.payment.amount.minor), "refund_fee": str(req.amount.minor),
              "refund_fee_type": req.amount.currency}
    if req.reason:
        fields["refund_desc"] = req.reason[:80]
    if req.notify_url:
        fields["notify_url"] = req.notify_url
    return _signed(account, "/secapi/pay/refund", fields, nonce, account.client_cert)


def parse_refund(account: V2Account, req: RefundRequest, response: HttpResponse) -> RefundState:
    """``result_code=SUCCESS`` means accepted: the outcome comes by query or notification."""
    fields = verified_fields(account, response, "refund")
    if fields.get("result_code") == "SUCCESS":
        return RefundState(req.provider_refund_no, R.PENDING, req.amount,
                           fields.get("refund_id") or None, req.payment.provider_order_no,
                           "PROCESSING")
    code = fields.get("err_code", "FAIL")
    if code in ("SYSTEMERROR", "BIZERR_NEED_RETRY", "FREQUENCY_LIMITED"):
        return RefundState(req.provider_refund_no, R.UNKNOWN, detail=code)
    return RefundState(req.provider_refund_no, R.FAILED,
                       detail=f"{code} {fields.get('err_code_des', '')[:160]}".strip())


#: ``RefundState.detail`` (err_code) of a refund WeChat Pay has never seen.
REFUND_NOT_FOUND = "REFUNDNOTEXIST"


def build_refundquery(account: V2Account, req: RefundRequest, nonce: str) -> HttpRequest:
    return _signed(account, "/pay/refundquery", {"out_refund_no": req.provider_refund_no}, nonce)


def parse_refundquery(account: V2Account, req: RefundRequest,
                      response: HttpResponse) -> RefundState:
    fields = verified_fields(account, response, "refundquery")
    if fields.get("result_code") != "SUCCESS":
        # REFUNDNOTEXIST: never accepted, the same out_refund_no may be sent again.
        return RefundState(req.provider_refund_no, R.UNKNOWN, detail=fields.get("err_code", ""))
    count = fields.get("refund_count", "0")
    for n in range(min(int(count), 100) if count.isdigit() else 0):
        if fields.get(f"out_refund_no_{n}") == req.provider_refund_no:
            status = fields.get(f"refund_status_{n}", "")
            return RefundState(req.provider_refund_no, REFUND_STATES.get(status, R.UNKNOWN),
                               _fen(fields.get(f"refund_fee_{n}", ""), req.amount.currency),
                               fields.get(f"refund_id_{n}") or None,
                               fields.get("out_trade_no") or None, status)
    return RefundState(req.provider_refund_no, R.UNKNOWN, detail="refund not in answer")


def verify_notification(account: V2Account, body: bytes) -> VerifiedNotification:
    """Payment notifications are signed; refund notifications carry an encrypted ``req_info``."""
    try:
        fields = parse_xml(body)
    except XmlRejected as exc:
        raise NotificationRejected(str(exc)) from exc
    if fields.get("return_code") != "SUCCESS":
        raise NotificationRejected("return_code is not SUCCESS")
    if "req_info" in fields:
        return _refund_notification(account, fields)
    # Some notifications come MD5-signed although the order used HMAC: trust their own field.
    if not v2sign.signatures_match(fields, account.api_key, fields.get("sign_type") or v2sign.MD5):
        raise NotificationRejected("sign does not verify")
    if fields.get("result_code") != "SUCCESS" and fields.get("out_trade_no"):
        # A signed report of a failed attempt (no transaction_id): the shopper may still pay
        # the same prepay, so it moves nothing; acked (or WeChat re-sends it for a day) and
        # the payment is queried now.
        state = payment_state(fields)
        key = f"fail:{fields['out_trade_no']}:{fields.get('nonce_str', '')}"
        return VerifiedNotification(event_key=key, payment=state, trusted=False,
                                    raw={k: v for k, v in fields.items() if k != "sign"})
    txn = fields.get("transaction_id", "")
    if not txn or not fields.get("out_trade_no"):
        raise NotificationRejected("transaction_id and out_trade_no are required")
    state = payment_state({**fields, "trade_state": "SUCCESS"})
    return VerifiedNotification(event_key=txn, payment=state,
                                raw={k: v for k, v in fields.items() if k != "sign"})


def _refund_notification(account: V2Account, fields: dict[str, str]) -> VerifiedNotification:
    # No sign here: only the holder of the APIv2 key can produce a req_info that decrypts.
    try:
        inner = parse_xml(v2sign.decrypt_req_info(fields["req_info"], account.api_key), "root")
    except (ValueError, XmlRejected) as exc:
        raise NotificationRejected("req_info does not decrypt with the APIv2 key") from exc
    if fields.get("mch_id") and fields["mch_id"] != account.mchid:
        raise NotificationRejected("refund notification for another merchant")
    out_refund_no, status = inner.get("out_refund_no", ""), inner.get("refund_status", "")
    if not out_refund_no:
        raise NotificationRejected("req_info has no out_refund_no")
    state = RefundState(out_refund_no, REFUND_STATES.get(status, R.UNKNOWN),
                        _fen(inner.get("refund_fee", ""), "CNY"),
                        inner.get("refund_id") or None, inner.get("out_trade_no") or None, status)
    key = f"refund:{inner.get('refund_id') or out_refund_no}:{status}"
    return VerifiedNotification(event_key=key, refund=state, raw=inner)


def ack(ok: bool, reason: str = "") -> tuple[int, bytes]:
    """WeChat stops re-sending only on the SUCCESS XML; FAIL makes it try again later."""
    if ok:
        return 200, ACK_OK
    return 400, to_xml({"return_code": "FAIL", "return_msg": reason[:120] or "FAIL"})
