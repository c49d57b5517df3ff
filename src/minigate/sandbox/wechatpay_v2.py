"""WeChat Pay API v2 endpoints of the simulator (XML; MD5 or HMAC-SHA256 with the APIv2 key).

Shares the order book of :class:`~minigate.sandbox.wechatpay.WechatpaySim`. It answers like
WeChat: ``return_code`` FAIL for a broken request (bad XML, bad ``sign``), ``result_code``
FAIL with an ``err_code`` for a refused one, every SUCCESS answer signed.

The client certificate WeChat requires on ``/secapi/pay/refund`` is checked when the
sandbox is served over TLS (``minigate sandbox --tls``): the TLS layer asks every client for
a certificate, and the refund is refused unless it was the merchant's ``apiclient_cert``.
Over plain HTTP (and in-process) there is no certificate to check: refunds are accepted
without one, and the first such refund logs a warning saying so (see docs/sandbox.md).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request
from fastapi.responses import Response

from minigate.providers.wechatpay import v2sign
from minigate.providers.wechatpay.v2_messages import CHINA, china_time
from minigate.providers.wechatpay.xml import XmlRejected, parse_xml, to_xml
from minigate.sandbox import credentials as cred
from minigate.sandbox import keystore, media
from minigate.sandbox.wechatpay import (
    DUPLICATE_ORDER_NO,
    OUT_TRADE_NO_RE,
    TIMETABLE,
    USER_RECEIVED_ACCOUNT,
    V2_REFUND_STATUS,
    WxOrder,
    WxRefund,
)

if TYPE_CHECKING:
    from minigate.sandbox.wechatpay import WechatpaySim

FEN_RE = re.compile(r"[1-9][0-9]{0,11}")
#: Where the TLS layer leaves the client certificate (DER) in the request's scope state.
CLIENT_CERT_STATE = "tls_client_cert"
log = logging.getLogger("minigate.sandbox.wechatpay")
TRADE_STATE_DESC = {"SUCCESS": "支付成功", "REFUND": "转入退款", "NOTPAY": "订单未支付",
                    "CLOSED": "已关闭", "USERPAYING": "用户支付中", "PAYERROR": "支付失败"}


def china_datetime(moment: datetime) -> str:
    """``yyyy-MM-dd HH:mm:ss`` in WeChat's time zone (refund success times)."""
    return moment.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def parse_china_time(text: str) -> datetime | None:
    """``yyyyMMddHHmmss`` in WeChat's time zone (``time_expire``), or None."""
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA)
    except ValueError:
        return None


class WechatpayV2Api:
    def __init__(self, sim: WechatpaySim) -> None:
        self.sim = sim
        self.key = sim.credentials.wechatpay_apiv2_key
        self._warned_plain_http = False

    # -- answers -------------------------------------------------------------------------
    def _signed(self, fields: dict[str, str], sign_type: str) -> Response:
        params = {"return_code": "SUCCESS", "return_msg": "OK", "appid": cred.MINI_APP_ID,
                  "mch_id": self.sim.mchid, "nonce_str": secrets.token_hex(8), **fields}
        params["sign"] = v2sign.sign(params, self.key, sign_type)
        return Response(to_xml(params), 200, media_type="text/xml")

    def _result_fail(self, code: str, message: str, sign_type: str) -> Response:
        return self._signed({"result_code": "FAIL", "err_code": code, "err_code_des": message},
                            sign_type)

    @staticmethod
    def _return_fail(message: str) -> Response:
        return Response(to_xml({"return_code": "FAIL", "return_msg": message}), 200,
                        media_type="text/xml")

    async def _verified(self, request: Request) -> tuple[dict[str, str], str] | Response:
        try:
            fields = parse_xml(await request.body())
        except XmlRejected:
            return self._return_fail("XML_FORMAT_ERROR")
        sign_type = fields.get("sign_type") or v2sign.MD5
        if not v2sign.signatures_match(fields, self.key, sign_type):
            return self._return_fail("签名错误")
        if fields.get("mch_id") != self.sim.mchid:
            return self._return_fail("mch_id 不存在")
        return fields, sign_type

    # -- endpoints ----------------------------------------------------------------------------
    async def unifiedorder(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        f, st = checked
        missing = [n for n in ("appid", "body", "out_trade_no", "total_fee", "spbill_create_ip",
                               "notify_url", "trade_type", "openid", "nonce_str") if not f.get(n)]
        if missing:
            return self._result_fail("LACK_PARAMS", f"缺少参数 {', '.join(missing)}", st)
        if f["trade_type"] != "JSAPI":
            return self._result_fail("PARAM_ERROR", "trade_type must be JSAPI", st)
        if not FEN_RE.fullmatch(f["total_fee"]) or f.get("fee_type", "CNY") != "CNY":
            return self._result_fail("PARAM_ERROR", "total_fee must be integer fen (CNY)", st)
        if not OUT_TRADE_NO_RE.fullmatch(f["out_trade_no"]):
            return self._result_fail("PARAM_ERROR", "out_trade_no format", st)
        bad = self.sim.check_order_params(appid=f["appid"], mchid=f["mch_id"], openid=f["openid"])
        if bad:
            code = "PARAM_ERROR" if bad == "OPENID_MISMATCH" else bad.replace("MCH_NOT_EXISTS",
                                                                              "MCHID_NOT_EXIST")
            return self._result_fail(code, "appid, mch_id and openid must belong together", st)
        params = {k: v for k, v in f.items() if k not in ("nonce_str", "sign")}
        existing = self.sim.orders.get(f["out_trade_no"])
        if existing is not None:
            if existing.params == params and existing.prepay.status == "NOTPAY":
                return self._prepay_answer(existing, st)
            return self._result_fail("INVALID_REQUEST", DUPLICATE_ORDER_NO, st)
        order = self.sim.new_order(
            out_trade_no=f["out_trade_no"], appid=f["appid"], openid=f["openid"],
            total=int(f["total_fee"]), currency="CNY", description=f["body"],
            notify_url=f["notify_url"], version="v2", params=params,
            expires_at=parse_china_time(f.get("time_expire", "")), sign_type=st)
        return self._prepay_answer(order, st)

    def _prepay_answer(self, order: WxOrder, sign_type: str) -> Response:
        return self._signed({"result_code": "SUCCESS", "trade_type": "JSAPI",
                             "prepay_id": order.prepay.prepay_id}, sign_type)

    def pay_sign_ok(self, order: WxOrder, params: Mapping[str, str]) -> bool:
        """The v2 ``paySign`` of a v2 order, with the ``signType`` it was created with."""
        sign_type = order.sign_type
        if params.get("signType") != sign_type:
            return False  # "需与统一下单的签名类型一致"
        fields: dict[str, object] = dict(v2sign.pay_sign_params(
            order.appid, str(params.get("timeStamp")), str(params.get("nonceStr")),
            str(params.get("package")), sign_type))
        fields["sign"] = str(params.get("paySign"))
        return v2sign.verify(fields, self.key, sign_type)

    def _order_fields(self, order: WxOrder) -> dict[str, str]:
        prepay = order.prepay
        fields = {"result_code": "SUCCESS", "out_trade_no": order.out_trade_no,
                  "trade_state": prepay.status,
                  "trade_state_desc": TRADE_STATE_DESC.get(prepay.status, prepay.status),
                  "openid": prepay.openid, "trade_type": "JSAPI",
                  "total_fee": str(prepay.amount_minor), "fee_type": "CNY"}
        if order.params.get("attach"):
            fields["attach"] = str(order.params["attach"])
        if prepay.transaction_id:
            fields.update(transaction_id=prepay.transaction_id, bank_type="OTHERS",
                          cash_fee=str(prepay.amount_minor),
                          time_end=china_time(prepay.paid_at) if prepay.paid_at else "")
        return fields

    async def orderquery(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        f, st = checked
        if not (f.get("transaction_id") or f.get("out_trade_no")):
            return self._result_fail("PARAM_ERROR", "transaction_id 或 out_trade_no 必填", st)
        order = self.sim.find_order(f.get("out_trade_no"), f.get("transaction_id"))
        if order is None:
            return self._result_fail("ORDERNOTEXIST", "此交易订单号不存在", st)
        return self._signed(self._order_fields(order), st)

    async def closeorder(self, request: Request) -> Response:
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        f, st = checked
        order = self.sim.orders.get(f.get("out_trade_no", ""))
        if order is None:
            return self._result_fail("ORDERNOTEXIST", "此交易订单号不存在", st)
        if order.prepay.status in ("SUCCESS", "REFUND"):
            return self._result_fail("ORDERPAID", "订单已支付", st)
        if order.prepay.status == "CLOSED":
            return self._result_fail("ORDERCLOSED", "订单已关闭", st)
        if self.sim.too_early_to_close(order):
            return self._result_fail("SYSTEMERROR", "订单生成后不能马上调用关单接口，最短5分钟", st)
        self.sim.close_order(order)
        return self._signed({"result_code": "SUCCESS"}, st)

    def _client_certificate_problem(self, request: Request) -> str | None:
        """WeChat's mutual-TLS rule for ``/secapi``, where it can be checked (over TLS)."""
        if request.url.scheme != "https":
            if not self._warned_plain_http:
                self._warned_plain_http = True
                log.warning("v2 refund over plain HTTP: the client certificate WeChat requires "
                            "cannot be checked; serve the sandbox with --tls to enforce it")
            return None
        presented = request.scope.get("state", {}).get(CLIENT_CERT_STATE)
        if not presented:
            return "CERT_ERROR: 证书错误 (no client certificate: send the merchant apiclient_cert)"
        expected = self.sim.credentials.file(keystore.MERCHANT_CERT)
        if expected is None or not hmac.compare_digest(
                presented, x509.load_pem_x509_certificate(expected.read_bytes())
                .public_bytes(serialization.Encoding.DER)):
            return "CERT_ERROR: 证书错误 (not this merchant's apiclient_cert)"
        return None

    async def refund(self, request: Request) -> Response:
        cert_problem = self._client_certificate_problem(request)
        if cert_problem:
            return self._return_fail(cert_problem)
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        f, st = checked
        if not f.get("out_refund_no") or not FEN_RE.fullmatch(f.get("refund_fee", "")) or \
                not FEN_RE.fullmatch(f.get("total_fee", "")):
            return self._result_fail("PARAM_ERROR", "out_refund_no, total_fee, refund_fee", st)
        if not (f.get("transaction_id") or f.get("out_trade_no")):
            return self._result_fail("PARAM_ERROR", "transaction_id 或 out_trade_no 必填", st)
        order = self.sim.find_order(f.get("out_trade_no"), f.get("transaction_id"))
        existing = self.sim.refunds.get(f["out_refund_no"])
        if existing is not None and order is not None:
            return self._refund_answer(order, existing, st)
        if order is None:
            return self._result_fail("ORDERNOTEXIST", "订单不存在", st)
        refund_fee = int(f["refund_fee"])
        if int(f["total_fee"]) != order.total:
            return self._result_fail("INVALID_REQUEST", "订单金额不符", st)
        if order.prepay.status not in ("SUCCESS", "REFUND"):
            return self._result_fail("TRADE_STATE_ERROR", "订单状态错误", st)
        if order.refunded() + refund_fee > order.total:
            return self._result_fail("NOTENOUGH", "退款金额超过可退金额", st)
        record = self.sim.add_refund(order, f["out_refund_no"], refund_fee,
                                     f.get("notify_url", ""))
        if record.notify_url:
            self._notify_refund(order, record.out_refund_no)
        return self._refund_answer(order, record, st)

    def _refund_answer(self, order: WxOrder, refund: WxRefund, st: str) -> Response:
        fields = {"result_code": "SUCCESS", "transaction_id": order.prepay.transaction_id,
                  "out_trade_no": order.out_trade_no, "out_refund_no": refund.out_refund_no,
                  "refund_id": refund.refund_id, "refund_fee": str(refund.amount),
                  "total_fee": str(order.total), "cash_fee": str(order.total),
                  "cash_refund_fee": str(refund.amount), "fee_type": "CNY"}
        if order.params.get("attach"):
            fields["attach"] = str(order.params["attach"])
        return self._signed(fields, st)

    async def refundquery(self, request: Request) -> Response:
        """By ``refund_id`` > ``out_refund_no`` > ``transaction_id`` > ``out_trade_no`` (the
        first given wins, as at WeChat); an order's refunds are listed ``_0`` … ``_n``."""
        checked = await self._verified(request)
        if isinstance(checked, Response):
            return checked
        f, st = checked
        refunds: list[WxRefund] = []
        order: WxOrder | None = None
        if f.get("refund_id") or f.get("out_refund_no"):
            refund = next((r for r in self.sim.refunds.values()
                           if r.refund_id == f["refund_id"]), None) if f.get("refund_id") \
                else self.sim.refunds.get(f["out_refund_no"])
            if refund is not None:
                refunds, order = [refund], self.sim.orders.get(refund.out_trade_no)
        elif f.get("transaction_id") or f.get("out_trade_no"):
            order = self.sim.find_order(f.get("out_trade_no"), f.get("transaction_id"))
            refunds = list(order.refunds.values()) if order is not None else []
        else:
            return self._result_fail("PARAM_ERROR", "需要 refund_id、out_refund_no、"
                                      "transaction_id 或 out_trade_no 之一", st)
        if not refunds or order is None:
            return self._result_fail("REFUNDNOTEXIST", "退款订单查询失败", st)
        fields = {"result_code": "SUCCESS", "transaction_id": order.prepay.transaction_id,
                  "out_trade_no": order.out_trade_no, "total_fee": str(order.total),
                  "cash_fee": str(order.total), "fee_type": "CNY",
                  "refund_fee": str(sum(r.amount for r in refunds)),
                  "refund_count": str(len(refunds))}
        for n, r in enumerate(refunds):
            fields.update({
                f"out_refund_no_{n}": r.out_refund_no, f"refund_id_{n}": r.refund_id,
                f"refund_fee_{n}": str(r.amount), f"refund_channel_{n}": "ORIGINAL",
                f"refund_status_{n}": V2_REFUND_STATUS[r.status],
                f"refund_account_{n}": "REFUND_SOURCE_UNSETTLED_FUNDS",
                f"refund_recv_accout_{n}": USER_RECEIVED_ACCOUNT})
            if r.success_time is not None and r.status == "SUCCESS":
                fields[f"refund_success_time_{n}"] = china_datetime(r.success_time)
        return self._signed(fields, st)

    # -- notifications -----------------------------------------------------------------------
    def notify_paid(self, order: WxOrder) -> None:
        fields = {"appid": order.appid, "mch_id": self.sim.mchid,
                  "nonce_str": secrets.token_hex(8), "return_code": "SUCCESS",
                  "sign_type": order.sign_type, "is_subscribe": "N",
                  **self._order_fields(order)}
        fields.pop("trade_state")  # notifications carry result_code, not trade_state
        fields["sign"] = v2sign.sign(fields, self.key, order.sign_type)
        self._send(f"wechatpay-v2:{order.out_trade_no}", order.notify_url, to_xml(fields))

    def _notify_refund(self, order: WxOrder, out_refund_no: str) -> None:
        refund = order.refunds[out_refund_no]
        fields = {
            "out_refund_no": refund.out_refund_no, "out_trade_no": refund.out_trade_no,
            "refund_fee": str(refund.amount), "refund_id": refund.refund_id,
            "refund_status": V2_REFUND_STATUS[refund.status], "total_fee": str(refund.total),
            "settlement_refund_fee": str(refund.amount),
            "settlement_total_fee": str(refund.total),
            "transaction_id": order.prepay.transaction_id,
            "refund_account": "REFUND_SOURCE_UNSETTLED_FUNDS",
            "refund_recv_accout": USER_RECEIVED_ACCOUNT, "refund_request_source": "API"}
        if refund.success_time is not None and refund.status == "SUCCESS":
            fields["success_time"] = china_datetime(refund.success_time)
        inner = to_xml(fields, root="root")
        body = to_xml({"return_code": "SUCCESS", "appid": order.appid, "mch_id": self.sim.mchid,
                       "nonce_str": secrets.token_hex(8),
                       "req_info": v2sign.encrypt_req_info(inner, self.key)})
        self._send(f"wechatpay-v2:{out_refund_no}", refund.notify_url, body)

    def _send(self, label: str, url: str, body: bytes) -> None:
        def acked(response: Any) -> bool:
            try:
                return parse_xml(response.content).get("return_code") == "SUCCESS"
            except XmlRejected:
                return False

        self.sim.world.notifier.send(label, url, body, {"Content-Type": "text/xml"},
                                     TIMETABLE, acked)

    def router(self) -> APIRouter:
        router = APIRouter()
        xml: dict[str, Any] = {"methods": ["POST"], "response_class": media.XMLResponse,
                               "openapi_extra": media.XML}
        router.add_api_route("/pay/unifiedorder", self.unifiedorder, **xml)
        router.add_api_route("/pay/orderquery", self.orderquery, **xml)
        router.add_api_route("/pay/closeorder", self.closeorder, **xml)
        router.add_api_route("/secapi/pay/refund", self.refund, **xml)
        router.add_api_route("/pay/refundquery", self.refundquery, **xml)
        return router
