"""Stateful Latipay v2 simulator: miniapppay, minialipay, transaction query, refund, cancel.

It enforces what Latipay enforces, answering with Latipay's own error codes
(providers.md §1.9): 204 missing fields, 205 unknown user, 206 bad signature, 207 bad
parameter (amount format, version, reused ``merchant_reference`` with other parameters),
301 wallet mismatch, 201 order does not exist, 550 refund above what is left, 562 refund
already done. A ``merchant_reference`` sent again with identical parameters gets the same
answer (minigate retries with the same number after a timeout). After the shopper pays,
the signed form notification goes to ``notify_url`` about every 30 s, without limit, until
answered ``sent``; ``POST /sandbox/latipay/control {"retry_every_seconds": …}`` changes the
interval (still multiplied by the sandbox ``time_scale``).
"""

from __future__ import annotations

import hmac
import itertools
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from minigate.domain.money import format_minor, parse_minor
from minigate.providers.latipay import signing
from minigate.sandbox import media
from minigate.sandbox.wechat_core import Md5PrepayOwner, Prepay, md5_pay_params

if TYPE_CHECKING:
    from minigate.sandbox.alipay_core import Trade
    from minigate.sandbox.world import SandboxWorld

AMOUNT_RE = re.compile(r"(0|[1-9][0-9]*)\.[0-9]{2}")
RETRY_EVERY = 30.0  # seconds, without limit, until the merchant answers "sent"


@dataclass
class Merchant:
    user_id: str
    wallet_id: str
    api_key: str
    currency: str
    wechat_mchid: str = "1900000109"
    wechat_key: str = field(default_factory=lambda: secrets.token_hex(16))


@dataclass
class LatipayOrder:
    merchant: Merchant
    merchant_reference: str
    order_id: str
    amount_minor: int
    currency: str
    payment_method: str
    notify_url: str
    params: dict[str, Any]
    response: dict[str, Any]
    status: str = "pending"
    pay_time: datetime | None = None
    refunded_minor: int = 0
    #: Tuples, replaced on each refund (refunds are rare; an order lives as long as the
    #: sandbox): a tuple of strings and integers is one object the collector stops
    #: tracking, where a set and a list would be two more for it to walk every time.
    refund_refs: tuple[str, ...] = ()
    #: every refund accepted, in order: (``reference`` as sent, amount in minor units)
    refunds: tuple[tuple[str, int], ...] = ()
    prepay_id: str = ""


class LatipayControl(BaseModel):
    """Control: the interval between notification re-sends (Latipay: about 30 s)."""

    retry_every_seconds: float = Field(gt=0)


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message})


class LatipaySim(Md5PrepayOwner):
    def __init__(self, world: SandboxWorld, merchants: list[Merchant]) -> None:
        self.world = world
        self.merchants = {m.user_id: m for m in merchants}
        self.orders: dict[tuple[str, str], LatipayOrder] = {}
        self.by_order_id: dict[str, LatipayOrder] = {}
        self.retry_every = RETRY_EVERY
        self._kept = world.retention.ledger("latipay orders", self._forget)

    # -- request checks ---------------------------------------------------------------
    async def _signed_body(self, request: Request, required: tuple[str, ...]
                           ) -> tuple[Merchant, dict[str, Any]] | JSONResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(207, "Param is wrong: body is not JSON")
        if not isinstance(body, dict):
            return _error(207, "Param is wrong: body is not an object")
        missing = [n for n in required if body.get(n) in (None, "")]
        if missing:
            return _error(204, f"Some fields from input are null: {', '.join(missing)}")
        merchant = self.merchants.get(str(body.get("user_id")))
        if merchant is None:
            return _error(205, "Cannot find out corresponding key for the user code")
        if not self._signature_ok(merchant, body):
            return _error(206, "Signature from Merchant request is wrong")
        return merchant, body

    @staticmethod
    def _signature_ok(merchant: Merchant, params: dict[str, Any]) -> bool:
        expected = signing.sign_request(params, merchant.api_key)
        return hmac.compare_digest(expected, str(params.get("signature", "")))

    def _check_amount(self, merchant: Merchant, body: dict[str, Any]) -> int | JSONResponse:
        if str(body.get("wallet_id")) != merchant.wallet_id:
            return _error(301, "Wrong account info or currency info")
        amount = body.get("amount")
        if not isinstance(amount, str) or not AMOUNT_RE.fullmatch(amount):
            return _error(207, "Param is wrong: amount must be a decimal string like 120.00")
        minor = parse_minor(amount, merchant.currency)
        if minor <= 0:
            return _error(207, "Param is wrong: amount must be positive")
        return minor

    def _existing(self, merchant: Merchant, body: dict[str, Any]) -> JSONResponse | None:
        order = self.orders.get((merchant.user_id, str(body["merchant_reference"])))
        if order is None:
            return None
        same = {k: v for k, v in body.items() if k != "signature"} == order.params
        if same and order.status == "pending":
            return JSONResponse(order.response)
        return _error(207, "Param is wrong: merchant_reference has been used")

    # -- create -------------------------------------------------------------------------
    async def miniapppay(self, request: Request) -> Response:
        checked = await self._signed_body(request, (
            "user_id", "wallet_id", "amount", "notify_url", "merchant_reference",
            "product_name", "app_id", "open_id", "signature"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        minor = self._check_amount(merchant, body)
        if isinstance(minor, JSONResponse):
            return minor
        if (existing := self._existing(merchant, body)) is not None:
            return existing
        if not self.world.login.known_openid(str(body["app_id"]), str(body["open_id"])):
            return _error(207, "Param is wrong: open_id does not belong to app_id")
        order = self._new_order(merchant, body, minor, "wechat", str(body["notify_url"]))
        prepay = self.world.wechat.create_prepay(
            appid=str(body["app_id"]), mchid=merchant.wechat_mchid, openid=str(body["open_id"]),
            amount_minor=minor, currency=merchant.currency,
            description=str(body.get("product_name") or ""), expires_at=None,
            owner=self, record=order,
        )
        order.prepay_id = prepay.prepay_id
        params = md5_pay_params(str(body["app_id"]), merchant.wechat_key, prepay.prepay_id,
                                str(int(self.world.clock.now().timestamp())),
                                secrets.token_hex(16))
        order.response = {
            "code": 0, "message": "SUCCESS",
            "payment": {"nonceStr": params["nonceStr"], "paySign": params["paySign"],
                        "signType": params["signType"], "timeStamp": params["timeStamp"],
                        "packageStr": params["package"]},
            "paydata": {"order_id": order.order_id},
        }
        return JSONResponse(order.response)

    async def minialipay(self, request: Request) -> Response:
        checked = await self._signed_body(request, (
            "user_id", "wallet_id", "amount", "callback_url", "merchant_reference", "ip",
            "version", "product_name", "signature"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        if body.get("version") != "2.0":
            return _error(207, "Param is wrong: version must be 2.0")
        minor = self._check_amount(merchant, body)
        if isinstance(minor, JSONResponse):
            return minor
        if (existing := self._existing(merchant, body)) is not None:
            return existing
        order = self._new_order(merchant, body, minor, "alipay", str(body["callback_url"]))
        gateway = self.world.alipay.create_trade(
            out_trade_no=order.order_id, amount_minor=minor, currency=merchant.currency,
            total_fee=str(body["amount"]), subject=str(body.get("product_name") or "order"),
            merchant=merchant.wallet_id, owner=self, record=order,
        )
        order.response = {
            "code": 0, "message": "SUCCESS", "messageCN": "操作成功", "gatewaydata": gateway,
            "paydata": {"orderId": order.order_id,
                        "customerOrderId": order.merchant_reference},
        }
        return JSONResponse(order.response)

    def _new_order(self, merchant: Merchant, body: dict[str, Any], minor: int, method: str,
                   notify_url: str) -> LatipayOrder:
        order = LatipayOrder(
            merchant, str(body["merchant_reference"]),
            "2026" + "".join(secrets.choice("0123456789") for _ in range(12)), minor,
            merchant.currency, method, notify_url,
            {k: v for k, v in body.items() if k != "signature"}, {},
        )
        self.orders[(merchant.user_id, order.merchant_reference)] = order
        self.by_order_id[order.order_id] = order
        self._kept.add((merchant.user_id, order.merchant_reference))
        return order

    def _forget(self, key: Any) -> None:
        """The retention policy's: this order, its prepay or trade, as if never made."""
        order = self.orders.pop(key, None)
        if order is None:
            return
        self.by_order_id.pop(order.order_id, None)
        if order.prepay_id:
            self.world.wechat.forget(order.prepay_id)
        else:
            self.world.alipay.forget(order.order_id)

    # -- payment result -------------------------------------------------------------------
    async def prepay_paid(self, prepay: Prepay) -> None:
        await self._paid(prepay.record)

    async def trade_paid(self, trade: Trade) -> None:
        await self._paid(trade.record)

    async def _paid(self, order: LatipayOrder) -> None:
        order.status, order.pay_time = "paid", self.world.clock.now()
        self._kept.touch((order.merchant.user_id, order.merchant_reference))
        self.notify(order)

    def result_fields(self, order: LatipayOrder) -> dict[str, str]:
        amount = format_minor(order.amount_minor, order.currency)
        fields = {
            "merchant_reference": order.merchant_reference, "order_id": order.order_id,
            "currency": order.currency, "amount": amount,
            "payment_method": order.payment_method, "status": order.status,
            "pay_time": order.pay_time.strftime("%Y-%m-%d %H:%M:%S") if order.pay_time else "",
        }
        fields["signature"] = signing.result_signature(
            order.merchant.api_key, order.merchant_reference, order.payment_method,
            order.status, order.currency, amount)
        return fields

    def notify(self, order: LatipayOrder) -> None:
        body = urlencode(self.result_fields(order)).encode()
        self.world.notifier.send(
            f"latipay:{order.merchant_reference}", order.notify_url, body,
            {"Content-Type": "application/x-www-form-urlencoded"},
            itertools.repeat(self.retry_every),  # "no times limitation" until "sent"
            lambda r: r.status_code == 200 and r.text.strip() == "sent",
        )

    # -- query, refund, cancel ------------------------------------------------------------
    async def transaction(self, merchant_reference: str, request: Request) -> Response:
        user_id = request.query_params.get("user_id", "")
        merchant = self.merchants.get(user_id)
        if merchant is None:
            return _error(205, "Cannot find out corresponding key for the user code")
        params = {"merchant_reference": merchant_reference, "user_id": user_id,
                  "signature": request.query_params.get("signature", "")}
        if not self._signature_ok(merchant, params):
            return _error(206, "Signature from Merchant request is wrong")
        order = self.orders.get((user_id, merchant_reference))
        if order is None:
            return _error(201, "order not exist")
        fields = self.result_fields(order)
        # Latipay answers the amount as a JSON number (e.g. 120.00), not a string.
        text = json.dumps({"code": 0, "message": "SUCCESS", **fields, "amount": "__AMOUNT__"})
        text = text.replace('"__AMOUNT__"', fields["amount"])
        return Response(text, media_type="application/json")

    async def refund(self, request: Request) -> Response:
        checked = await self._signed_body(request, (
            "user_id", "order_id", "refund_amount", "signature"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        order = self.by_order_id.get(str(body["order_id"]))
        if order is None or order.merchant is not merchant:
            return _error(551, "Refund related order is not exist")
        reference = str(body.get("reference") or "")
        ref_key = reference.split(" ", 1)[0]
        if ref_key and ref_key in order.refund_refs:
            return _error(562, "This refund request has been done")
        amount = body["refund_amount"]
        if not isinstance(amount, str) or not AMOUNT_RE.fullmatch(amount):
            return _error(550, "Refund parameters wrong: refund_amount")
        minor = parse_minor(amount, order.currency)
        if order.status != "paid" or minor <= 0 or order.refunded_minor + minor > order.amount_minor:
            return _error(550, "Refund parameters wrong: amount exceeds what can be refunded")
        order.refunded_minor += minor
        order.refunds += ((reference, minor),)
        if ref_key:
            order.refund_refs += (ref_key,)
        self._kept.touch((merchant.user_id, order.merchant_reference))
        return JSONResponse({"code": 0, "message": ""})

    async def cancel(self, request: Request) -> Response:
        checked = await self._signed_body(request, ("user_id", "merchant_reference", "signature"))
        if isinstance(checked, JSONResponse):
            return checked
        merchant, body = checked
        order = self.orders.get((merchant.user_id, str(body["merchant_reference"])))
        if order is None:
            return _error(201, "order not exist")
        if order.status == "paid":
            return _error(1, "FAIL: order already paid")
        if order.status == "pending":
            order.status = "canceled"
            self._kept.touch((merchant.user_id, order.merchant_reference))
            if order.prepay_id:
                self.world.wechat.close(order.prepay_id)
            else:
                self.world.alipay.close(order.order_id)
        return JSONResponse({"code": 0, "message": "SUCCESS"})

    async def control(self, body: LatipayControl) -> dict[str, float]:
        """Sandbox control: the re-send interval of notifications sent from now on."""
        self.retry_every = body.retry_every_seconds
        return {"retry_every_seconds": self.retry_every}

    def router(self) -> APIRouter:
        router = APIRouter(prefix="/latipay", tags=["sandbox: latipay"])
        router.add_api_route("/v2/miniapppay", self.miniapppay, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route("/v2/minialipay", self.minialipay, methods=["POST"],
                             openapi_extra=media.JSON)
        router.add_api_route("/v2/transaction/{merchant_reference}", self.transaction,
                             methods=["GET"])
        router.add_api_route("/refund", self.refund, methods=["POST"], openapi_extra=media.JSON)
        router.add_api_route("/cancel", self.cancel, methods=["POST"], openapi_extra=media.JSON)
        router.add_api_route("/control", self.control, methods=["POST"])
        return router


__all__ = ["LatipaySim", "Merchant", "Prepay"]
