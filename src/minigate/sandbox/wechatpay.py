"""Stateful WeChat Pay direct simulator: API v3 (here) and API v2 (:mod:`.wechatpay_v2`).

One merchant (``credentials.WECHATPAY_MCHID``, bound to the sandbox mini program) and one
order book shared by both API versions, as at WeChat. Prepays live in the shared
:class:`~minigate.sandbox.wechat_core.WechatCore`, where the wallet pays them.

Addressing: every route is served under ``/sandbox/wechatpay`` (and, with
``minigate sandbox --provider wechatpay``, also at the root, like api.mch.weixin.qq.com).
Request signatures are checked over the **canonical** path (``/v3/pay/transactions/jsapi``):
the mount prefix is stripped first, so a stock SDK changes only its base URL.

It enforces: request signatures (401 SIGN_ERROR) and the 5-minute timestamp window,
required fields (400 PARAM_ERROR), integer fen amounts, appid↔mchid↔openid consistency,
unique ``out_trade_no`` (identical parameters → the same prepay_id, otherwise what WeChat
really answers: 400 INVALID_REQUEST "201 商户订单号重复"), no close in the first 5 minutes
(× time_scale), refunds ≤ paid.
Answers are signed like WeChat's; notifications are AES-GCM encrypted and signed with the
platform certificate or the WeChat Pay public key (switchable), re-sent on WeChat's
timetable (× time_scale) until acknowledged. Control: ``POST /sandbox/wechatpay/control``.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from minigate.providers.wechatpay import v3sign
from minigate.sandbox import credentials as cred
from minigate.sandbox import media
from minigate.sandbox.wechat_core import Prepay, digits

if TYPE_CHECKING:
    from minigate.sandbox.keystore import SandboxCredentials
    from minigate.sandbox.world import SandboxWorld

#: WeChat's notification timetable (seconds between attempts), 15 sends over ~24 h.
TIMETABLE = (15, 15, 30, 180, 600, 1200, 1800, 1800, 1800, 3600, 10800, 10800, 10800,
             21600, 21600)
#: WeChat's message when an ``out_trade_no`` is reused with different parameters (v2 and v3).
DUPLICATE_ORDER_NO = "201 商户订单号重复"
OUT_TRADE_NO_RE = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
#: Where the simulator is mounted in minigate (and in ``minigate sandbox``).
MOUNT = "/sandbox/wechatpay"
#: Where a refund's money goes back to (a paid-from-balance shopper's balance).
USER_RECEIVED_ACCOUNT = "支付用户零钱"


def canonical_path(raw_path: str) -> str:
    """The path WeChat would see: without the sandbox's mount prefix."""
    if raw_path.startswith(MOUNT + "/"):
        return raw_path[len(MOUNT):]
    return raw_path


def new_refund_id() -> str:
    """29 digits, as WeChat's refund ids are."""
    return "503000" + digits(23)


@dataclass
class WxRefund:
    out_refund_no: str
    refund_id: str
    out_trade_no: str
    amount: int
    total: int
    status: str
    created_at: datetime
    notify_url: str = ""
    transaction_id: str = ""
    success_time: datetime | None = None


@dataclass
class WxOrder:
    out_trade_no: str
    mchid: str
    appid: str
    version: str  # "v3" or "v2"
    params: dict[str, Any]
    prepay: Prepay
    notify_url: str
    sign_type: str = "MD5"  # v2 only
    refunds: dict[str, WxRefund] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.prepay.amount_minor

    def refunded(self) -> int:
        return sum(r.amount for r in self.refunds.values() if r.status != "CLOSED")


#: How a refund ends (v3 names); v2 calls ABNORMAL ``CHANGE`` and CLOSED ``REFUNDCLOSE``.
RefundOutcome = Literal["SUCCESS", "ABNORMAL", "CLOSED"]
V2_REFUND_STATUS: dict[str, str] = {"SUCCESS": "SUCCESS", "ABNORMAL": "CHANGE",
                                    "CLOSED": "REFUNDCLOSE"}


TRADE_STATE_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "未支付",
                    "CLOSED": "已关闭", "USERPAYING": "用户支付中", "PAYERROR": "支付失败"}


class Control(BaseModel):
    """Sandbox knobs: who signs notifications, probes, duplicates."""

    signing: Literal["certificate", "public_key"] | None = None
    #: Send a ``WECHATPAY/SIGNTEST/`` probe before each of the next N notifications.
    probe_next: int | None = None
    #: Send every next notification this many extra times.
    duplicates: int | None = None
    #: How the next refunds end (REFUND.SUCCESS / REFUND.ABNORMAL / REFUND.CLOSED).
    refund_outcome: RefundOutcome | None = None


class WechatpaySim:
    """The WeChat Pay merchant platform, as far as minigate uses it."""

    def __init__(self, world: SandboxWorld, credentials: SandboxCredentials) -> None:
        self.world = world
        self.credentials = credentials
        self.keys = credentials.wechat
        self.apiv3_key = credentials.wechatpay_apiv3_key
        self.mchid = cred.WECHATPAY_MCHID
        self.apps = {cred.MINI_APP_ID}  # AppIDs bound to the merchant
        self.orders: dict[str, WxOrder] = {}
        self.by_transaction_id: dict[str, WxOrder] = {}
        self.refunds: dict[str, WxRefund] = {}
        self._kept_orders = world.retention.ledger("wechatpay orders", self._forget_order)
        self._kept_refunds = world.retention.ledger("wechatpay refunds", self._forget_refund)
        self.signing: Literal["certificate", "public_key"] = "certificate"
        self.probe_next = 0
        #: HTTP statuses minigate answered to SIGNTEST probes (expected: 4xx/5xx).
        self.probe_answers: list[int] = []
        self.refund_outcome: RefundOutcome = "SUCCESS"
        self.min_close_age = cred.WECHATPAY_MIN_CLOSE_AGE * world.notifier.time_scale

    # -- WeChat's signatures on what it sends ------------------------------------------
    def _signer(self, serial_hint: str | None = None,
                mode: Literal["certificate", "public_key"] | None = None) -> tuple[str, Any]:
        mode = mode or self.signing
        if serial_hint == self.keys.public_key_id:
            mode = "public_key"  # answers follow the Wechatpay-Serial the merchant sent
        if mode == "public_key":
            return self.keys.public_key_id, self.keys.public_key
        return self.keys.platform_serial, self.keys.platform_key

    def signed_headers(self, body: bytes, serial_hint: str | None = None,
                       mode: Literal["certificate", "public_key"] | None = None
                       ) -> dict[str, str]:
        serial, key = self._signer(serial_hint, mode)
        timestamp = str(int(self.world.clock.now().timestamp()))
        nonce = secrets.token_hex(16)
        signature = v3sign.rsa_sign(key, v3sign.response_message(timestamp, nonce, body))
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": signature, "Wechatpay-Serial": serial,
                "Wechatpay-Signature-Type": v3sign.SCHEME}

    def answer(self, request: Request | None, status: int, data: dict[str, Any] | None = None
               ) -> Response:
        body = b"" if data is None else json.dumps(data, ensure_ascii=False).encode()
        hint = request.headers.get("wechatpay-serial") if request is not None else None
        return Response(body, status, headers=self.signed_headers(body, hint),
                        media_type="application/json" if body else None)

    def error(self, request: Request, status: int, code: str, message: str) -> Response:
        return self.answer(request, status, {"code": code, "message": message})

    # -- merchant's signatures on what it asks ----------------------------------------------
    async def _authenticated(self, request: Request) -> bytes | Response:
        """The raw body when the Authorization header holds, else a signed 401."""
        body = await request.body()
        auth = v3sign.parse_authorization(request.headers.get("authorization", ""))
        if auth is None:
            return self.error(request, 401, "SIGN_ERROR", "Authorization header is malformed")
        if auth["mchid"] != self.mchid or auth["serial_no"] != self.keys.merchant_serial:
            return self.error(request, 401, "SIGN_ERROR", "unknown mchid or certificate serial")
        now = int(self.world.clock.now().timestamp())
        if not auth["timestamp"].isdigit() or abs(now - int(auth["timestamp"])) > 300:
            return self.error(request, 401, "SIGN_ERROR", "timestamp outside 5 minutes")
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        query = request.scope.get("query_string") or b""
        url = canonical_path(raw_path.decode()) + (f"?{query.decode()}" if query else "")
        message = v3sign.request_message(request.method, url, auth["timestamp"],
                                         auth["nonce_str"], body)
        if not v3sign.rsa_verify(self.keys.merchant_key.public_key(), message, auth["signature"]):
            return self.error(request, 401, "SIGN_ERROR", "signature does not verify")
        return body

    # -- orders (shared by v2) -------------------------------------------------------------
    def check_order_params(self, *, appid: str, mchid: str, openid: str) -> str | None:
        """The APPID/MCHID/openid consistency rules; an error message or None."""
        if mchid != self.mchid:
            return "MCH_NOT_EXISTS"
        if appid not in self.apps:
            return "APPID_MCHID_NOT_MATCH"
        if not self.world.login.known_openid(appid, openid):
            return "OPENID_MISMATCH"
        return None

    def new_order(self, *, out_trade_no: str, appid: str, openid: str, total: int,
                  currency: str, description: str, notify_url: str, version: str,
                  params: dict[str, Any], expires_at: datetime | None,
                  sign_type: str = "MD5") -> WxOrder:
        prepay = self.world.wechat.create_prepay(
            appid=appid, mchid=self.mchid, openid=openid, amount_minor=total, currency=currency,
            description=description, expires_at=expires_at, owner=self)
        order = WxOrder(out_trade_no, self.mchid, appid, version, params, prepay, notify_url,
                        sign_type)
        prepay.record = order
        self.orders[out_trade_no] = order
        self._kept_orders.add(out_trade_no)
        return order

    def _forget_order(self, out_trade_no: Any) -> None:
        """The retention policy's: this order, its prepay and its refunds, as if never
        made (v2's refund query answers from the order, so its refunds go with it)."""
        order = self.orders.pop(out_trade_no, None)
        if order is None:
            return
        for out_refund_no in order.refunds:
            if self.refunds.pop(out_refund_no, None) is not None:
                self._kept_refunds.gone(out_refund_no)  # not counted as kept any more
        if order.prepay.transaction_id:
            self.by_transaction_id.pop(order.prepay.transaction_id, None)
        self.world.wechat.forget(order.prepay.prepay_id)

    def _forget_refund(self, out_refund_no: Any) -> None:
        self.refunds.pop(out_refund_no, None)

    def pay_sign_ok(self, prepay: Prepay, params: Mapping[str, str]) -> bool:
        """RSA over the v3 rule for a v3 order; the v2 rule with the order's ``signType``
        (MD5 or HMAC-SHA256) for a v2 one."""
        order: WxOrder = prepay.record
        if order.version == "v2":
            return self.world.wechatpay_v2.pay_sign_ok(order, params)
        return self._pay_sign_ok(prepay.appid, params)

    async def prepay_paid(self, prepay: Prepay) -> None:
        await self.paid(prepay.record)

    def find_order(self, out_trade_no: str | None = None, transaction_id: str | None = None
                   ) -> WxOrder | None:
        """By ``transaction_id`` when given (it wins, as at WeChat), else ``out_trade_no``."""
        if transaction_id:
            return self.by_transaction_id.get(transaction_id)
        return self.orders.get(out_trade_no or "")

    def too_early_to_close(self, order: WxOrder) -> bool:
        age = (self.world.clock.now() - order.prepay.created_at).total_seconds()
        return age < self.min_close_age

    def add_refund(self, order: WxOrder, out_refund_no: str, amount: int,
                   notify_url: str) -> WxRefund:
        """Accepted refunds end at once here (as ``refund_outcome`` says: SUCCESS by default,
        or ABNORMAL / CLOSED); WeChat still answers PROCESSING first."""
        outcome = self.refund_outcome
        now = self.world.clock.now()
        refund = WxRefund(out_refund_no, new_refund_id(), order.out_trade_no,
                          amount, order.total, outcome, now, notify_url,
                          order.prepay.transaction_id,
                          now if outcome == "SUCCESS" else None)
        order.refunds[out_refund_no] = refund
        self.refunds[out_refund_no] = refund
        self._kept_refunds.add(out_refund_no)
        self._kept_orders.touch(order.out_trade_no)
        if outcome != "CLOSED":  # a closed refund gives the money back to the merchant
            order.prepay.status = "REFUND"
            order.prepay.refunded_minor += amount
        return refund

    def close_order(self, order: WxOrder) -> None:
        """Close the order's prepay (v3's close and v2's closeorder)."""
        self.world.wechat.close(order.prepay.prepay_id)
        self._kept_orders.touch(order.out_trade_no)

    async def paid(self, order: WxOrder) -> None:
        self.by_transaction_id[order.prepay.transaction_id] = order
        self._kept_orders.touch(order.out_trade_no)
        if order.version == "v2":
            self.world.wechatpay_v2.notify_paid(order)
        else:
            self.notify(order.notify_url, "TRANSACTION.SUCCESS", "transaction",
                        self.transaction(order), f"wechatpay:{order.out_trade_no}")

    # -- v3 endpoints ------------------------------------------------------------------
    async def jsapi(self, request: Request) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        data = _json_object(body)
        problem = _missing_v3(data)
        if data is None or problem:
            return self.error(request, 400, "PARAM_ERROR", problem or "body is not a JSON object")
        assert data is not None
        amount, payer = data["amount"], data["payer"]
        total = amount.get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            return self.error(request, 400, "PARAM_ERROR", "amount.total must be integer fen > 0")
        if amount.get("currency", "CNY") != "CNY":
            return self.error(request, 400, "PARAM_ERROR", "amount.currency must be CNY")
        if not OUT_TRADE_NO_RE.fullmatch(str(data["out_trade_no"])):
            return self.error(request, 400, "PARAM_ERROR", "out_trade_no format")
        auth_mchid = (v3sign.parse_authorization(request.headers["authorization"]) or {})["mchid"]
        if data["mchid"] != auth_mchid:
            return self.error(request, 400, "PARAM_ERROR", "mchid differs from Authorization")
        bad = self.check_order_params(appid=str(data["appid"]), mchid=str(data["mchid"]),
                                      openid=str(payer["openid"]))
        if bad:
            return self.error(request, 400, "PARAM_ERROR" if bad == "OPENID_MISMATCH" else bad,
                              f"{bad}: appid, mchid and openid must belong together")
        expires = _parse_time(data.get("time_expire"))
        existing = self.orders.get(str(data["out_trade_no"]))
        if existing is not None:
            if existing.params == data and existing.prepay.status == "NOTPAY":
                return self.answer(request, 200, {"prepay_id": existing.prepay.prepay_id})
            return self.error(request, 400, "INVALID_REQUEST", DUPLICATE_ORDER_NO)
        order = self.new_order(
            out_trade_no=str(data["out_trade_no"]), appid=str(data["appid"]),
            openid=str(payer["openid"]), total=total, currency="CNY",
            description=str(data["description"]), notify_url=str(data["notify_url"]),
            version="v3", params=data, expires_at=expires)
        return self.answer(request, 200, {"prepay_id": order.prepay.prepay_id})

    def _pay_sign_ok(self, appid: str, params: Mapping[str, str]) -> bool:
        if params.get("signType") != "RSA":
            return False
        message = v3sign.pay_sign_message(appid, str(params.get("timeStamp")),
                                          str(params.get("nonceStr")), str(params.get("package")))
        return v3sign.rsa_verify(self.keys.merchant_key.public_key(), message,
                                 str(params.get("paySign")))

    def transaction(self, order: WxOrder) -> dict[str, Any]:
        prepay = order.prepay
        data: dict[str, Any] = {
            "appid": order.appid, "mchid": order.mchid, "out_trade_no": order.out_trade_no,
            "trade_type": "JSAPI", "trade_state": prepay.status,
            "trade_state_desc": TRADE_STATE_DESC.get(prepay.status, prepay.status),
            "payer": {"openid": prepay.openid},
            "amount": {"total": prepay.amount_minor, "currency": prepay.currency},
        }
        if order.params.get("attach"):
            data["attach"] = order.params["attach"]
        if prepay.transaction_id:
            data.update(transaction_id=prepay.transaction_id, bank_type="OTHERS",
                        success_time=_rfc3339(prepay.paid_at))
            data["amount"].update(payer_total=prepay.amount_minor, payer_currency="CNY")
        return data

    async def query(self, out_trade_no: str, request: Request) -> Response:
        return await self._query(request, out_trade_no=out_trade_no)

    async def query_by_id(self, transaction_id: str, request: Request) -> Response:
        return await self._query(request, transaction_id=transaction_id)

    async def _query(self, request: Request, *, out_trade_no: str | None = None,
                     transaction_id: str | None = None) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        if request.query_params.get("mchid") != self.mchid:
            return self.error(request, 400, "PARAM_ERROR", "mchid is required")
        order = self.find_order(out_trade_no, transaction_id)
        if order is None:
            return self.error(request, 404, "ORDER_NOT_EXIST", "订单不存在")
        return self.answer(request, 200, self.transaction(order))

    async def close(self, out_trade_no: str, request: Request) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        data = _json_object(body)
        if data is None or data.get("mchid") != self.mchid:
            return self.error(request, 400, "PARAM_ERROR", "mchid is required")
        order = self.orders.get(out_trade_no)
        if order is None:
            return self.error(request, 404, "ORDER_NOT_EXIST", "订单不存在")
        if order.prepay.status in ("SUCCESS", "REFUND"):
            return self.error(request, 400, "ORDER_PAID", "订单已支付")
        if self.too_early_to_close(order):
            return self.error(request, 403, "RULE_LIMIT", "订单生成后5分钟内不能关单")
        self.close_order(order)
        return self.answer(request, 204)

    async def refund(self, request: Request) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        data = _json_object(body)
        amount = data.get("amount") if data else None
        if data is None or not data.get("out_refund_no") or not isinstance(amount, dict):
            return self.error(request, 400, "PARAM_ERROR", "out_refund_no and amount required")
        existing = self.refunds.get(str(data["out_refund_no"]))
        if existing is not None:
            return self.answer(request, 200, self.refund_view(existing, "PROCESSING"))
        if not (data.get("out_trade_no") or data.get("transaction_id")):
            return self.error(request, 400, "PARAM_ERROR",
                              "transaction_id or out_trade_no is required")
        order = self.find_order(str(data.get("out_trade_no") or ""),
                                str(data.get("transaction_id") or ""))
        if order is None:
            return self.error(request, 404, "RESOURCE_NOT_EXISTS", "订单不存在")
        refund, total = amount.get("refund"), amount.get("total")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (refund, total)):
            return self.error(request, 400, "PARAM_ERROR", "amount.refund/total must be fen")
        assert isinstance(refund, int) and isinstance(total, int)
        if total != order.total or refund <= 0:
            return self.error(request, 400, "PARAM_ERROR", "amount.total differs from the order")
        if order.prepay.status not in ("SUCCESS", "REFUND"):
            return self.error(request, 403, "TRADE_ERROR", "订单未支付")
        if order.refunded() + refund > order.total:
            return self.error(request, 403, "NOT_ENOUGH", "退款金额超过订单可退金额")
        record = self.add_refund(order, str(data["out_refund_no"]), refund,
                                 str(data.get("notify_url") or ""))
        if record.notify_url:
            self.notify(record.notify_url, f"REFUND.{record.status}", "refund",
                        self.refund_view(record, notification=True),
                        f"wechatpay:{record.out_refund_no}")
        return self.answer(request, 200, self.refund_view(record, "PROCESSING"))

    def refund_view(self, refund: WxRefund, status: str | None = None, *,
                    notification: bool = False) -> dict[str, Any]:
        view: dict[str, Any] = {
            "mchid" if notification else "channel": self.mchid if notification else "ORIGINAL",
            "out_refund_no": refund.out_refund_no, "refund_id": refund.refund_id,
            "out_trade_no": refund.out_trade_no, "transaction_id": refund.transaction_id,
            "user_received_account": USER_RECEIVED_ACCOUNT,
            "amount": {"refund": refund.amount, "total": refund.total, "currency": "CNY",
                       "payer_refund": refund.amount, "payer_total": refund.total},
            "create_time": _rfc3339(refund.created_at),
        }
        if not notification:
            view["funds_account"] = "AVAILABLE"
        shown = status or refund.status
        view["refund_status" if notification else "status"] = shown
        if shown == "SUCCESS" and refund.success_time is not None:
            view["success_time"] = _rfc3339(refund.success_time)
        return view

    async def refund_query(self, out_refund_no: str, request: Request) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        refund = self.refunds.get(out_refund_no)
        if refund is None:
            return self.error(request, 404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return self.answer(request, 200, self.refund_view(refund))

    async def certificates(self, request: Request) -> Response:
        body = await self._authenticated(request)
        if isinstance(body, Response):
            return body
        nonce = secrets.token_hex(6)
        ciphertext = v3sign.aes_gcm_encrypt(self.apiv3_key, nonce, "certificate",
                                            self.keys.platform_cert_pem)
        data = {"data": [{
            "serial_no": self.keys.platform_serial, "effective_time": "2026-01-01T00:00:00+08:00",
            "expire_time": "2031-01-01T00:00:00+08:00",
            "encrypt_certificate": {"algorithm": "AEAD_AES_256_GCM", "nonce": nonce,
                                    "associated_data": "certificate",
                                    "ciphertext": ciphertext},
        }]}
        body_bytes = json.dumps(data).encode()
        # The certificate list is always signed with the platform certificate itself.
        return Response(body_bytes, 200, media_type="application/json",
                        headers=self.signed_headers(body_bytes, mode="certificate"))

    async def unknown(self, path: str, request: Request) -> Response:
        """What WeChat answers for an API it does not have: its own signed error shape."""
        return self.error(request, 404, "NOT_FOUND",
                          f"请求的资源不存在: {request.method} /v3/{path[:200]} "
                          "(not simulated by the minigate sandbox)")

    # -- notifications -----------------------------------------------------------------
    def notify(self, url: str, event_type: str, original_type: str, resource: dict[str, Any],
               label: str) -> None:
        nonce = secrets.token_hex(6)
        envelope = {
            "id": "EV-" + secrets.token_hex(10), "create_time": _rfc3339(self.world.clock.now()),
            "resource_type": "encrypt-resource", "event_type": event_type,
            "summary": "支付成功" if event_type.startswith("TRANSACTION") else "退款状态变更",
            "resource": {
                "original_type": original_type, "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": v3sign.aes_gcm_encrypt(
                    self.apiv3_key, nonce, original_type,
                    json.dumps(resource, ensure_ascii=False).encode()),
                "associated_data": original_type, "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        if self.probe_next > 0:
            self.probe_next -= 1
            self._send_probe(url, body)
        # Fresh timestamp, nonce and signature on every attempt, as WeChat does.
        self.world.notifier.send(
            label, url, body, {}, TIMETABLE, lambda r: r.status_code in (200, 204),
            headers_factory=lambda: {"Content-Type": "application/json",
                                     **self.signed_headers(body)})

    def _send_probe(self, url: str, body: bytes) -> None:
        def probe_headers() -> dict[str, str]:
            headers = {"Content-Type": "application/json", **self.signed_headers(body)}
            headers["Wechatpay-Signature"] = v3sign.SIGNTEST_PREFIX + secrets.token_hex(32)
            return headers

        def answered(response: Any) -> bool:
            self.probe_answers.append(response.status_code)
            return True  # one probe, whatever the answer

        self.world.notifier.send("wechatpay:signtest", url, body, {}, (), answered,
                                 headers_factory=probe_headers)

    async def control(self, body: Control) -> dict[str, Any]:
        """Switch notification signing, arm SIGNTEST probes, ask for duplicates, choose how
        refunds end."""
        if body.signing is not None:
            self.signing = body.signing
        if body.probe_next is not None:
            self.probe_next = body.probe_next
        if body.duplicates is not None:
            self.world.notifier.options.duplicates = body.duplicates
        if body.refund_outcome is not None:
            self.refund_outcome = body.refund_outcome
        return {"signing": self.signing, "probe_next": self.probe_next,
                "probe_answers": self.probe_answers,
                "duplicates": self.world.notifier.options.duplicates,
                "refund_outcome": self.refund_outcome}

    def router(self) -> APIRouter:
        """Everything under ``/wechatpay`` (the world mounts it under ``/sandbox``)."""
        router = APIRouter(prefix="/wechatpay")
        router.include_router(self.api_router())
        router.add_api_route("/control", self.control, methods=["POST"],
                             tags=["sandbox: control"])
        return router

    def api_router(self) -> APIRouter:
        """WeChat Pay's own paths (v3 and v2), mountable anywhere."""
        router = APIRouter(tags=["sandbox: wechatpay"])
        router.add_api_route("/v3/pay/transactions/jsapi", self.jsapi, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route("/v3/pay/transactions/out-trade-no/{out_trade_no}", self.query,
                             methods=["GET"])
        router.add_api_route("/v3/pay/transactions/id/{transaction_id}", self.query_by_id,
                             methods=["GET"])
        router.add_api_route("/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
                             self.close, methods=["POST"])
        router.add_api_route("/v3/refund/domestic/refunds", self.refund, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route("/v3/refund/domestic/refunds/{out_refund_no}", self.refund_query,
                             methods=["GET"])
        router.add_api_route("/v3/certificates", self.certificates, methods=["GET"])
        router.include_router(self.world.wechatpay_v2.router())
        router.add_api_route("/v3/{path:path}", self.unknown,
                             methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                             include_in_schema=False)
        return router


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _missing_v3(data: dict[str, Any] | None) -> str:
    if data is None:
        return "body is not a JSON object"
    for name in ("appid", "mchid", "description", "out_trade_no", "notify_url"):
        if not isinstance(data.get(name), str) or not data[name]:
            return f"{name} is required"
    if not isinstance(data.get("amount"), dict):
        return "amount is required"
    payer = data.get("payer")
    if not isinstance(payer, dict) or not payer.get("openid"):
        return "payer.openid is required"
    return ""


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _rfc3339(moment: datetime | None) -> str:
    from minigate.providers.wechatpay.v3_messages import rfc3339

    return rfc3339(moment) if moment else ""
