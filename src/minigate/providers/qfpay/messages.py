"""QFPay requests and responses as pure functions over HttpRequest/HttpResponse values.

Every call is a form-urlencoded POST signed in headers (:mod:`.signing`); answers are JSON
with a ``respcd``: ``0000`` done, ``1143``/``1145`` still in progress (ask again with a
query), anything else a failure (providers.md §2.4, §2.9).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

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
from minigate.providers.qfpay import signing

PROVIDER = "qfpay"
PAY_TYPE_WECHAT_MINI_PROGRAM = "800213"

OK = "0000"
#: "Merchants are required to continue to query the transaction result."
IN_PROGRESS = frozenset({"1143", "1145"})
#: The order no longer exists as payable (already closed / cancelled / expired).
CLOSED_CODES = frozenset({"1142", "1181", "1263", "1264"})
NO_SUCH_ORDER = frozenset({"1136", "1268"})
#: Transient faults: the same call with the same numbers may succeed later.
RETRYABLE = frozenset({"1100", "1205", "1252", "1295", "1296", "1297", "1298"})
#: Short, stable meanings for the codes we expect to see (the rest keep QFPay's message).
MESSAGES: dict[str, str] = {
    "1102": "duplicate request (out_trade_no already used with other parameters)",
    "1103": "request format error", "1104": "request parameter error",
    "1108": "signature error (check app_code / client_key / sign type)",
    "1181": "order expired", "1260": "order already paid", "1261": "order not paid",
    "1268": "order does not exist", "1269": "unsettled amount insufficient for the refund",
    "1272": "refund exceeds the refundable amount",
}

#: Expiry bounds QFPay accepts for 800213 (minutes).
EXPIRY_MIN, EXPIRY_MAX = 5, 120
#: ASSUMPTION: ``txdtm`` is the merchant's local time; QFPay's HK platform runs on UTC+8
#: (older docs: ``txzone`` default ``+0800``). Only informative: QFPay stamps its own time.
TXDTM_ZONE = timezone(timedelta(hours=8))
_CENTS_RE = re.compile(r"0|[1-9][0-9]{0,15}")


@dataclass(frozen=True, slots=True)
class QfpayAccount:
    """One QFPay app (``app_code`` + ``client_key``); ``mchid`` only for agent accounts."""

    app_code: str
    client_key: str
    base_url: str = "https://openapi-hk.qfapi.com"
    mchid: str = ""
    sign_type: str = signing.MD5

    def __repr__(self) -> str:  # never print the key
        return f"QfpayAccount(app_code={self.app_code!r}, mchid={self.mchid!r})"


# -- request building -------------------------------------------------------------------
def txdtm(moment: datetime) -> str:
    """``YYYY-MM-DD hh:mm:ss`` in QFPay's local time."""
    return moment.astimezone(TXDTM_ZONE).strftime("%Y-%m-%d %H:%M:%S")


def expired_minutes(created_at: datetime, expires_at: datetime) -> int:
    """Whole minutes the order stays payable, clamped to what QFPay accepts (5–120).

    Rounded down so QFPay never takes a payment after our order expired (except for the
    5-minute floor, which the reconciler covers: a late payment is ``paid_after_close``).
    """
    minutes = math.floor((expires_at - created_at).total_seconds() / 60)
    return max(EXPIRY_MIN, min(EXPIRY_MAX, minutes))


def signed_form(account: QfpayAccount, path: str, params: Mapping[str, str]) -> HttpRequest:
    """Sign exactly the values that go into the body (``mchid`` only when configured)."""
    body = {k: v for k, v in params.items() if v != ""}
    if account.mchid:
        body["mchid"] = account.mchid
    headers = {
        "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8",
        "Accept": "application/json",
        "X-QF-APPCODE": account.app_code,
        "X-QF-SIGN": signing.sign(body, account.client_key, account.sign_type),
        "X-QF-SIGNTYPE": account.sign_type,
    }
    return HttpRequest("POST", account.base_url.rstrip("/") + path, headers,
                       urlencode(body).encode())


def build_create(account: QfpayAccount, req: PaymentRequest) -> HttpRequest:
    """``POST /trade/v1/payment`` with ``pay_type=800213`` (WeChat mini program)."""
    if req.channel is not Channel.WECHAT:
        raise ValueError("QFPay serves WeChat mini programs only")
    if not req.openid:
        raise ValueError("WeChat mini program payments need the shopper's openid")
    params = {
        "pay_type": PAY_TYPE_WECHAT_MINI_PROGRAM,
        "sub_openid": req.openid,
        "txamt": str(req.amount.minor),
        "txcurrcd": req.amount.currency,
        "out_trade_no": req.provider_order_no,
        "txdtm": txdtm(req.created_at),
        "expired_time": str(expired_minutes(req.created_at, req.expires_at)),
        "goods_name": goods_name(req.description),
    }
    return signed_form(account, "/trade/v1/payment", params)


def goods_name(description: str) -> str:
    """QFPay: ≤ 20 alphanumerics, no special characters (String(64) UTF-8)."""
    return "".join(ch for ch in description if ch.isalnum() or ch == " ").strip()[:20]


def build_query(account: QfpayAccount, out_trade_no: str) -> HttpRequest:
    """``POST /trade/v1/query`` for one ``out_trade_no`` (a payment's or a refund's)."""
    return signed_form(account, "/trade/v1/query", {"out_trade_no": out_trade_no})


def build_refund(account: QfpayAccount, req: RefundRequest) -> HttpRequest:
    """``POST /trade/v1/refund``: a new ``out_trade_no`` per refund, the same on retry."""
    if not req.payment.provider_txn_id:
        raise ValueError("QFPay refunds need the original syssn")
    params = {
        "syssn": req.payment.provider_txn_id,
        "out_trade_no": req.provider_refund_no,
        "txamt": str(req.amount.minor),
        "txdtm": txdtm(req.requested_at or req.payment.created_at),
    }
    return signed_form(account, "/trade/v1/refund", params)


def build_close(account: QfpayAccount, ref: PaymentRef) -> HttpRequest:
    """``POST /trade/v1/close`` (providers.md §2.7: method and 800213 support unconfirmed)."""
    params = {"out_trade_no": ref.provider_order_no, "txamt": str(ref.amount.minor),
              "txdtm": txdtm(ref.created_at)}
    return signed_form(account, "/trade/v1/close", params)


# -- response parsing -------------------------------------------------------------------
def _json_object(response: HttpResponse, what: str) -> dict[str, Any]:
    if response.status >= 500:
        raise ProviderError(f"QFPay {what}: HTTP {response.status}", provider=PROVIDER,
                            retryable=True)
    try:
        data = json.loads(response.body)
    except ValueError as exc:
        raise ProviderError(f"QFPay {what}: answer is not JSON (HTTP {response.status})",
                            provider=PROVIDER) from exc
    if not isinstance(data, dict):
        raise ProviderError(f"QFPay {what}: answer is not an object", provider=PROVIDER)
    # One doc page shows the fields nested under "data"; every example is flat. Accept both.
    nested = data.get("data")
    if isinstance(nested, dict):
        data = {**nested, **{k: v for k, v in data.items() if k != "data"}}
    return data


def respcd(data: Mapping[str, Any]) -> str:
    return str(data.get("respcd") or "").strip()


def refusal(data: Mapping[str, Any], what: str) -> ProviderError:
    """A clear error for a failed ``respcd``, keeping QFPay's code."""
    code = respcd(data) or "missing"
    meaning = MESSAGES.get(code) or str(data.get("respmsg") or data.get("resperr") or "")
    return ProviderError(f"QFPay {what} refused: {code} {meaning[:160]}".strip(),
                         provider=PROVIDER, provider_code=code, retryable=code in RETRYABLE,
                         code="provider_bad_signature" if code == "1108" else None)


def parse_create(req: PaymentRequest, response: HttpResponse) -> CreatedPayment:
    """``0000`` → pay params; ``1143``/``1145`` → still pending (settled by query)."""
    data = _json_object(response, "create")
    code = respcd(data)
    if code != OK and code not in IN_PROGRESS:
        raise refusal(data, "create")
    if str(data.get("out_trade_no") or req.provider_order_no) != req.provider_order_no:
        raise ProviderError("QFPay create answered for another order", provider=PROVIDER)
    params = data.get("pay_params")
    if not isinstance(params, dict):
        if code in IN_PROGRESS:  # nothing to pay with yet; the reconciler queries the order
            raise ProviderError(f"QFPay create in progress ({code}); query later",
                                provider=PROVIDER, provider_code=code, retryable=True)
        raise ProviderError("QFPay create: no pay_params", provider=PROVIDER)
    return CreatedPayment(provider_txn_id=_str_or_none(data.get("syssn")),
                          wechat=wechat_params(params), status=ProviderPaymentStatus.PENDING)


def wechat_params(pay_params: Mapping[str, Any]) -> dict[str, str]:
    """What ``wx.requestPayment`` takes; ``appId`` kept when QFPay sends it."""
    try:
        wechat = {name: str(pay_params[name])
                  for name in ("timeStamp", "nonceStr", "package", "paySign")}
    except KeyError as exc:
        raise ProviderError(f"QFPay create: pay_params lacks {exc}", provider=PROVIDER) from exc
    wechat["signType"] = str(pay_params.get("signType") or "MD5")  # QFPay: "default is MD5"
    if pay_params.get("appId"):
        wechat["appId"] = str(pay_params["appId"])
    return wechat


def _items(data: Mapping[str, Any], out_trade_no: str, order_type: str) -> list[dict[str, Any]]:
    items = data.get("data")
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict)
            and str(item.get("out_trade_no")) == out_trade_no
            and str(item.get("order_type") or "payment") == order_type]


def _money(cents: object, currency: object) -> Money | None:
    """QFPay amounts are integer cents (a JSON number or a string of digits)."""
    text = str(cents) if isinstance(cents, int | str) and not isinstance(cents, bool) else ""
    if not _CENTS_RE.fullmatch(text):
        return None
    try:
        return Money(int(text), str(currency or ""))
    except MoneyError:
        return None  # an unusable amount never matches the order: flagged downstream


#: ``cancel`` of a successful payment: 0 none, 1 reversed/refunded, 2 cancelled,
#: 3 refunded, 4 preauth finished, 5 partially refunded (providers.md §2.5).
CANCEL_STATUS: dict[str, ProviderPaymentStatus] = {
    "0": ProviderPaymentStatus.PAID, "4": ProviderPaymentStatus.PAID,
    "1": ProviderPaymentStatus.REFUNDED, "3": ProviderPaymentStatus.REFUNDED,
    "5": ProviderPaymentStatus.REFUNDED, "2": ProviderPaymentStatus.CLOSED,
}


def payment_status(item: Mapping[str, Any]) -> ProviderPaymentStatus:
    """One query item's ``respcd`` (and ``cancel``) mapped exhaustively."""
    code = respcd(item)
    if code == OK:
        return CANCEL_STATUS.get(str(item.get("cancel") or "0"), ProviderPaymentStatus.UNKNOWN)
    if code in IN_PROGRESS:
        return ProviderPaymentStatus.PENDING
    if code in CLOSED_CODES:
        return ProviderPaymentStatus.CLOSED
    if not code:
        return ProviderPaymentStatus.UNKNOWN
    return ProviderPaymentStatus.FAILED


def parse_query(ref: PaymentRef, response: HttpResponse) -> PaymentState:
    data = _json_object(response, "query")
    code = respcd(data)
    if code in NO_SUCH_ORDER:
        return PaymentState(ref.provider_order_no, ProviderPaymentStatus.NOT_FOUND)
    if code != OK:
        raise refusal(data, "query")
    items = _items(data, ref.provider_order_no, "payment")
    if not items:
        return PaymentState(ref.provider_order_no, ProviderPaymentStatus.NOT_FOUND)
    item = items[0]
    return PaymentState(
        provider_order_no=ref.provider_order_no, status=payment_status(item),
        amount=_money(item.get("txamt"), item.get("txcurrcd")),
        provider_txn_id=_str_or_none(item.get("syssn")),
        detail=f"respcd {respcd(item)} cancel {item.get('cancel', '')}".strip(),
    )


def refund_state(req: RefundRequest, code: str, data: Mapping[str, Any]) -> RefundState:
    """A refund answer (from the refund call or a query item) mapped exhaustively."""
    if code == OK:
        return RefundState(req.provider_refund_no, ProviderRefundStatus.SUCCEEDED, req.amount,
                           provider_refund_id=_str_or_none(data.get("syssn")),
                           provider_order_no=req.payment.provider_order_no)
    if code in IN_PROGRESS:
        return RefundState(req.provider_refund_no, ProviderRefundStatus.PENDING,
                           detail=f"respcd {code}")
    if code in RETRYABLE or not code:
        return RefundState(req.provider_refund_no, ProviderRefundStatus.UNKNOWN,
                           detail=f"respcd {code or 'missing'}")
    return RefundState(req.provider_refund_no, ProviderRefundStatus.FAILED,
                       detail=str(refusal(data, "refund")))


def parse_refund(req: RefundRequest, response: HttpResponse) -> RefundState:
    try:
        data = _json_object(response, "refund")
    except ProviderError as exc:  # a 5xx or garbage: it may have gone through
        return RefundState(req.provider_refund_no, ProviderRefundStatus.UNKNOWN,
                           detail=exc.message)
    return refund_state(req, respcd(data), data)


def parse_refund_query(req: RefundRequest, response: HttpResponse) -> RefundState | None:
    """The refund's state, or None when QFPay has no such refund (it never arrived)."""
    data = _json_object(response, "refund query")
    code = respcd(data)
    if code in NO_SUCH_ORDER:
        return None
    if code != OK:
        raise refusal(data, "refund query")
    items = _items(data, req.provider_refund_no, "refund")
    if not items:
        return None
    return refund_state(req, respcd(items[0]), items[0])


def parse_close(response: HttpResponse) -> None:
    """Closed, or already not payable: both are fine for a close."""
    data = _json_object(response, "close")
    code = respcd(data)
    if code != OK and code not in CLOSED_CODES:
        raise refusal(data, "close")


# -- notifications ----------------------------------------------------------------------
def verify_notification(
    account: QfpayAccount, notification: IncomingNotification
) -> VerifiedNotification:
    """Check ``X-QF-SIGN`` against the raw bytes first; only then parse them."""
    expected = signing.notification_signature(notification.body, account.client_key)
    if not signing.signatures_match(expected, notification.headers.get("x-qf-sign")):
        raise NotificationRejected("X-QF-SIGN does not match the body")
    try:
        data = json.loads(notification.body)
    except ValueError as exc:
        raise NotificationRejected("body is not JSON") from exc
    if not isinstance(data, dict):
        raise NotificationRejected("body is not a JSON object")
    kind = str(data.get("notify_type") or "")
    syssn = str(data.get("syssn") or "")
    out_trade_no = str(data.get("out_trade_no") or "")
    if not syssn or not out_trade_no:
        raise NotificationRejected("syssn and out_trade_no are required")
    raw = {str(k): v for k, v in data.items()}
    amount = _money(data.get("txamt"), data.get("txcurrcd"))
    if kind == "payment":
        # Only successful payments are notified; anything else is not a payment we know.
        ok = respcd(data) == OK and str(data.get("status") or "1") == "1"
        state = PaymentState(
            provider_order_no=out_trade_no,
            status=ProviderPaymentStatus.PAID if ok else ProviderPaymentStatus.UNKNOWN,
            amount=amount, provider_txn_id=syssn,
            merchant_id=_str_or_none(data.get("mchid")), detail=f"notify respcd {respcd(data)}",
        )
        return VerifiedNotification(f"payment:{syssn}", payment=state, raw=raw)
    if kind == "refund":
        refund = RefundState(
            provider_refund_no=out_trade_no,
            status=ProviderRefundStatus.SUCCEEDED if respcd(data) == OK
            else ProviderRefundStatus.UNKNOWN,
            amount=amount, provider_refund_id=syssn,
            detail=f"notify respcd {respcd(data)}",
        )
        return VerifiedNotification(f"refund:{syssn}", refund=refund, raw=raw)
    # Signed but of a kind we do not act on ("parameters may expand"): ack, change nothing.
    return VerifiedNotification(f"{kind or 'unknown'}:{syssn}", raw=raw)


def ack(ok: bool) -> tuple[int, bytes]:
    """QFPay stops re-sending only on HTTP 200 with the body ``SUCCESS``."""
    return (200, b"SUCCESS") if ok else (400, b"FAIL")


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None
